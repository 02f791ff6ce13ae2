"""Compare heatengine with the obvious alternatives on the same data.

Times are taken in one process, on the same frame or files; each tool's peak memory is
measured in a fresh process, so no tool runs on pages an earlier one left behind.

The job: per (screen, cell) of a public grid, exact distinct users and taps with each
user's taps per cell capped, over rows that pass consent, retention and coordinate
checks; only cells with at least ``k`` users are kept. heatengine runs its whole pipeline
(validation, suppression and smoothing included); the peers run the same job as a query.
Every peer's answer is checked equal to heatengine's before any time is reported.

Peers are optional: Polars is always there; DuckDB runs when installed (``pip install
heatengine[bench]``). Counts-only tools (numpy ``bincount``) are timed on the easier
job of counting taps per cell and checked against the same counts.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl

from heatengine.config import AggregateConfig, GridSpec, PrivacyPolicy
from heatengine.pipeline import aggregate
from heatengine.synthetic import DEMO_END, generate_taps

BENCH_GRID = GridSpec(128, 256)
TOKEN_SEED = 0
RESULT_COLUMNS = ["screen", "cx", "cy", "users", "taps"]


@dataclass(frozen=True)
class Timing:
    """One tool's result on one job."""

    tool: str
    job: str
    seconds: float
    median_seconds: float
    peak_extra_mb: float
    taps: int

    @property
    def million_taps_per_second(self) -> float:
        """Throughput."""
        return self.taps / self.seconds / 1e6


def benchmark_taps(n_taps: int, seed: int = 0, n_users: int | None = None) -> pl.DataFrame:
    """Generated taps with pseudonymous uint64 ``user_token`` instead of raw ids."""
    taps = generate_taps(n_taps, seed=seed, n_users=n_users)
    # One token per user whatever the seed: files generated with different seeds then
    # share their users, as the days of one app do.
    token = pl.col("user_id").hash(TOKEN_SEED).alias("user_token")
    return taps.with_columns(token).select("screen", "x", "y", "user_token", "ts", "consent")


def bench_config(k: int = 10, consent_coverage: bool = False) -> AggregateConfig:
    """The benchmark's configuration: 128 x 256 grid, k, smoothing on.

    Consent coverage is off: it is not part of the job the peers run. ``compare`` also
    times heatengine with it on, in its own row.
    """
    return AggregateConfig(
        grid=BENCH_GRID,
        privacy=PrivacyPolicy(k=k),
        as_of=DEMO_END,
        consent_coverage=consent_coverage,
    )


