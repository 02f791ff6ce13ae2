"""The one place that sequences the pipeline, from input rows to a :class:`HeatmapSet`.

read -> minimise -> types -> reasons (quarantine, consent, retention) -> pseudonymise
-> bin into a partial -> per-cell totals -> suppress -> smooth -> publish.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from heatengine.config import AggregateConfig
from heatengine.coverage import CoveragePairs, coverage_pairs, summarise
from heatengine.disclosure import (
    DisclosureStats,
    dominance_possible_from_k,
    dominance_unsafe,
    secondary_suppression,
)
from heatengine.dp import clamped, dp_release
from heatengine.elements import element_engagement
from heatengine.errors import HeatengineError, QuarantineError
from heatengine.heatmaps import HeatmapSet, RowCounts, RunStats
from heatengine.io import Sources, scan_batches, scan_slices
from heatengine.kernels import count_values, remap_in_place
from heatengine.layers import code_layers, distinct_codes, used_layers
from heatengine.partial import Partial, TapPartial, cell_keys, users_per_layer
from heatengine.pii import input_summary, scan_input
from heatengine.privacy import SuppressionStats, suppress_sparse_cells
from heatengine.pseudonym import (
    PseudonymKey,
    missing_key_error,
    pseudonymise_ids,
    tokens_from_text,
)
from heatengine.rage import rage_taps
from heatengine.schema import (
    ELIGIBLE,
    EXCLUSION_REASONS,
    FIRST_QUARANTINE_CODE,
    LAYER,
    QUARANTINE_REASONS,
    RAGE_SUFFIX,
    REASON_CODE,
    REASON_CODES,
    SESSION,
    USER_CODE,
    ResolvedColumns,
    clean_user_values,
    coerce_types,
    normalised_coordinates,
    reason_expression,
    reason_names,
    resolve_columns,
    text_source_columns,
)
from heatengine.smooth import smooth_grids
from heatengine.spill import UserSpill

Progress = Callable[[str, float], None]
#: Seed of the in-run hash that matches people across batches for consent coverage.
COVERAGE_SEED = 0xC0FE
#: A streaming run reads Parquet files in slices of at most this many rows, so its
#: memory does not follow the size of the largest file (except with rage taps, found
#: per file; see :func:`heatengine.io.scan_slices`).
STREAMING_BATCH_ROWS = 2**20
#: Fewest rows per slice worth evaluating an expression on its own thread.
PARALLEL_SLICE_MIN_ROWS = 2**16


def aggregate(
    source: Sources,
    config: AggregateConfig | None = None,
    *,
    key: PseudonymKey | None = None,
    chunks: int | None = None,
    progress: Progress | None = None,
    streaming: bool = False,
    spill_dir: str | os.PathLike[str] | None = None,
) -> HeatmapSet:
    """Turn taps into private, smoothed per-layer heatmaps.

    Parameters
    ----------
    source
        A Polars DataFrame or LazyFrame, or a path, glob, directory or list of paths to
        Parquet, CSV or NDJSON files (hive-partitioned folders included).
    config
        What to compute and publish; defaults to :class:`AggregateConfig`.
    key
        Secret for pseudonymising a raw ``user_id`` column; when omitted, the key in
        ``HEATENGINE_KEY`` is used. Not needed when the input has ``user_token``.
    chunks
        Parallel chunks for binning (default: Numba's thread count). Results are the
        same for every value.
    progress
        Called with ``(step, seconds)`` after each step, for logs and progress display.
    streaming
        Process the input a batch at a time (Parquet files and frames in near-equal
        slices of at most :data:`STREAMING_BATCH_ROWS` rows; CSV and NDJSON files, a
        LazyFrame given, and any file when rage taps are on, whole), spilling the taps
        to disk grouped by a hash of the user, then count the spilled taps a part of
        whole users at a time (:mod:`heatengine.spill`): memory is bounded by two
        batches (the next is read ahead) and one part, not by the input, apart from
        consent-coverage pairs and the quarantined rows returned at the end. Dominance
        rules that can fire, true totals, elements and differential privacy read every
        contribution at once and so load all parts. The result is identical to a run
        without streaming, except that rage-tap bursts (``config.rage_taps``) are found
        within each file.
    spill_dir
        Where a streaming run spills (a temporary folder inside it, removed at the end;
        default: the system's temporary folder). It takes about 12 bytes per tap, plus
        the quarantined rows.

    Returns
    -------
    HeatmapSet
        Published cells, grids, layers and statistics.

    Raises
    ------
    SchemaError
        A required column is missing or has the wrong type.
    QuarantineError
        ``config.strict`` is set and rows would be quarantined.
    HeatengineError
        Raw user ids without a key, or an unreadable input.

    Examples
    --------
    >>> from heatengine.synthetic import generate_taps
    >>> taps = generate_taps(20_000, seed=1)
    >>> config = AggregateConfig(as_of=datetime(2026, 11, 30, tzinfo=timezone.utc))
    >>> result = aggregate(taps, config, key=PseudonymKey(b"demo key, at least 32 bytes long!"))
    >>> result.stats.rows_in
    20000
    """
    config = config or AggregateConfig()
    as_of = config.as_of or datetime.now(UTC)
    clock = _Clock(progress)
    if spill_dir is not None and not streaming:
        msg = "a spill folder is used only by streaming runs (--streaming, streaming=True)"
        raise HeatengineError(msg)
    if spill_dir is not None and not Path(spill_dir).is_dir():
        msg = f"the spill folder {str(spill_dir)!r} does not exist"
        raise HeatengineError(msg)
    spill = UserSpill(config.grid, spill_dir) if streaming else None
    with spill or contextlib.nullcontext():  # closing the spill frees its files
        # Taps stay uncounted: publishing counts them only if a step needs the list.
        partial, counts, quarantine, coverage = build_piece(
            source, config, as_of=as_of, key=key, chunks=chunks, clock=clock, spill=spill
        )
        counts = with_coverage(counts, coverage, config)
        heatmaps = publish(
            partial, counts, config, as_of=as_of, chunks=chunks, quarantine=quarantine
        )
        if spill is not None:  # the quarantined rows come back once the peak is past
            heatmaps = replace(heatmaps, quarantine=spill.rows_set_aside())
    clock.lap("suppress and smooth")
    return heatmaps


def build_partial(
    source: Sources, config: AggregateConfig, *, as_of: datetime, **options: Any
) -> tuple[Partial, RowCounts, pl.DataFrame]:
    """Read, validate and bin: the mergeable partial, row counts and quarantined rows.

    ``options`` are those of :func:`build_piece` (``key``, ``chunks``, ``clock``).
    """
    partial, counts, quarantine, coverage = build_piece(source, config, as_of=as_of, **options)
    return partial.whole(options.get("chunks")), with_coverage(counts, coverage, config), quarantine


def with_coverage(
    counts: RowCounts, coverage: dict[str, list[CoveragePairs]], config: AggregateConfig
) -> RowCounts:
    """``counts`` with the consent coverage of every batch's (layer, person) pairs."""
    summary = {
        what: summarise(pairs, config.layer_columns, config.privacy.k)
        for what, pairs in coverage.items()
    }
    return replace(counts, consent_coverage=summary or None)


def build_piece(
    source: Sources,
    config: AggregateConfig,
    *,
    as_of: datetime,
    key: PseudonymKey | None = None,
    chunks: int | None = None,
    clock: _Clock | None = None,
    spill: UserSpill | None = None,
) -> tuple[TapPartial, RowCounts, pl.DataFrame, dict[str, list[CoveragePairs]]]:
    """:func:`build_partial` with the consent-coverage pairs not yet summarised, so the
    pieces of several workers can be combined exactly first.

    With a ``spill``, input files are read one at a time (Parquet files in slices),
    their taps spilled to it and their quarantined rows set aside there (the quarantine
    returned is then empty: :meth:`~heatengine.spill.UserSpill.rows_set_aside`);
    otherwise they are read as one. Either way the taps are not yet counted
    (:class:`~heatengine.partial.TapPartial`): ``.whole()`` counts them into a
    :class:`~heatengine.partial.Partial` to store or merge.
    """
    clock = clock or _Clock(None)
    # Personal data in any column, dropped ones included, on a sample: for the record.
    pii_input = input_summary(scan_input(source))
    if spill is None:  # everything at once
        batches = scan_batches(source, text_source_columns(config))
        batches = [pl.concat(batches, how="vertical")] if len(batches) > 1 else batches
    elif config.rage_taps is None:
        batches = scan_slices(source, text_source_columns(config), STREAMING_BATCH_ROWS)
    else:  # rage-tap bursts are found per file
        batches = scan_batches(source, text_source_columns(config))
    reasons = dict.fromkeys(REASON_CODES, 0)
    quarantines = []
    rows_in = rows_eligible = 0
    screens_renamed: set[int] = set()  # a name renamed in two files counts once
    coverage: dict[str, list[CoveragePairs]] = {}
    # Closing the reads stops the read ahead when a batch fails.
    with contextlib.closing(_read_ahead(batches, config)) as reads:
        for number in range(1, len(batches) + 1):
            raw, columns = next(reads)  # unpacked, so ``del raw`` frees the batch
            if columns.user == "user_id" and key is None:
                key = PseudonymKey.from_environment()
                if key is None:
                    raise missing_key_error()
            batch = _label(raw, columns, config, as_of)
            del raw
            if spill is None:
                clock.lap("read and validate")
            for reason, n in batch.reasons.items():
                reasons[reason] += n
            if spill is None:
                quarantines.append(batch.quarantine)
            else:  # on disk until the run is published: they add up with the input
                spill.set_aside(batch.quarantine)
            rows_in += batch.rows
            rows_eligible += batch.eligible.height
            screens_renamed |= batch.screens_renamed
            for what, pairs in (batch.coverage or {}).items():
                coverage.setdefault(what, []).append(pairs)
            taps = _binning_inputs(batch, columns, config, key)
            del batch
            if spill is None:  # the only batch: the whole input
                layers, layer, x, y, tokens = taps
                keys = cell_keys(config.grid, layers.height, layer, x, y, tokens)
                partial = TapPartial(config.grid, layers, keys, tokens, chunks)
                clock.lap("bin")
            else:
                spill.add(*taps)
                clock.lap(f"batch {number}/{len(batches)}")
            del taps  # its coordinates are views that keep the batch's columns alive
    if spill is not None:
        partial = spill.finish(list(config.layer_columns), chunks)
    counts = RowCounts(
        rows_in=rows_in,
        rows_eligible=rows_eligible,
        quarantined={r: reasons[r] for r in QUARANTINE_REASONS if reasons[r]},
        excluded={r: reasons[r] for r in EXCLUSION_REASONS if reasons[r]},
        dropped_columns=list(columns.dropped),
        consent_assumed=not columns.has_consent,
        user_column=columns.user,
        key_epoch=key.epoch if key is not None and columns.user == "user_id" else None,
        screens_renamed=len(screens_renamed),
        pii_input=pii_input,
    )
    quarantine = pl.concat(quarantines, how="vertical") if quarantines else pl.DataFrame()
    return partial, counts, quarantine, coverage


def _read_ahead(
    batches: list[pl.LazyFrame], config: AggregateConfig
) -> Iterator[tuple[pl.DataFrame, ResolvedColumns]]:
    """Each batch read, with its resolved columns; the next one is read in a thread
    while the caller works on this one (Polars reads without holding the GIL).

    Nothing here keeps a batch once it is handed over, so the caller alone decides
    when it is freed; closing the generator cancels or waits out the read in flight.
    """

    def read(lf: pl.LazyFrame) -> tuple[pl.DataFrame, ResolvedColumns]:
        lf, columns = resolve_columns(lf, config)
        return lf.collect(), columns

    if len(batches) == 1:
        yield read(batches[0])
        return
    reader = ThreadPoolExecutor(max_workers=1)
    pending: Future | None = reader.submit(read, batches[0])
    try:
        for following in [*batches[1:], None]:
            current = pending
            pending = None if following is None else reader.submit(read, following)
            handed = [current.result()]
            del current  # a finished future holds its result
            yield handed.pop()
    finally:
        if pending is not None:
            pending.cancel()
        reader.shutdown(wait=True, cancel_futures=True)


def publish(
    partial: Partial | TapPartial,
    counts: RowCounts,
    config: AggregateConfig,
    *,
    as_of: datetime,
    window_start: datetime | None = None,
    chunks: int | None = None,
    quarantine: pl.DataFrame | None = None,
) -> HeatmapSet:
    """Suppress, smooth and tabulate a fully merged partial into a :class:`HeatmapSet`.

    ``window_start`` defaults to the retention horizon before ``as_of``.
    """
    heatmaps = _publish(partial, config, chunks)
    start = window_start or as_of - timedelta(days=config.privacy.retention_days)
    counts = replace(
        counts, consent_coverage=_published_coverage(counts.consent_coverage, heatmaps, config)
    )
    stats = RunStats(
        **{f.name: getattr(counts, f.name) for f in fields(RowCounts)},
        as_of=as_of.isoformat(),
        window_start=start.isoformat(),
        suppression=heatmaps.suppression,
        # Rage layers repeat taps of their screens: counted once, in the screens.
        published_taps=int(
            heatmaps.layers.filter(~pl.col("screen").str.ends_with(RAGE_SUFFIX))["taps"].sum() or 0
        ),
        dp=heatmaps.dp,
    )
    return HeatmapSet(
        config=config,
        layers=heatmaps.layers,
        cells=heatmaps.cells,
        grids=heatmaps.grids,
        stats=stats,
        quarantine=pl.DataFrame() if quarantine is None else quarantine,
        elements=heatmaps.elements,
        dead_cells=heatmaps.dead_cells,
    )


def _published_coverage(coverage: dict | None, heatmaps: _Published, config: AggregateConfig):
    """Per-layer coverage only for published layers with a published figure: a layer
    name seen only in hidden cells, or only by users without consent, stays unsaid."""
    if coverage is None:
        return None
    columns = list(config.layer_columns)
    shown = set(heatmaps.layers.select(columns).iter_rows())
    return {
        what: {
            **summary,
            "layers": [
                layer
                for layer in summary["layers"]
                if layer["coverage"] is not None and tuple(layer[c] for c in columns) in shown
            ],
        }
        for what, summary in coverage.items()
    }


class _Batch(NamedTuple):
    rows: int
    reasons: dict[str, int]
    quarantine: pl.DataFrame
    eligible: pl.DataFrame
    layers: pl.DataFrame
    ids: _UserIds | None
    screens_renamed: frozenset[int]
    coverage: dict[str, CoveragePairs] | None


class _UserIds(NamedTuple):
    """Ids numbered per distinct value: ``code`` per row (-1: missing), ``ids`` cleaned."""

    code: np.ndarray
    ids: pl.Series


def _code_user_ids(raw: pl.DataFrame, columns: ResolvedColumns) -> _UserIds | None:
    """Number the ids once per distinct value; ``None`` for integer tokens, used as given."""
    series = raw[columns.user]
    if columns.user == "user_token" and series.dtype.is_integer():
        return None
    codes, distinct = distinct_codes(series)
    cleaned = clean_user_values(distinct)  # " u1" and "u1" are one user
    present = cleaned.is_not_null().to_numpy()
    ids = cleaned.filter(present)
    if ids.n_unique() == ids.len():  # cleaning merged no ids: the present ones, in order
        position = np.where(present, np.cumsum(present) - 1, -1).astype(np.int32)
    else:
        ids = ids.unique(maintain_order=True)
        position = (
            cleaned.to_frame()
            .join(ids.to_frame().with_row_index("position"), on=ids.name, how="left",
                  maintain_order="left")["position"]
            .fill_null(-1)
            .cast(pl.Int32)
            .to_numpy()
        )  # fmt: skip
    if ids.len() < present.size:  # else every position is its own: nothing to map
        remap_in_place(codes, position)
    return _UserIds(codes, ids)


def _label(
    raw: pl.DataFrame, columns: ResolvedColumns, config: AggregateConfig, as_of: datetime
) -> _Batch:
    """Give every row of one batch its reason; split off quarantined and eligible rows."""
    coded = code_layers(raw, config)
    labelled = coerce_types(raw, columns, config).with_columns(pl.Series(LAYER, coded.layer))
    ids = _code_user_ids(raw, columns)
    user = columns.user
    if ids is not None:
        labelled = labelled.with_columns(pl.Series(USER_CODE, ids.code))
        user = USER_CODE
    missing_user = None if ids is None else pl.col(USER_CODE) < 0
    reason = reason_expression(columns, config, as_of, missing_user)
    labelled = labelled.with_columns(_in_slices(labelled, reason))
    code = labelled[REASON_CODE].to_numpy()  # never null, so not copied
    reasons = _reason_counts(code)
    coverage = _coverage(labelled, raw, columns, config, as_of, coded.layers, ids)
    quarantined = {r: reasons[r] for r in QUARANTINE_REASONS if reasons[r]}
    if config.strict and quarantined:
        details = ", ".join(f"{reason}: {n:,}" for reason, n in quarantined.items())
        msg = f"strict mode: {sum(quarantined.values()):,} rows would be quarantined ({details})"
        raise QuarantineError(msg)
    # Rows are picked by numpy row numbers and masks: Polars predicates took twice as long.
    # Quarantined rows keep their values as given (pixels stay pixels), minus the user.
    quarantine_rows = np.flatnonzero(code >= FIRST_QUARANTINE_CODE) if quarantined else []
    quarantine = (
        labelled.gather(quarantine_rows)
        .with_columns(reason_names(pl.col(REASON_CODE)).alias("reason"))
        .drop(REASON_CODE, LAYER, columns.user, USER_CODE, SESSION, strict=False)
    )
    # Only what binning needs is copied by the filter (a large part of peak memory).
    needed = [LAYER, user, *normalised_coordinates(config)]
    if config.rage_taps is not None:  # bursts are found by time
        needed.append("ts")
    eligible = labelled.select(needed).filter(pl.Series(code == ELIGIBLE))
    return _Batch(
        labelled.height,
        reasons,
        quarantine,
        eligible,
        coded.layers,
        ids,
        coded.screens_renamed,
        coverage,
    )


def _in_slices(frame: pl.DataFrame, expression: pl.Expr, parts: int | None = None) -> pl.Series:
    """``expression`` over ``frame``, evaluated on ``parts`` slices of rows at once
    (default: one per Polars thread, each at least :data:`PARALLEL_SLICE_MIN_ROWS`).

    Polars evaluates a chain of when/then rules on one core; slices collected together
    use them all (the reason codes of 10M rows: 60 -> 35 ms on two cores). Only for
    expressions that give one value per row from that row alone: a sum, rank or shift
    would be computed per slice.

    Raises
    ------
    ValueError
        The expression does not give one value per row.
    """
    if parts is None:
        parts = min(pl.thread_pool_size(), frame.height // PARALLEL_SLICE_MIN_ROWS)
    if min(parts, frame.height) <= 1:
        result = frame.select(expression).to_series()
    else:
        step = -(-frame.height // parts)
        lazy = frame.lazy()
        starts = range(0, frame.height, step)
        slices = pl.collect_all([lazy.slice(start, step).select(expression) for start in starts])
        result = pl.concat(slices, rechunk=True).to_series()
    if result.len() != frame.height:
        msg = f"{expression} gives {result.len():,} values for {frame.height:,} rows"
        raise ValueError(msg)
    return result


def _coverage(
    labelled: pl.DataFrame,
    raw: pl.DataFrame,
    columns: ResolvedColumns,
    config: AggregateConfig,
    as_of: datetime,
    layers: pl.DataFrame,
    ids: _UserIds | None,
) -> dict[str, CoveragePairs] | None:
    """Distinct (layer, user) and (layer, session) pairs of the valid rows in the window,
    with whether any was consented; ``None`` without a consent column."""
    if not (columns.has_consent and config.consent_coverage):
        return None
    code, ts = pl.col(REASON_CODE), pl.col("ts")
    horizon = as_of - timedelta(days=config.privacy.retention_days)
    declined_in_window = (
        (code == REASON_CODES["no_consent"])
        & (pl.col(LAYER) >= 0)
        & ts.is_between(pl.lit(horizon), pl.lit(as_of))
        & (pl.col(USER_CODE) >= 0 if ids is not None else pl.col(columns.user).is_not_null())
    )
    counted = ((code == ELIGIBLE) | declined_in_window).fill_null(False)
    rows = labelled.select(counted).to_series()
    # Polars filters in parallel: six times faster than numpy's boolean indexing here.
    user_code_column = [USER_CODE] if ids is not None else []
    needed = [LAYER, (code == ELIGIBLE).alias("consented"), *user_code_column]
    kept = labelled.select(needed).filter(rows)
    layer, consented = kept[LAYER].to_numpy(), kept["consented"].to_numpy()
    # Each row's person is its run-stable key: an id's hash, or a token's bits.
    if ids is not None:
        person = ids.ids.hash(seed=COVERAGE_SEED).to_numpy()[kept[USER_CODE].to_numpy()]
    else:
        tokens = raw[columns.user].filter(rows)
        if tokens.dtype.is_signed_integer():  # as _user_tokens: the bits, not the value
            tokens = tokens.cast(pl.Int64).reinterpret(signed=False)
        person = tokens.cast(pl.UInt64).to_numpy()
    out = {"users": coverage_pairs(layers, layer, person, consented)}
    if SESSION in raw.columns:
        sessions = raw[SESSION].filter(rows)
        present = sessions.is_not_null().to_numpy()
        person = sessions.hash(seed=COVERAGE_SEED).to_numpy()
        out["sessions"] = coverage_pairs(
            layers, layer[present], person[present], consented[present]
        )
    return out


class _Clock:
    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        if self._progress is not None:
            self._progress(step, now - self._last)
        self._last = now


def _reason_counts(code: np.ndarray) -> dict[str, int]:
    """Rows per reason name (eligible rows not included), every reason present."""
    counts = count_values(code, len(REASON_CODES) + 1)
    return {reason: int(counts[code]) for reason, code in REASON_CODES.items()}


def _user_tokens(batch: _Batch, columns: ResolvedColumns, key: PseudonymKey | None) -> np.ndarray:
    """uint64 token per eligible row, computed once per distinct id.

    Integer ``user_token`` values are used as given; other ids were numbered per
    distinct value (:func:`_code_user_ids`) and each distinct id is pseudonymised once.
    """
    if batch.ids is None:
        series = batch.eligible[columns.user]
        if series.dtype.is_signed_integer():
            series = series.cast(pl.Int64).reinterpret(signed=False)
        return series.cast(pl.UInt64).to_numpy()
    if columns.user == "user_id":
        if key is None:
            raise missing_key_error()
        tokens = pseudonymise_ids(batch.ids.ids, key)
    else:
        tokens = tokens_from_text(batch.ids.ids.cast(pl.String))
    return tokens[batch.eligible[USER_CODE].to_numpy()]


def _binning_inputs(
    batch: _Batch, columns: ResolvedColumns, config: AggregateConfig, key: PseudonymKey | None
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Layer rows, and per tap its layer, ``x``, ``y`` and user token, rage taps added."""
    eligible = batch.eligible
    layer = eligible[LAYER].to_numpy()
    x, y = eligible["x"].to_numpy(), eligible["y"].to_numpy()
    tokens = _user_tokens(batch, columns, key)
    layers = batch.layers
    if config.rage_taps is not None:
        layers, layer, x, y, tokens = _with_rage_layers(
            layers, layer, x, y, tokens, eligible["ts"], config
        )
    layers, layer = used_layers(layers, layer)
    return layers, layer, x, y, tokens


def _with_rage_layers(
    layers: pl.DataFrame,
    layer: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    tokens: np.ndarray,
    ts: pl.Series,
    config: AggregateConfig,
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Add each rage tap a second time, to its layer's rage layer (``screen`` with
    :data:`RAGE_SUFFIX`), so rage taps are binned, merged and k-suppressed like any tap."""
    taken = layers.filter(pl.col("screen").str.ends_with(RAGE_SUFFIX))["screen"]
    if taken.len():
        msg = (
            f"{taken.len()} screen name(s) already end with {RAGE_SUFFIX!r}, which names "
            "rage-tap layers; rename them or run without rage taps"
        )
        raise HeatengineError(msg)
    frame = pl.DataFrame({"user": tokens, "layer": layer, "ts": ts, "x": x, "y": y})
    rage = rage_taps(frame, user="user", screen="layer", policy=config.rage_taps)
    rage_layers = layers.with_columns(pl.col("screen") + RAGE_SUFFIX)
    both = pl.concat([layers, rage_layers], how="vertical").with_row_index("given")
    ordered = both.sort(list(config.layer_columns))
    position = np.empty(both.height, np.int64)
    position[ordered["given"].to_numpy()] = np.arange(both.height)
    return (
        ordered.drop("given"),
        np.concatenate([position[layer], position[layer[rage] + layers.height]]),
        np.concatenate([x, x[rage]]),
        np.concatenate([y, y[rage]]),
        np.concatenate([tokens, tokens[rage]]),
    )


class _Published(NamedTuple):
    layers: pl.DataFrame
    cells: pl.DataFrame
    grids: np.ndarray
    suppression: SuppressionStats
    dp: dict | None = None
    elements: pl.DataFrame | None = None
    dead_cells: np.ndarray | None = None


def _publish(
    partial: Partial | TapPartial, config: AggregateConfig, chunks: int | None
) -> _Published:
    """Suppress, smooth and tabulate a fully merged partial.

    Everything returned is derived from the suppressed counts, except the true layer
    totals asked for with ``privacy.true_totals``, which secondary suppression protects.
    """
    if _reads_contribution_list(config):
        partial = partial.whole(chunks)
    if config.dp is not None:
        return _publish_dp(partial, config)
    grid = config.grid
    users, taps = partial.cell_totals(config.privacy.max_taps_per_user_cell)
    true_layer_taps = taps.sum(axis=1)
    hidden, rules = _hidden_by_other_rules(partial, users, taps, config)
    users, taps, layer_published, suppression = suppress_sparse_cells(
        users, taps, config.privacy.k, hidden
    )
    suppression = replace(suppression, **rules.to_dict())
    keep = np.flatnonzero(layer_published)
    users, taps = users[keep], taps[keep]
    measure = users if config.measure == "users" else taps
    grids = smooth_grids(measure.reshape(len(keep), *grid.shape), config.sigma)
    layer_rows = _numbered(partial.layers[keep])
    position, cell = np.nonzero(users)
    cells = _cells_table(
        layer_rows,
        config,
        position,
        cell,
        users=users[position, cell],
        taps=taps[position, cell],
        density=grids.reshape(len(keep), grid.cells)[position, cell],
    )
    layer_users = _published_users_per_layer(partial, users > 0, keep, chunks)
    layers = layer_rows.with_columns(
        users=pl.Series(layer_users, dtype=pl.Int64),
        taps=pl.Series(
            true_layer_taps[keep] if config.privacy.true_totals else taps.sum(axis=1),
            dtype=pl.Int64,
        ),
        cells=pl.Series((users > 0).sum(axis=1), dtype=pl.Int64),
        peak=pl.Series(
            grids.reshape(len(keep), grid.cells).max(axis=1, initial=0.0), dtype=pl.Float64
        ),
    )
    if config.rage_taps is not None:
        layers = _with_rage_share(layers, config)
    if not config.elements:
        return _Published(layers, cells, grids, suppression)
    elements, per_layer, dead = _element_tables(partial, users > 0, keep, config, chunks)
    layers = layers.join(
        per_layer, on=list(config.layer_columns), how="left", nulls_equal=True,
        maintain_order="left",
    )  # fmt: skip
    elements = layer_rows.select("layer", *config.layer_columns).join(
        elements, on=list(config.layer_columns), how="inner", nulls_equal=True
    )
    return _Published(layers, cells, grids, suppression, None, elements, dead)


def _reads_contribution_list(config: AggregateConfig) -> bool:
    """Whether publishing needs each (cell, user) contribution, not only figures that
    add across disjoint users (cell totals, users per layer)."""
    privacy = config.privacy
    rule, cap = privacy.dominance, privacy.max_taps_per_user_cell
    return (
        config.dp is not None
        or bool(config.elements)
        or privacy.true_totals
        or dominance_possible_from_k(rule, cap, privacy.k)
    )


def _with_rage_share(layers: pl.DataFrame, config: AggregateConfig) -> pl.DataFrame:
    """``rage_tap_share``: a layer's published rage taps over its published taps (null for
    rage layers, and where no rage cell was published)."""
    columns = list(config.layer_columns)
    is_rage = pl.col("screen").str.ends_with(RAGE_SUFFIX)
    rage = layers.filter(is_rage).select(
        pl.col("screen").str.strip_suffix(RAGE_SUFFIX), *columns[1:], rage_taps="taps"
    )
    joined = layers.join(rage, on=columns, how="left", nulls_equal=True, maintain_order="left")
    share = pl.when(is_rage).then(None).otherwise(pl.col("rage_taps") / pl.col("taps"))
    return joined.with_columns(rage_tap_share=share).drop("rage_taps")


def _element_tables(
    partial: Partial,
    published: np.ndarray,
    keep: np.ndarray,
    config: AggregateConfig,
    chunks: int | None,
) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """Engagement per element, dead taps per layer and the dead cells of kept layers.

    Only contributions in published cells are read, as for every other published
    figure: an element's taps minus its published cells must not give away hidden ones.
    """
    visible = _published_keys(partial, published, keep)[partial.keys]
    seen = Partial(
        partial.grid,
        partial.layers,
        partial.keys[visible],
        partial.users[visible],
        partial.taps[visible],
    )
    privacy = config.privacy
    columns = ["screen", "element", "x0", "y0", "x1", "y1"]
    table = pl.DataFrame([list(e) for e in config.elements], schema=columns, orient="row")
    engagement = element_engagement(seen, table, privacy.max_taps_per_user_cell, privacy.k, chunks)
    per_layer = engagement.screens.select(
        *config.layer_columns, "dead_taps", "dead_tap_share", "elements_suppressed"
    )
    return engagement.elements, per_layer, engagement.dead_cells[keep]


def _published_keys(
    partial: Partial | TapPartial, published: np.ndarray, keep: np.ndarray
) -> np.ndarray:
    """Boolean per possible key: the cell is published (``published`` rows are ``keep``)."""
    mask = np.zeros(partial.n_keys, bool)
    mask.reshape(partial.layers.height, partial.grid.cells)[keep] = published
    return mask


def _publish_dp(partial: Partial, config: AggregateConfig) -> _Published:
    """Noise every cell of the public and selected layers; smooth only the noisy counts.

    Cells carry the clamped noisy count of the measure (the other measure is null: it
    was not released), the raw noisy count and its 95% interval. A layer's ``taps`` is
    the sum of its clamped cells (post-processing, like the smoothing); its ``users`` is
    null, as distinct users per layer are not part of the release.
    """
    grid = config.grid
    release = dp_release(partial, config.dp, config.measure)
    n = release.layers.height
    noisy = release.values
    values = clamped(noisy)
    grids = smooth_grids(values.reshape(n, *grid.shape), config.sigma)
    layer_rows = _numbered(release.layers)
    position, cell = np.divmod(np.arange(n * grid.cells, dtype=np.int64), grid.cells)
    margin = int(release.interval_95)
    released = pl.Series(values.ravel(), dtype=pl.Int64)
    absent = pl.Series([None] * released.len(), dtype=pl.Int64)
    measures = {"users": absent, "taps": absent, config.measure: released}
    cells = _cells_table(
        layer_rows,
        config,
        position,
        cell,
        **measures,
        density=grids.reshape(-1),
        noisy=noisy.ravel(),
        low=np.maximum(noisy.ravel() - margin, 0),
        high=np.maximum(noisy.ravel() + margin, 0),
    )
    # Distinct users per layer were not released; a sum of per-cell users is not one.
    taps = pl.Series(values.sum(axis=1), dtype=pl.Int64)
    layers = layer_rows.with_columns(
        users=pl.lit(None, pl.Int64),
        taps=taps if config.measure == "taps" else pl.lit(None, pl.Int64),
        cells=pl.lit(grid.cells, pl.Int64),
        peak=pl.Series(grids.reshape(n, grid.cells).max(axis=1, initial=0.0), dtype=pl.Float64),
    )
    # Every cell of every released layer is published, with noise; none is suppressed.
    zero = SuppressionStats(0, n * grid.cells, 0, n, n, 0)
    details = {
        "noise": release.noise,
        "noise_scale": release.noise_scale,
        "interval_95": release.interval_95,
        "epsilon_spent": release.epsilon_spent,
        "delta_spent": release.delta_spent,
        "screens_selected": release.screens_selected,
        "screens_considered": release.screens_considered,
    }
    return _Published(layers, cells, grids, zero, details)


def _numbered(layers: pl.DataFrame) -> pl.DataFrame:
    """Layer rows with their published ids, ``layer_0000`` onwards, first."""
    ids = pl.format("layer_{}", pl.int_range(layers.height).cast(pl.String).str.zfill(4))
    return layers.select(ids.alias("layer"), pl.all())


def _cells_table(
    layer_rows: pl.DataFrame,
    config: AggregateConfig,
    position: np.ndarray,
    cell: np.ndarray,
    **values: np.ndarray | pl.Series,
) -> pl.DataFrame:
    """One row per (layer position, cell): the layer's columns, ``cx``, ``cy``, values."""
    columns = config.grid.columns
    layer_columns = list(config.layer_columns)
    table = pl.DataFrame(
        {
            "position": position.astype(np.int64),
            "cx": (cell % columns).astype(np.int32),
            "cy": (cell // columns).astype(np.int32),
            **values,
        }
    )
    positions = layer_rows.select(layer_columns).with_row_index("position")
    return table.join(
        positions.cast({"position": pl.Int64}), on="position", how="left", maintain_order="left"
    ).select(*layer_columns, "cx", "cy", *values)


def _hidden_by_other_rules(
    partial: Partial | TapPartial, users: np.ndarray, taps: np.ndarray, config: AggregateConfig
) -> tuple[np.ndarray, DisclosureStats]:
    """Cells hidden by dominance rules and, with true totals, by secondary suppression."""
    privacy = config.privacy
    cap, rule = privacy.max_taps_per_user_cell, privacy.dominance
    nonempty = users > 0
    below_k = nonempty & (users < privacy.k)
    p_unsafe = nk_unsafe = np.zeros(users.shape, bool)
    if dominance_possible_from_k(rule, cap, privacy.k):  # ``partial`` is then whole
        p_unsafe, nk_unsafe = (
            mask.reshape(users.shape)
            for mask in dominance_unsafe(partial.keys, partial.taps, cap, partial.n_keys, rule)
        )
    hidden = below_k | (nonempty & (p_unsafe | nk_unsafe))
    added = np.zeros(users.shape, bool)
    if privacy.true_totals:
        values = users if config.measure == "users" else taps
        added, _ = secondary_suppression(partial.keys, partial.users, hidden, values, privacy.k)
    rules = DisclosureStats.from_masks(nonempty, below_k, p_unsafe, nk_unsafe, added)
    return hidden | added, rules


def _published_users_per_layer(
    partial: Partial | TapPartial, published: np.ndarray, keep: np.ndarray, chunks: int | None
) -> np.ndarray:
    """Distinct users per kept layer, counting only users seen in a published cell."""
    return users_per_layer(partial, keep, _published_keys(partial, published, keep), chunks)
