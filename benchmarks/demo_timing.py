"""Time ``heatengine.aggregate`` on the demo's million taps against Polars, same data.

Run: ``python benchmarks/demo_timing.py [--taps N] [--repeat R]``. The JIT is warmed up
first; both tools compute exact distinct users and capped taps per (screen, platform,
cell) from the same eligible rows, and the answers are checked equal before any time is
printed. The fuller comparison with DuckDB and streaming belongs to benchmarks/compare.py.
"""

from __future__ import annotations

import argparse
import statistics
import time

import polars as pl

from heatengine import AggregateConfig, PseudonymKey, aggregate
from heatengine.synthetic import DEMO_END, generate_taps

KEY = PseudonymKey(b"benchmark key, not secret, 32 bytes+")
CAP = 5


def polars_job(eligible: pl.DataFrame, config: AggregateConfig) -> pl.DataFrame:
    """The same per-cell job written directly in Polars."""
    grid = config.grid
    k = config.privacy.k
    return (
        eligible.with_columns(
            cx=(pl.col("x") * grid.columns)
            .floor()
            .clip(upper_bound=grid.columns - 1)
            .cast(pl.Int32),
            cy=(pl.col("y") * grid.rows).floor().clip(upper_bound=grid.rows - 1).cast(pl.Int32),
        )
        .group_by("screen", "platform", "cx", "cy", "user_id")
        .agg(n=pl.len())
        .group_by("screen", "platform", "cx", "cy")
        .agg(
            users=pl.len().cast(pl.Int64),
            taps=pl.col("n").clip(upper_bound=CAP).sum().cast(pl.Int64),
        )
        .filter(pl.col("users") >= k)
    )


def best_of(repeat: int, job) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = job()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    taps = generate_taps(args.taps, seed=0)
    config = AggregateConfig(segments=("platform",), as_of=DEMO_END, sigma=0.0)
    aggregate(taps.head(1000), config, key=KEY)  # warm the JIT and caches

    he_best, he_median, result = best_of(args.repeat, lambda: aggregate(taps, config, key=KEY))
    eligible = taps.filter(
        pl.col("consent").fill_null(False)
        & pl.col("x").is_between(0, 1)
        & pl.col("y").is_between(0, 1)
        & pl.col("screen").str.strip_chars().ne("")
        & pl.col("user_id").is_not_null()
        & pl.col("ts").is_between(DEMO_END - pl.duration(days=30), DEMO_END)
    )
    pl_best, pl_median, expected = best_of(args.repeat, lambda: polars_job(eligible, config))

    columns = ["screen", "platform", "cx", "cy", "users", "taps"]
    got = result.cells.select(columns).sort(columns)
    assert got.equals(expected.select(columns).sort(columns)), "answers differ"
    print(f"{args.taps:,} taps, {result.cells.height:,} published cells, answers equal")
    print(f"heatengine.aggregate (whole pipeline): best {he_best:.3f} s, median {he_median:.3f} s")
    print(
        f"polars per-cell job only (pre-filtered): best {pl_best:.3f} s, median {pl_median:.3f} s"
    )
    print(f"ratio polars / heatengine (best): {pl_best / he_best:.2f}")


if __name__ == "__main__":
    main()