class PeakMemory:
    """Peak resident memory above the starting point, sampled every few milliseconds.

    Sees native allocations (Polars, DuckDB, Numba) that ``tracemalloc`` cannot.
    """

    def __init__(self, interval: float = 0.002) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0

    @staticmethod
    def _rss() -> int:
        with open(f"/proc/{os.getpid()}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> PeakMemory:
        self._start = self._rss()
        self.peak = self._start
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self._interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def extra_mb(self) -> float:
        """Peak minus start, in MB."""
        return (self.peak - self._start) / 1e6


def _time(
    tool: str, job: str, taps: int, run: Callable[[], object], repeat: int, peak_mb: float
) -> tuple[Timing, object]:
    """Best and median of ``repeat`` runs; memory is measured elsewhere (``peak_mb``),
    in a fresh process, so no sampling thread runs beside the timed code."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return Timing(tool, job, min(times), statistics.median(times), peak_mb, taps), result


def _eligible_filter(config: AggregateConfig) -> pl.Expr:
    as_of = config.as_of
    horizon = as_of - timedelta(days=config.privacy.retention_days)
    return (
        pl.col("consent").fill_null(False)
        & pl.col("x").is_between(0, 1)
        & pl.col("y").is_between(0, 1)
        & pl.col("screen").str.strip_chars().ne("")
        & pl.col("user_token").is_not_null()
        & pl.col("ts").is_between(horizon, as_of)
    )


def _cell_columns(grid: GridSpec) -> list[pl.Expr]:
    def index(column: str, n: int) -> pl.Expr:
        return (pl.col(column) * n).floor().clip(upper_bound=n - 1).cast(pl.Int32)

    return [index("x", grid.columns).alias("cx"), index("y", grid.rows).alias("cy")]


def _polars_query(taps: pl.LazyFrame, config: AggregateConfig) -> pl.LazyFrame:
    """The job as a Polars query: group by (screen, cx, cy, user), then by cell."""
    cap, k = config.privacy.max_taps_per_user_cell, config.privacy.k
    return (
        taps.filter(_eligible_filter(config))
        .with_columns(_cell_columns(config.grid))
        .group_by("screen", "cx", "cy", "user_token")
        .agg(n=pl.len())
        .group_by("screen", "cx", "cy")
        .agg(users=pl.len().cast(pl.Int64), taps=pl.col("n").clip(upper_bound=cap).sum())
        .filter(pl.col("users") >= k)
    )


def polars_job(taps: pl.DataFrame, config: AggregateConfig) -> pl.DataFrame:
    """The job in Polars, in memory."""
    return _polars_query(taps.lazy(), config).collect()


def polars_single_key_job(taps: pl.DataFrame, config: AggregateConfig) -> pl.DataFrame:
    """The job in Polars with one integer key per (screen, cell): its fastest form here."""
    grid, cap, k = config.grid, config.privacy.max_taps_per_user_cell, config.privacy.k
    cx, cy = _cell_columns(grid)
    screen_code = pl.col("screen").cast(pl.Categorical).to_physical().cast(pl.Int64)
    key = (screen_code * grid.cells + cy.cast(pl.Int64) * grid.columns + cx).alias("key")
    per_cell = (
        taps.lazy()
        .filter(_eligible_filter(config))
        .select(key, "user_token", "screen")
        .group_by("key", "user_token")
        .agg(n=pl.len(), screen=pl.col("screen").first())
        .group_by("key")
        .agg(
            users=pl.len().cast(pl.Int64),
            taps=pl.col("n").clip(upper_bound=cap).sum(),
            screen=pl.col("screen").first(),
        )
        .filter(pl.col("users") >= k)
    )
    cell = pl.col("key") % grid.cells
    return per_cell.with_columns(
        cx=(cell % grid.columns).cast(pl.Int32), cy=(cell // grid.columns).cast(pl.Int32)
    ).collect()


DUCKDB_SQL = """
with eligible as (
    select screen, user_token,
           least(floor(x * {columns}), {columns} - 1)::integer as cx,
           least(floor(y * {rows}), {rows} - 1)::integer as cy
    from taps
    where coalesce(consent, false) and x between 0 and 1 and y between 0 and 1
      and trim(screen) <> '' and user_token is not null
      and ts between '{horizon}'::timestamptz and '{as_of}'::timestamptz
), per_user as (
    select screen, cx, cy, user_token, count(*) as n from eligible group by all
)
select screen, cx, cy, count(*) as users, sum(least(n, {cap}))::bigint as taps
from per_user group by all having count(*) >= {k}
"""


def duckdb_job(taps: pl.DataFrame, config: AggregateConfig) -> pl.DataFrame:
    """The job in DuckDB SQL over the same in-memory frame (Arrow, no copy)."""
    import duckdb

    as_of = config.as_of
    sql = DUCKDB_SQL.format(
        columns=config.grid.columns,
        rows=config.grid.rows,
        horizon=(as_of - timedelta(days=config.privacy.retention_days)).isoformat(),
        as_of=as_of.isoformat(),
        cap=config.privacy.max_taps_per_user_cell,
        k=config.privacy.k,
    )
    connection = duckdb.connect()
    connection.register("taps", taps.to_arrow())
    return connection.sql(sql).pl()


def _normalised(frame: pl.DataFrame) -> pl.DataFrame:
    return (
        frame.select(RESULT_COLUMNS)
        .cast({"cx": pl.Int32, "cy": pl.Int32, "users": pl.Int64, "taps": pl.Int64})
        .sort(RESULT_COLUMNS)
    )


def _check_equal(tool: str, got: pl.DataFrame, expected: pl.DataFrame) -> None:
    if not _normalised(got).equals(_normalised(expected)):
        msg = f"{tool} disagrees with heatengine: {got.height} vs {expected.height} cells"
        raise AssertionError(msg)


def _counts_numpy(taps: pl.DataFrame, config: AggregateConfig) -> np.ndarray:
    """Taps per (screen, cell) with numpy bincount, on rows already filtered."""
    grid = config.grid
    eligible = taps.filter(_eligible_filter(config))
    codes = eligible["screen"].cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    cx = np.minimum((eligible["x"].to_numpy() * grid.columns).astype(np.int64), grid.columns - 1)
    cy = np.minimum((eligible["y"].to_numpy() * grid.rows).astype(np.int64), grid.rows - 1)
    keys = codes * grid.cells + cy * grid.columns + cx
    return np.bincount(keys)


def in_memory_jobs(config: AggregateConfig) -> dict[str, Callable[[pl.DataFrame], object]]:
    """Each tool's job on a frame of taps, heatengine first (peers present only when
    installed)."""
    with_coverage = replace(config, consent_coverage=True)
    jobs: dict[str, Callable[[pl.DataFrame], object]] = {
        "heatengine": lambda taps: aggregate(taps, config),
        "heatengine + coverage": lambda taps: aggregate(taps, with_coverage),
        "polars (screen, cx, cy)": lambda taps: polars_job(taps, config),
        "polars (one int key)": lambda taps: polars_single_key_job(taps, config),
    }
    try:
        import duckdb  # noqa: F401

        jobs["duckdb"] = lambda taps: duckdb_job(taps, config)
    except ImportError:
        pass
    jobs["numpy bincount"] = lambda taps: _counts_numpy(taps, config)
    return jobs


def memory_peak_mb(tool: str, n_taps: int | str, seed: int | str) -> float:
    """Peak extra memory (MB) of one run of ``tool`` on the generated taps, after a run
    on their first thousand rows that loads the JIT cache, thread pools and libraries."""
    taps = benchmark_taps(int(n_taps), int(seed))
    job = in_memory_jobs(bench_config())[tool]
    job(taps.head(1000))
    with PeakMemory() as memory:
        job(taps)
    return memory.extra_mb


def compare(
    n_taps: int, *, seed: int = 0, repeat: int = 3, tools: tuple[str, ...] | None = None
) -> list[Timing]:
    """Run the job with heatengine and every available peer; check answers; time them.

    Times are measured in this process; each tool's peak memory in a fresh one
    (:func:`memory_peak_mb`), so no tool runs on memory an earlier one left behind.
    ``tools`` limits the peers by their first word (heatengine and the numpy counts
    always run).
    """
    jobs = {
        tool: job
        for tool, job in in_memory_jobs(bench_config()).items()
        if not tools or tool.startswith("heatengine") or tool == "numpy bincount"
        or tool.split()[0] in tools
    }  # fmt: skip
    # Memory first, one fresh process per tool, while this one holds no taps yet.
    peaks = {
        tool: _peak_in_fresh_process("memory_peak_mb", tool, str(n_taps), str(seed))
        for tool in jobs
    }
    taps = benchmark_taps(n_taps, seed)
    jobs["heatengine"](taps.head(1000))  # compile or load the Numba cache outside the timing
    timings, expected, eligible = [], None, None
    for tool, job in jobs.items():
        counts_only = tool == "numpy bincount"
        kind = "counts only" if counts_only else "exact"
        timing, result = _time(tool, kind, n_taps, partial(job, taps), repeat, peaks[tool])
        if tool == "heatengine":
            expected, eligible = result.cells, result.stats.rows_eligible
        elif counts_only and int(result.sum()) != eligible:
            msg = f"numpy counts {int(result.sum())} taps, heatengine {eligible}"
            raise AssertionError(msg)
        elif not counts_only:
            _check_equal(tool, getattr(result, "cells", result), expected)
        timings.append(timing)
    return timings


def format_table(timings: list[Timing]) -> str:
    """A plain-text table: seconds, throughput, peak memory and time relative to heatengine."""
    reference = timings[0].seconds  # heatengine comes first
    lines = [
        f"{'tool':<26}{'job':<13}{'best s':>9}{'median s':>10}{'M taps/s':>10}"
        f"{'peak +MB':>10}{'x heatengine':>14}",
    ]
    for t in timings:
        lines.append(
            f"{t.tool:<26}{t.job:<13}{t.seconds:>9.3f}{t.median_seconds:>10.3f}"
            f"{t.million_taps_per_second:>10.1f}{t.peak_extra_mb:>10.0f}"
            f"{t.seconds / reference:>14.2f}"
        )
    return "\n".join(lines)


def write_json(timings: list[Timing], path: str | os.PathLike[str]) -> None:
    """The timings as JSON, one object per tool and job."""
    rows = [{**asdict(t), "million_taps_per_second": t.million_taps_per_second} for t in timings]
    Path(path).write_text(json.dumps(rows, indent=2) + "\n")


def write_benchmark_files(n_taps: int, directory: Path, *, files: int, seed: int = 0) -> Path:
    """Generated taps with tokens, as ``files`` Parquet files (generated file by file)."""
    directory.mkdir(parents=True, exist_ok=True)
    per_file = -(-n_taps // files)
    users = max(1, n_taps // 50)  # the population of the whole run, shared by every file
    for i in range(files):
        size = min(per_file, n_taps - i * per_file)
        if size > 0:
            taps = benchmark_taps(size, seed=seed + i, n_users=users)
            taps.write_parquet(directory / f"part-{i:04d}.parquet")
    return directory


def polars_streaming_job(directory: Path, config: AggregateConfig) -> pl.DataFrame:
    """The Polars job over the files with Polars' streaming engine."""
    return _polars_query(pl.scan_parquet(directory), config).collect(engine="streaming")


