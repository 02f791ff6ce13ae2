"""64 million taps in 32 Parquet files: 2 local Dask workers against one streaming process.

Run from the repository root (with ``pip install -e ".[bench,dask]"``):
``python -m benchmarks.dask_scaling [--taps N] [--files F] [--dir DIR]``. Files are
generated once (with tokens) and reused. Each run happens in its own process tree; peak
memory is the largest resident size of that tree (the client plus its workers), sampled
every 20 ms. The answers are checked equal.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from pathlib import Path

import psutil

RUN = """
import sys, time
from heatengine.bench import bench_config
config = bench_config()
start = time.perf_counter()
if sys.argv[2] == "dask":
    from heatengine.distributed import aggregate, local_client
    client = local_client(2)
    result = aggregate([sys.argv[1]], config, client)
else:
    from heatengine import aggregate
    result = aggregate(sys.argv[1], config, streaming=True)
print(time.perf_counter() - start)
result.write(sys.argv[3])
"""


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total


def measure(directory: Path, mode: str, out: Path) -> tuple[float, float]:
    command = [sys.executable, "-c", RUN, str(directory), mode, str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    watched, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        peak = max(peak, tree_rss(watched))
        time.sleep(0.02)
    output = process.stdout.read()
    if process.returncode:
        raise SystemExit(f"{mode} run failed")
    return float(output.split()[0]), peak / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=64_000_000)
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--dir", type=Path, default=Path("bench-data/dask"))
    args = parser.parse_args()
    from heatengine.bench import write_benchmark_files

    files = args.dir / "files"
    if not files.is_dir():
        print(f"generating {args.taps:,} taps in {args.files} files ...", file=sys.stderr)
        write_benchmark_files(args.taps, files, files=args.files)
    results = {}
    for mode in ("streaming", "dask"):
        seconds, peak = measure(files, mode, args.dir / f"store-{mode}")
        results[mode] = (seconds, peak)
        print(f"{mode:<10} {seconds:8.1f} s   peak {peak:5.2f} GB (process tree)")
    one, two = args.dir / "store-streaming", args.dir / "store-dask"
    same = all(
        (one / f).read_bytes() == (two / f).read_bytes() for f in ("cells.parquet", "grids.npz")
    )
    speedup = results["streaming"][0] / results["dask"][0]
    print(f"outputs byte-identical: {same}; speed-up {speedup:.2f}x")


if __name__ == "__main__":
    main()
