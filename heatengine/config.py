"""Options for every step, as frozen dataclasses validated on construction.

Everything a run's output depends on lives here, so the manifest can record it and a
second run with the same configuration reproduces the same bytes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from heatengine.dp import DPPolicy
    from heatengine.rage import RagePolicy

#: Numba options shared by every kernel: one place to change them (``@njit(**NJIT)``).
NJIT: dict[str, Any] = {"cache": True, "nogil": True}
#: Options for kernels that run ``prange`` loops.
NJIT_PARALLEL: dict[str, Any] = {**NJIT, "parallel": True}

Measure = Literal["users", "taps"]
Coordinates = Literal["normalised", "pixels"]

MAX_GRID_SIDE = 4096
SMALLEST_K_WITHOUT_OVERRIDE = 5
MAX_COUNT_OPTION = 1_000_000  # for k and the per-cell tap cap
MAX_RETENTION_DAYS = 36_500
#: Largest n of the (n, k) dominance rule (the kernel keeps n values per cell).
MAX_DOMINANCE_N = 100
#: Column names the pipeline and its outputs use for their own purposes.
RESERVED_COLUMNS = (
    "reason",
    "reason_code",
    "layer",
    "position",
    "cx",
    "cy",
    "users",
    "taps",
    "density",
    "cells",
    "peak",
    "token",
    "united",
    "own",
    "given",
    "element",
    "screen_users",
    "engagement",
    "dead_taps",
    "dead_tap_share",
    "elements_suppressed",
    "rage_tap_share",
    "noisy",
    "low",
    "high",
    "session_id",
)

#: Canonical columns (see ARCHITECTURE.md) that a column mapping may rename onto.
CANONICAL_COLUMNS = (
    "screen",
    "x",
    "y",
    "user_id",
    "user_token",
    "ts",
    "consent",
    "viewport_width",
    "viewport_height",
)


def _require_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """An integer (Python or numpy, not bool) from ``low`` to ``high``, as an ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{name} must be an integer, got {value!r}"
        raise TypeError(msg)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        msg = f"{name} must be {bound}, got {value}"
        raise ValueError(msg)
    return int(value)


def _require_real(
    name: str,
    value: object,
    *,
    unit: str = "",
    kind: str = "",
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    error: type[Exception] | None = None,
) -> float:
    """A finite real number (not bool) within the bounds given, as a float.

    Raises ``TypeError`` for a non-number and ``ValueError`` for one out of bounds, or
    ``error`` for both when given. ``kind`` names what is wanted in the message
    (default: a finite number, of ``unit`` if given).
    """
    of_unit = f" of {unit}" if unit else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a number{of_unit}, got {value!r}"
        raise (error or TypeError)(msg)
    number = float(value)
    low_ok = (above is None or number > above) and (at_least is None or number >= at_least)
    high_ok = (at_most is None or number <= at_most) and (below is None or number < below)
    if not (math.isfinite(number) and low_ok and high_ok):
        msg = f"{name} must be {kind or 'a finite number' + of_unit}"
        msg += f"{_range_words(above, at_least, at_most, below)}, got {value!r}"
        raise (error or ValueError)(msg)
    return number


def _range_words(
    above: float | None, at_least: float | None, at_most: float | None, below: float | None
) -> str:
    """`` from 0 to 100``, `` from 0 to below 1``, `` above 0 and at most 100``..."""
    high = "" if at_most is None else f"at most {at_most:g}"
    high = high if below is None else f"below {below:g}"
    if at_least is not None:
        return (
            f" from {at_least:g} to {high.removeprefix('at most ')}"
            if high
            else (f" at least {at_least:g}")
        )
    low = "" if above is None else f"above {above:g}"
    words = " and ".join(word for word in (low, high) if word)
    return f" {words}" if words else ""


def _require_percent(name: str, value: object, *, allow_zero: bool) -> float:
    """A percentage in ``[0, 100]`` (or ``(0, 100]``), as a float."""
    low = {"at_least": 0} if allow_zero else {"above": 0}
    return _require_real(name, value, unit="percent", kind="a percentage", at_most=100, **low)