def heatengine_streaming_job(directory: Path, config: AggregateConfig) -> pl.DataFrame:
    """heatengine's streaming run over the files: its published cells."""
    return aggregate(directory, config, streaming=True).cells


STREAMING_JOBS: dict[str, Callable[[Path, AggregateConfig], pl.DataFrame]] = {
    "heatengine --streaming": heatengine_streaming_job,
    "polars streaming engine": polars_streaming_job,
}


def streaming_peak_mb(tool: str, directory: str | os.PathLike[str]) -> float:
    """Peak extra memory (MB) of one streaming run of ``tool`` over ``directory``, after a
    run on two tiny files that loads the JIT cache, thread pools and readers."""
    config, job = bench_config(), STREAMING_JOBS[tool]
    with tempfile.TemporaryDirectory() as warm:
        job(write_benchmark_files(2_000, Path(warm), files=2), config)
    with PeakMemory() as memory:
        job(Path(directory), config)
    return memory.extra_mb


#: Allocator settings of the measuring process: freed memory goes back at once (Polars'
#: jemalloc, glibc; DuckDB's own allocator is not told), so resident memory follows
#: what is alive. Otherwise pages kept from
#: generating the taps are reused unseen and every tool looks smaller than it is.
MEASURING_ALLOCATORS = {
    "_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0",
    "MALLOC_TRIM_THRESHOLD_": "0",
}


