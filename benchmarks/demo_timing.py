"""Time ``heatengine.aggregate`` on the demo's million taps against Polars, same data.

Run from the repository root: ``python -m benchmarks.demo_timing [--taps N] [--repeat R]``.
The JIT is warmed up first; both tools compute exact distinct users and capped taps per
(screen, platform, cell) from the same eligible rows, and the answers are checked equal
before any time is printed. heatengine's time is the whole pipeline (validation, consent,
retention, pseudonymisation, binning, suppression); the Polars time is only the per-cell
group-by on rows already filtered, so the ratio flatters Polars.
"""

from __future__ import annotations

import argparse
import statistics
import time

from heatengine import AggregateConfig, PseudonymKey, aggregate
from heatengine.synthetic import DEMO_END, generate_taps
from tests import reference

KEY = PseudonymKey(b"benchmark key, not secret, 32 bytes+")


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
    eligible = reference.eligible_rows(taps, DEMO_END)
    grid, cap, k = config.grid, config.privacy.max_taps_per_user_cell, config.privacy.k
    pl_best, pl_median, expected = best_of(
        args.repeat,
        lambda: reference.published_cells(
            eligible, ["screen", "platform"], grid.columns, grid.rows, cap, k
        ),
    )

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