@dataclass(frozen=True)
class DominanceRule:
    """Which dominance rules hide cells, recorded in the manifest.

    Parameters
    ----------
    p
        The p% rule's percentage, 0 to 100 (default 10); ``None`` disables the rule.
    n, k_percent
        The (n, k) rule: unsafe when the ``n`` largest contributions exceed
        ``k_percent`` % of the cell. Give both (``1 <= n <= 100``,
        ``0 < k_percent <= 100``) or neither (the default, rule off).

    Raises
    ------
    TypeError
        A value of the wrong type.
    ValueError
        A value out of range, or only one of ``n`` and ``k_percent``.

    Examples
    --------
    >>> rule = DominanceRule(p=15, n=2, k_percent=85)
    >>> rule.to_dict()
    {'p': 15.0, 'n': 2, 'k_percent': 85.0}
    >>> rule.largest_needed
    2
    >>> DominanceRule.from_dict(rule.to_dict()) == rule
    True
    """

    p: float | None = 10.0
    n: int | None = None
    k_percent: float | None = None

    def __post_init__(self) -> None:
        if self.p is not None:
            object.__setattr__(self, "p", _require_percent("p", self.p, allow_zero=True))
        if (self.n is None) != (self.k_percent is None):
            msg = (
                f"the (n, k) rule needs both n and k_percent or neither, "
                f"got n={self.n!r} and k_percent={self.k_percent!r}"
            )
            raise ValueError(msg)
        if self.n is not None:
            _require_int("n", self.n, 1, MAX_DOMINANCE_N)
            k_percent = _require_percent("k_percent", self.k_percent, allow_zero=False)
            object.__setattr__(self, "k_percent", k_percent)

    @property
    def p_enabled(self) -> bool:
        """The p% rule is on."""
        return self.p is not None

    @property
    def nk_enabled(self) -> bool:
        """The (n, k) rule is on."""
        return self.n is not None

    @property
    def largest_needed(self) -> int:
        """How many largest contributions per cell the enabled rules read (0 when none)."""
        return max(2 if self.p_enabled else 0, self.n if self.n is not None else 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, as recorded in the manifest."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DominanceRule:
        """Rebuild a rule written by :meth:`to_dict`."""
        expected = {"p", "n", "k_percent"}
        if set(data) != expected:
            msg = f"a dominance rule needs exactly the keys {sorted(expected)}, got {sorted(data)}"
            raise ValueError(msg)
        return cls(p=data["p"], n=data["n"], k_percent=data["k_percent"])


@dataclass(frozen=True)
class GridSpec:
    """The public, data-independent grid every screen is binned into.

    Cell edges come from normalised coordinates and this fixed resolution only, never
    from the data, so the grid itself reveals nothing.

    Parameters
    ----------
    columns, rows
        Number of cells across and down the screen (default 64 x 128).

    Examples
    --------
    >>> GridSpec(32, 64).cells
    2048
    >>> GridSpec.parse("64x128")
    GridSpec(columns=64, rows=128)
    """

    columns: int = 64
    rows: int = 128

    def __post_init__(self) -> None:
        _require_int("grid columns", self.columns, 1, MAX_GRID_SIDE)
        _require_int("grid rows", self.rows, 1, MAX_GRID_SIDE)

    @property
    def cells(self) -> int:
        """Number of cells in one layer's grid."""
        return self.columns * self.rows

    @property
    def shape(self) -> tuple[int, int]:
        """Array shape of one grid, ``(rows, columns)``."""
        return (self.rows, self.columns)

    @classmethod
    def parse(cls, text: str) -> GridSpec:
        """Parse ``"COLUMNSxROWS"``, for example ``"64x128"``."""
        parts = text.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            msg = f"grid must look like COLUMNSxROWS, for example 64x128, got {text!r}"
            raise ValueError(msg)
        return cls(int(parts[0]), int(parts[1]))


@dataclass(frozen=True)
class PrivacyPolicy:
    """k-anonymity, contribution bounding and retention.

    Parameters
    ----------
    k
        A cell is published only when at least ``k`` distinct users tapped it.
        Values below 5 are refused unless ``allow_small_k`` is set.
    max_taps_per_user_cell
        Each user's taps in one cell count at most this many times in ``taps``.
    retention_days
        Rows older than this many days before the run's reference time are excluded.
    allow_small_k
        Explicit acknowledgement that a ``k`` below 5 gives weak protection.
    dominance
        Dominance rules on the capped taps per user (default: the p% rule, p = 10).
    true_totals
        Publish each layer's true total of capped taps, not the sum of its published
        cells; secondary suppression then hides further cells so that the hidden
        remainder always spans two or more cells with at least ``k`` users together.
    """

    k: int = 10
    max_taps_per_user_cell: int = 5
    retention_days: int = 30
    allow_small_k: bool = False
    dominance: DominanceRule = field(default_factory=DominanceRule)
    true_totals: bool = False

    def __post_init__(self) -> None:
        _require_int("k", self.k, 1, MAX_COUNT_OPTION)
        _require_int("max_taps_per_user_cell", self.max_taps_per_user_cell, 1, MAX_COUNT_OPTION)
        _require_int("retention_days", self.retention_days, 1, MAX_RETENTION_DAYS)
        if not isinstance(self.dominance, DominanceRule):
            msg = f"dominance must be a DominanceRule, got {self.dominance!r}"
            raise TypeError(msg)
        if self.k < SMALLEST_K_WITHOUT_OVERRIDE and not self.allow_small_k:
            msg = (
                f"k={self.k} gives weak protection; values below "
                f"{SMALLEST_K_WITHOUT_OVERRIDE} need allow_small_k=True"
            )
            raise ValueError(msg)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyPolicy:
        """Rebuild a policy written by ``asdict``; stores written before dominance rules
        existed read back with no dominance rule, which is what they applied."""
        values = dict(data)
        dominance = values.pop("dominance", None)
        values["dominance"] = (
            DominanceRule(p=None) if dominance is None else DominanceRule.from_dict(dominance)
        )
        return cls(**values)


@dataclass(frozen=True)
class AggregateConfig:
    """Everything that decides what :func:`heatengine.aggregate` publishes.

    Parameters
    ----------
    grid
        The public grid.
    privacy
        Suppression threshold, contribution cap and retention.
    sigma
        Gaussian smoothing radius in cells; ``0`` disables smoothing.
    measure
        What ``density`` and the grids show: distinct ``"users"`` per cell (default)
        or capped ``"taps"``.
    segments
        Columns that split a screen into layers, for example ``("platform",)``.
    column_map
        Canonical name to the caller's column name, for example ``{"x": "tap_x"}``.
    coordinates
        ``"normalised"`` (x and y in [0, 1]) or ``"pixels"`` (divided by
        ``viewport_width`` and ``viewport_height``).
    as_of
        Reference time for retention; ``None`` means the time the run starts.
    assume_consent
        The caller states that every row is consented; only then may the input lack a
        ``consent`` column. Recorded in the statistics.
    strict
        Raise on the first quarantined row instead of quarantining.
    elements
        UI elements as ``(screen, element, x0, y0, x1, y1)`` rectangles in normalised
        coordinates (:func:`heatengine.elements.load_elements` reads CSV or JSON):
        engagement per element and dead taps per screen are published beside the cells.
    consent_coverage
        Measure consent coverage (consented users and sessions over those seen, per run
        and layer; :mod:`heatengine.coverage`). It keeps each distinct (layer, person)
        pair of the batch, which costs about 0.2 s per 10 million taps.
    rage_taps
        Find rage-tap bursts (:class:`heatengine.rage.RagePolicy`) and publish them as
        their own layers, ``screen (rage taps)``, k-suppressed like any other, with each
        layer's ``rage_tap_share``. Off by default: it sorts the taps by user and time.
    dp
        Publish with differential privacy instead of k-anonymity
        (:class:`heatengine.dp.DPPolicy`; the CLI's ``--privacy dp``): every cell of the
        released layers carries calibrated noise and nothing is suppressed. Consent and
        retention apply as always; ``privacy.k``, the cap and the dominance rules do not.
    """

    grid: GridSpec = field(default_factory=GridSpec)
    privacy: PrivacyPolicy = field(default_factory=PrivacyPolicy)
    sigma: float = 1.5
    measure: Measure = "users"
    segments: tuple[str, ...] = ()
    column_map: tuple[tuple[str, str], ...] = ()
    coordinates: Coordinates = "normalised"
    as_of: datetime | None = None
    assume_consent: bool = False
    strict: bool = False
    dp: DPPolicy | None = None
    elements: tuple[tuple[str, str, float, float, float, float], ...] = ()
    consent_coverage: bool = True
    rage_taps: RagePolicy | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, int | float):
            msg = f"sigma must be a number of cells, got {self.sigma!r}"
            raise TypeError(msg)
        if not math.isfinite(self.sigma) or not 0 <= self.sigma <= MAX_GRID_SIDE:
            msg = f"sigma must be a number of cells from 0 to {MAX_GRID_SIDE}, got {self.sigma}"
            raise ValueError(msg)
        if self.measure not in ("users", "taps"):
            msg = f"measure must be 'users' or 'taps', got {self.measure!r}"
            raise ValueError(msg)
        if self.coordinates not in ("normalised", "pixels"):
            msg = f"coordinates must be 'normalised' or 'pixels', got {self.coordinates!r}"
            raise ValueError(msg)
        object.__setattr__(self, "segments", tuple(self.segments))
        self._check_segments()
        mapping = dict(self.column_map) if self.column_map else {}
        object.__setattr__(self, "column_map", _normalise_column_map(mapping))
        if self.as_of is not None:
            object.__setattr__(self, "as_of", _as_utc(self.as_of))
        if self.elements:
            self._check_elements()
        if self.rage_taps is not None:
            from heatengine.rage import RagePolicy  # rage imports this module

            if not isinstance(self.rage_taps, RagePolicy):
                msg = f"rage_taps must be a RagePolicy or None, got {self.rage_taps!r}"
                raise TypeError(msg)
        if self.dp is not None:
            from heatengine.dp import DPPolicy  # dp imports this module

            if not isinstance(self.dp, DPPolicy):
                msg = f"dp must be a DPPolicy or None, got {self.dp!r}"
                raise TypeError(msg)
            if self.dp.public_screens and self.segments:
                msg = (
                    "public screens cannot be combined with segments: which segment values "
                    "occur is itself data, so a screen's segment layers must pass noisy "
                    "selection; drop the segments, or the public screens"
                )
                raise ValueError(msg)

    def _check_elements(self) -> None:
        import polars as pl

        from heatengine.elements import validate_elements  # it imports this module

        columns = ["screen", "element", "x0", "y0", "x1", "y1"]
        try:
            table = pl.DataFrame([list(e) for e in self.elements], schema=columns, orient="row")
        except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
            msg = f"elements must be (screen, element, x0, y0, x1, y1) rows: {exc}"
            raise ValueError(msg) from None
        checked = validate_elements(table, source="AggregateConfig.elements")
        object.__setattr__(self, "elements", tuple(checked.select(columns).iter_rows()))
        if self.dp is not None:
            msg = "element engagement is published under k-anonymity, not with dp"
            raise ValueError(msg)

    def _check_segments(self) -> None:
        for name in self.segments:
            if not isinstance(name, str) or not name:
                msg = f"segment names must be non-empty strings, got {name!r}"
                raise ValueError(msg)
            if name in CANONICAL_COLUMNS:
                msg = f"segment {name!r} is a canonical column and cannot split layers"
                raise ValueError(msg)
            if name in RESERVED_COLUMNS:
                msg = (
                    f"segment {name!r} clashes with a column heatengine writes itself "
                    f"({', '.join(RESERVED_COLUMNS)}); rename the column in the input"
                )
                raise ValueError(msg)
        if len(set(self.segments)) != len(self.segments):
            msg = f"segments repeat a column: {list(self.segments)}"
            raise ValueError(msg)

    @property
    def layer_columns(self) -> tuple[str, ...]:
        """Columns that name a layer: ``screen`` followed by the segments."""
        return ("screen", *self.segments)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, as recorded in the manifest."""
        out = asdict(self)
        out["segments"] = list(self.segments)
        out["column_map"] = dict(self.column_map)
        out["as_of"] = None if self.as_of is None else self.as_of.isoformat()
        out["dp"] = None if self.dp is None else self.dp.to_dict()
        out["elements"] = [list(e) for e in self.elements]
        out["rage_taps"] = None if self.rage_taps is None else self.rage_taps.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AggregateConfig:
        """Rebuild a configuration written by :meth:`to_dict`."""
        as_of = data.get("as_of")
        return cls(
            grid=GridSpec(**data["grid"]),
            privacy=PrivacyPolicy.from_dict(data["privacy"]),
            sigma=data["sigma"],
            measure=data["measure"],
            segments=tuple(data["segments"]),
            column_map=tuple(dict(data["column_map"]).items()),
            coordinates=data["coordinates"],
            as_of=None if as_of is None else datetime.fromisoformat(as_of),
            assume_consent=data["assume_consent"],
            strict=data["strict"],
            dp=_dp_from_dict(data.get("dp")),
            elements=tuple(tuple(e) for e in data.get("elements", ())),
            consent_coverage=data.get("consent_coverage", False),
            rage_taps=_rage_from_dict(data.get("rage_taps")),
        )


def _dp_from_dict(data: Mapping[str, Any] | None) -> DPPolicy | None:
    if data is None:
        return None
    from heatengine.dp import DPPolicy

    return DPPolicy.from_dict(data)


def _rage_from_dict(data: Mapping[str, Any] | None) -> RagePolicy | None:
    if data is None:
        return None
    from heatengine.rage import RagePolicy

    return RagePolicy.from_dict(data)


def _normalise_column_map(mapping: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    unknown = sorted(set(mapping) - set(CANONICAL_COLUMNS))
    if unknown:
        msg = (
            f"column_map keys must be canonical columns ({', '.join(CANONICAL_COLUMNS)}); "
            f"unknown: {', '.join(unknown)}"
        )
        raise ValueError(msg)
    sources = list(mapping.values())
    if len(set(sources)) != len(sources):
        msg = f"column_map maps one input column onto two canonical columns: {dict(mapping)}"
        raise ValueError(msg)
    return tuple(sorted(mapping.items()))


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