def _peak_in_fresh_process(function: str, *args: str) -> float:
    """``heatengine.bench.<function>(*args)`` (a peak in MB) in a new Python process:
    memory that earlier runs left in this process's allocators would hide the later
    tools' peaks."""
    script = f"import sys\nimport heatengine.bench as bench\nprint(bench.{function}(*sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **MEASURING_ALLOCATORS},
    )
    if done.returncode:
        msg = f"measuring memory in a new process failed:\n{done.stderr[-2000:]}"
        raise RuntimeError(msg)
    return float(done.stdout.split()[-1])


def compare_streaming(directory: Path, n_taps: int, *, repeat: int = 1) -> list[Timing]:
    """heatengine's streaming run against Polars' streaming engine over the same files.

    Times are measured here, in one process, after each answer is checked equal to
    heatengine's; peak memory is measured once per tool in a fresh process.
    """
    config = bench_config()
    expected = None
    timings = []
    for tool, job in STREAMING_JOBS.items():
        result = job(directory, config)  # the check, and a warm-up for the timing
        if expected is None:
            expected = result
        else:
            _check_equal(tool, result, expected)
        peak = _peak_in_fresh_process("streaming_peak_mb", tool, str(directory))
        run = partial(job, directory, config)
        timings.append(_time(tool, "exact, files", n_taps, run, repeat, peak)[0])
    return timings
