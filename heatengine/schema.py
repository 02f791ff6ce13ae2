"""The canonical tap schema: column resolution, minimisation, types and row reasons.

Every input row ends up in exactly one place: eligible for binning, quarantined with a
reason (malformed), or excluded with a reason (consent, retention). The reason column
is computed with one Polars expression, so the counts always add up to the rows read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from heatengine.config import AggregateConfig
from heatengine.errors import SchemaError

#: Exclusion reasons, checked first: rows without consent or outside the retention
#: window are not processed further, not even kept in the quarantine file.
EXCLUSION_REASONS = ("no_consent", "older_than_retention", "after_as_of")
#: Quarantine reasons for malformed rows, in the order they are checked.
QUARANTINE_REASONS = (
    "missing_screen",
    "missing_user",
    "missing_coordinate",
    "non_finite_coordinate",
    "invalid_viewport",
    "coordinate_out_of_range",
    "missing_timestamp",
)
#: Row reason codes: 0 for eligible rows, 1.. for the reasons in the order checked.
ELIGIBLE = 0
REASON_CODE = "reason_code"
REASON_CODES = {
    reason: code for code, reason in enumerate(EXCLUSION_REASONS + QUARANTINE_REASONS, 1)
}
#: Quarantine reasons follow the exclusion reasons: every code from this one on.
FIRST_QUARANTINE_CODE = len(EXCLUSION_REASONS) + 1
MISSING_SEGMENT = "(missing)"
#: Per-row layer number column (negative: no screen), added before reasons are given.
LAYER = "layer"
#: Appended to a screen's name to name its rage-tap layer.
RAGE_SUFFIX = " (rage taps)"
#: Optional column read only for consent coverage per session.
SESSION = "session_id"
#: Per-row number of the distinct (cleaned) user id (negative: no id).
USER_CODE = "token"
# Accepted timestamp text, row by row: with an offset or Z, else taken as UTC.
ISO_FORMATS_WITH_OFFSET = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%d %H:%M%#z",
)
ISO_FORMATS_NAIVE = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
CONSENT_TEXT = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


@dataclass(frozen=True)
class ResolvedColumns:
    """Which canonical columns an input provides and what minimisation dropped."""

    user: str  # "user_id" (raw, to pseudonymise) or "user_token" (already pseudonymous)
    has_consent: bool
    kept: tuple[str, ...]
    dropped: tuple[str, ...]


def text_source_columns(config: AggregateConfig) -> tuple[str, ...]:
    """Input columns to read as text from CSV and NDJSON: ids, screens and segments.

    Reading them as text keeps ``007`` and ``7`` apart and never turns a version such as
    ``2.10`` into the number 2.1.
    """
    mapping = dict(config.column_map)
    names = [mapping.get(c, c) for c in ("screen", "user_id", "user_token")]
    return (*names, *config.segments)


def resolve_columns(
    lf: pl.LazyFrame, config: AggregateConfig
) -> tuple[pl.LazyFrame, ResolvedColumns]:
    """Rename mapped columns, check required ones and keep only the allow-list.

    Raises
    ------
    SchemaError
        Naming the missing column and listing the columns present.
    """
    present = lf.collect_schema().names()
    renames = {}
    for canonical, source in config.column_map:
        if source not in present:
            msg = (
                f"column_map maps {canonical!r} to {source!r}, but the input has no column "
                f"{source!r}; columns present: {_listing(present)}"
            )
            raise SchemaError(msg)
        renames[source] = canonical
    lf = lf.rename(renames) if renames else lf
    names = [renames.get(name, name) for name in present]

    required = ["screen", "x", "y", "ts", *config.segments]
    if config.coordinates == "pixels":
        required += ["viewport_width", "viewport_height"]
    for column in required:
        _require(column, names)
    if "user_token" in names:
        user = "user_token"
    elif "user_id" in names:
        user = "user_id"
    else:
        msg = (
            f"missing required column 'user_id' (or 'user_token' for already pseudonymised "
            f"ids); columns present: {_listing(names)}"
        )
        raise SchemaError(msg)
    has_consent = "consent" in names
    if not has_consent and not config.assume_consent:
        msg = (
            f"missing required column 'consent'; rows without consent are never counted. "
            f"If every row is consented, say so with assume_consent=True (CLI: "
            f"--assume-consent). Columns present: {_listing(names)}"
        )
        raise SchemaError(msg)
    # session_id is read for consent coverage per session only, and only when that is
    # measured: it never reaches a partial, the quarantine file or any output.
    sessions = [SESSION] if has_consent and config.consent_coverage else []
    kept = [*required, user] + (["consent"] if has_consent else []) + sessions
    kept = [name for name in names if name in kept]
    dropped = tuple(sorted(set(names) - set(kept)))
    return lf.select(kept), ResolvedColumns(user, has_consent, tuple(kept), dropped)


def _require(column: str, names: list[str]) -> None:
    if column not in names:
        msg = f"missing required column {column!r}; columns present: {_listing(names)}"
        raise SchemaError(msg)


def _listing(names: list[str]) -> str:
    return ", ".join(names) if names else "(none)"


def coerce_types(
    df: pl.DataFrame, columns: ResolvedColumns, config: AggregateConfig
) -> pl.DataFrame:
    """Bring every kept column to its canonical type, or raise naming the column.

    Text that parses (numbers, ISO-8601 times, ``true``/``false``) is accepted; text that
    does not is an error naming the column and how many rows fail, never a silent null.
    Layer columns (screen and segments) are left as given: :func:`clean_layer_values`
    cleans them once per distinct value.
    """
    casts = [
        _as_float(df, "x"),
        _as_float(df, "y"),
        _as_timestamp(df),
        _as_user(df, columns.user),
    ]
    if config.coordinates == "pixels":
        casts += [_as_float(df, "viewport_width"), _as_float(df, "viewport_height")]
    if columns.has_consent:
        casts.append(_as_consent(df))
    return df.with_columns(casts)


def _type_error(column: str, dtype: pl.DataType, expected: str) -> SchemaError:
    msg = f"column {column!r} has type {dtype}, expected {expected}"
    return SchemaError(msg)


def _check_parsed(df: pl.DataFrame, column: str, parsed: pl.Expr, expected: str) -> pl.Expr:
    """Raise when any non-null text fails to parse; the values are not echoed, since a
    misaligned file can put personal data in any column."""
    failed = df.select((pl.col(column).is_not_null() & parsed.is_null()).sum()).item()
    if failed:
        msg = (
            f"column {column!r} holds text that does not parse as {expected} in "
            f"{failed:,} of {df.height:,} rows"
        )
        raise SchemaError(msg)
    return parsed.alias(column)


def _as_float(df: pl.DataFrame, column: str) -> pl.Expr:
    dtype = df.schema[column]
    if dtype.is_numeric():
        return pl.col(column).cast(pl.Float64)
    if dtype == pl.String:
        parsed = pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)
        return _check_parsed(df, column, parsed, "a number")
    raise _type_error(column, dtype, "a number")


def _is_text(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)


def _blank_to_null(text: pl.Expr) -> pl.Expr:
    """Empty or all-space text means the value is missing."""
    return pl.when(text.str.strip_chars() == "").then(None).otherwise(text)


def clean_screen_names(names: pl.Series) -> pl.Series:
    """Screen names left blank (by route cleaning: ``"?x=1"`` has no path) are missing."""
    return names.to_frame().select(_blank_to_null(pl.col(names.name)).alias(names.name)).to_series()


def clean_layer_values(values: pl.Series, screen: bool) -> pl.Series:
    """Layer names as published: text, with blank meaning missing.

    A blank screen is missing (null, quarantined later); a blank or missing segment value
    becomes :data:`MISSING_SEGMENT`, and numbers, booleans and dates are written out as
    text. Meant for the distinct values of a column, not for every row.

    Raises
    ------
    SchemaError
        The column's type cannot name a layer.
    """
    column, dtype = values.name, values.dtype
    frame = values.to_frame()
    if screen:
        if not (_is_text(dtype) or dtype.is_integer()):
            raise _type_error(column, dtype, "text")
        return frame.select(
            _blank_to_null(pl.col(column).cast(pl.String)).alias(column)
        ).to_series()
    if not (_is_text(dtype) or dtype.is_numeric() or dtype in (pl.Boolean, pl.Date)):
        raise _type_error(column, dtype, "text, a number, a boolean or a date")
    text = _blank_to_null(pl.col(column).cast(pl.String).str.strip_chars())
    return frame.select(text.fill_null(MISSING_SEGMENT).alias(column)).to_series()


def _as_user(df: pl.DataFrame, column: str) -> pl.Expr:
    """Ids as given (integer or text); text is cleaned per distinct id by
    :func:`clean_user_values`."""
    dtype = df.schema[column]
    if dtype.is_integer() or _is_text(dtype):
        return pl.col(column)
    raise _type_error(column, dtype, "text or an integer")


def clean_user_values(values: pl.Series) -> pl.Series:
    """Distinct ids as they are pseudonymised: integers as given, text without
    surrounding space (``" u1"`` is ``"u1"``), blank text missing."""
    if values.dtype.is_integer():
        return values
    text = _blank_to_null(pl.col(values.name).cast(pl.String).str.strip_chars())
    return values.to_frame().select(text.alias(values.name)).to_series()


def _as_timestamp(df: pl.DataFrame) -> pl.Expr:
    dtype = df.schema["ts"]
    if isinstance(dtype, pl.Datetime):
        ts = pl.col("ts")
        if dtype.time_zone is None:  # naive times are taken as UTC
            ts = ts.dt.replace_time_zone("UTC")
        return ts.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if dtype == pl.Date:
        return pl.col("ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype == pl.String:
        text = pl.col("ts").str.strip_chars()
        with_offset = [
            text.str.to_datetime(f, time_unit="us", time_zone="UTC", strict=False)
            for f in ISO_FORMATS_WITH_OFFSET
        ]
        naive = [
            text.str.to_datetime(f, time_unit="us", strict=False).dt.replace_time_zone("UTC")
            for f in ISO_FORMATS_NAIVE
        ]
        parsed = pl.coalesce(*with_offset, *naive)
        return _check_parsed(df, "ts", parsed, "an ISO-8601 date-time")
    raise _type_error("ts", dtype, "a datetime, a date or ISO-8601 text")


def _as_consent(df: pl.DataFrame) -> pl.Expr:
    dtype = df.schema["consent"]
    if dtype == pl.Boolean:
        return pl.col("consent")
    if dtype.is_integer():
        bad = df.select(~pl.col("consent").is_in([0, 1]).fill_null(True)).to_series().sum()
        if bad:
            msg = f"column 'consent' holds integers other than 0 and 1 in {bad:,} rows"
            raise SchemaError(msg)
        return pl.col("consent").cast(pl.Boolean)
    if dtype == pl.String:
        parsed = (
            pl.col("consent")
            .str.strip_chars()
            .str.to_lowercase()
            .replace_strict(CONSENT_TEXT, default=None, return_dtype=pl.Boolean)
        )
        return _check_parsed(df, "consent", parsed, "true/false")
    raise _type_error("consent", dtype, "a boolean")


def reason_names(codes: pl.Expr) -> pl.Expr:
    """Reason codes back to their names (for the few rows that are not eligible)."""
    names = {code: reason for reason, code in REASON_CODES.items()}
    return codes.replace_strict(names, default=None, return_dtype=pl.String)


def normalised_coordinates(config: AggregateConfig) -> tuple[pl.Expr, pl.Expr]:
    """Expressions for ``x`` and ``y`` in [0, 1] screen units."""
    if config.coordinates == "pixels":
        return (
            (pl.col("x") / pl.col("viewport_width")).alias("x"),
            (pl.col("y") / pl.col("viewport_height")).alias("y"),
        )
    return pl.col("x"), pl.col("y")


def reason_expression(
    columns: ResolvedColumns,
    config: AggregateConfig,
    as_of: datetime,
    missing_user: pl.Expr | None = None,
) -> pl.Expr:
    """One reason code per row (:data:`ELIGIBLE` for none); the first matching rule wins.

    Consent and retention come first (a null timestamp matches neither and is then
    quarantined). Expects the :data:`LAYER` column of :mod:`heatengine.layers`, negative
    where the screen is missing; ``missing_user`` replaces the null test of the user
    column when ids are numbered per distinct value. Works on the coerced columns as
    given: pixels are normalised inside the range check.
    """
    x, y = pl.col("x"), pl.col("y")
    ts = pl.col("ts")
    horizon = as_of - timedelta(days=config.privacy.retention_days)
    rules: list[tuple[str, pl.Expr]] = []
    if columns.has_consent:
        rules.append(("no_consent", ~pl.col("consent").fill_null(False)))
    rules += [
        ("older_than_retention", ts < pl.lit(horizon)),
        ("after_as_of", ts > pl.lit(as_of)),
        ("missing_screen", pl.col(LAYER) < 0),
        ("missing_user", pl.col(columns.user).is_null() if missing_user is None else missing_user),
        ("missing_coordinate", x.is_null() | y.is_null()),
        ("non_finite_coordinate", ~(x.is_finite() & y.is_finite())),
    ]
    if config.coordinates == "pixels":
        width, height = pl.col("viewport_width"), pl.col("viewport_height")
        valid = width.is_finite() & height.is_finite() & (width > 0) & (height > 0)
        rules.append(("invalid_viewport", ~valid.fill_null(False)))
    nx, ny = normalised_coordinates(config)
    rules += [
        ("coordinate_out_of_range", (nx < 0) | (nx > 1) | (ny < 0) | (ny > 1)),
        ("missing_timestamp", ts.is_null()),
    ]
    # Small integer codes: a chain of string literals over every row is ten times slower.
    expr = pl.when(rules[0][1]).then(pl.lit(REASON_CODES[rules[0][0]], pl.UInt8))
    for reason, condition in rules[1:]:
        expr = expr.when(condition).then(pl.lit(REASON_CODES[reason], pl.UInt8))
    return expr.otherwise(pl.lit(ELIGIBLE, pl.UInt8)).alias(REASON_CODE)
