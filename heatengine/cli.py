"""The ``heatengine`` command: thin argument parsing over the library.

Errors a user can fix are printed as one line (``heatengine: error: ...``) with exit
code 2; nothing here prints a traceback for them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from heatengine._version import __version__
from heatengine.config import AggregateConfig, DominanceRule, GridSpec, PrivacyPolicy
from heatengine.errors import HeatengineError

EXIT_USAGE = 2
DEMO_SEGMENTS = ("platform",)
MOCKUP_WIDTH = 400


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``heatengine`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _prefer_sleeping_openmp_workers()
    previous = None  # also when the handler was set outside Python: nothing to restore
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("heatengine: interrupted", file=sys.stderr)
        return 130
    except (HeatengineError, KeyError, OSError) as exc:
        print(f"heatengine: error: {_one_line(exc)}", file=sys.stderr)
        # Personal data found in outputs before publishing them has its own code.
        return PII_IN_OUTPUT if hasattr(exc, "scan") else EXIT_USAGE
    except Exception as exc:
        import polars as pl

        if isinstance(exc, pl.exceptions.PolarsError):
            detail = _redact_values(_one_line(exc))
            print(f"heatengine: error reading the input: {detail}", file=sys.stderr)
            return EXIT_USAGE
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _prefer_sleeping_openmp_workers() -> None:
    """Let Numba's OpenMP workers sleep between kernels, unless the environment says
    otherwise.

    By default they spin for milliseconds after every parallel kernel, taking a core
    from Polars' reader and hash threads: on 2 cores a streaming run of 100M taps took
    10.5 s spinning against 9.1 s passive, and in-memory runs did not change. A command
    owns its process (and the workers it starts), so it may choose; the library does
    not. libgomp reads the setting when it loads, at Numba's first parallel kernel.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like an exception, so spills, staged stores and locks are
    cleaned up on the way out."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the cleanup
    print("heatengine: terminated", file=sys.stderr)
    raise SystemExit(128 + signum)


def _redact_values(text: str) -> str:
    """Hide the data values Polars quotes (`...`, "...", [...]): they may be raw ids."""
    text = text.split(" This error occurred")[0]
    return re.sub(r"`[^`]*`|\"[^\"]*\"|\[[^\]]*\]", "<value>", text)


def _one_line(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, OSError) and exc.filename:
        text = f"{exc.strerror}: {exc.filename}"
    return " ".join(str(text).split())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(
        prog="heatengine",
        description="Private, fast per-screen tap heatmaps.",
    )
    parser.add_argument("--version", action="version", version=f"heatengine {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="generate demo taps and run the whole pipeline on them",
        description=(
            "Generate a realistic, seeded demo data set (default one million taps over five "
            "screens), aggregate it with a fresh random key, and write the input, the store, "
            "screen mock-ups and one PNG per layer under --out."
        ),
    )
    demo.add_argument("--out", required=True, type=Path, help="output directory")
    demo.add_argument("--taps", type=int, default=1_000_000, help="taps to generate")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the demo data")
    _add_render_options(demo)
    demo.set_defaults(run=run_demo)

    scan = commands.add_parser(
        "scan-pii",
        help="look for personal data in input files",
        description=(
            "Report which columns of the input carry personal data (e-mail addresses, phone "
            "numbers, IP and MAC addresses, advertising ids and UUIDs, IMEI and card "
            "numbers, latitude/longitude), from column names and a seeded sample of values. "
            "Kinds and counts only: no value is printed."
        ),
    )
    scan.add_argument("inputs", nargs="+", metavar="INPUT", help="files, directories or globs")
    scan.add_argument("--sample", type=int, default=10_000, help="rows sampled (0: all rows)")
    scan.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    scan.set_defaults(run=run_scan_pii)

    agg = commands.add_parser(
        "aggregate",
        help="turn tap files into a heatmap store",
        description=(
            "Read taps (Parquet, CSV, NDJSON files, directories, globs, hive-partitioned "
            "folders), validate, apply consent and retention, pseudonymise, bin, suppress "
            "cells with fewer than k users, smooth, and write cells.parquet, grids.npz and "
            "manifest.json to --out. Raw user ids need a key: HEATENGINE_KEY or --key-file."
        ),
    )
    agg.add_argument("inputs", nargs="+", metavar="INPUT", help="files, directories or globs")
    agg.add_argument("--out", required=True, type=Path, help="store directory to write")
    _add_config_options(agg)
    agg.add_argument("--key-file", type=Path, help="file holding the pseudonymisation key")
    agg.add_argument(
        "--quarantine",
        type=Path,
        metavar="FILE",
        help="write rejected rows with their reason (no user ids) to FILE (.parquet or .csv)",
    )
    _add_audit_options(agg)
    _add_cluster_options(agg)
    agg.add_argument(
        "--streaming",
        action="store_true",
        help="read the input a batch at a time (Parquet in slices, CSV whole) and spill "
        "the taps to disk by user: memory bounded by two batches and one part, not by "
        "the input",
    )
    agg.add_argument(
        "--spill-dir",
        type=Path,
        metavar="DIR",
        help="where --streaming spills, about 12 bytes per tap (default: the system's "
        "temporary folder)",
    )
    agg.add_argument("--png", type=Path, metavar="DIR", help="also render one PNG per layer")
    _add_render_options(agg)
    agg.set_defaults(run=run_aggregate)

    render = commands.add_parser(
        "render",
        help="render every layer of a store to PNG",
        description="Render one PNG per published layer of a store.",
    )
    render.add_argument("store", type=Path, help="store directory")
    render.add_argument("--out", required=True, type=Path, help="directory for the PNGs")
    _add_render_options(render)
    render.set_defaults(run=run_render)
    nightly = commands.add_parser(
        "nightly",
        help="aggregate one day into its partial and publish the day's window",
        description=(
            "Under a lock on the store: purge partials older than the retention window, "
            "read INPUT/date=DATE/, store that day's partial (owner-only, the only place "
            "pseudonymised data is kept), merge the partials of the day's tumbling window "
            "and publish it to STORE/windows/FIRST_LAST/ (cells, grids, manifest, PNGs, "
            "index.html), and log the run in STORE/audit.jsonl. Safe to re-run. Rolling "
            "(overlapping) windows need --privacy dp: differences between consecutive "
            "k-anonymous windows could reveal small groups of users."
        ),
    )
    nightly.add_argument("--input", required=True, type=Path, help="folder of date=... parts")
    nightly.add_argument("--store", required=True, type=Path, help="the store directory")
    nightly.add_argument(
        "--date", required=True, type=_parse_day, help="the day to process (YYYY-MM-DD)"
    )
    nightly.add_argument("--window", type=int, default=7, help="days per window")
    nightly.add_argument(
        "--rolling",
        action="store_true",
        help="publish the --window days ending with --date every night (needs --privacy dp)",
    )
    nightly.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one JSON object per line on stderr, for schedulers",
    )
    nightly.add_argument("--key-file", type=Path, help="file holding the pseudonymisation key")
    nightly.add_argument(
        "--now", type=_parse_time, help="the run's clock for retention (default: now)"
    )
    _add_config_options(nightly)
    _add_audit_options(nightly)
    _add_cluster_options(nightly)
    _add_render_options(nightly)
    nightly.set_defaults(run=run_nightly_command)

    audit = commands.add_parser(
        "audit",
        help="check a store's audit log",
        description="Audit log tools. verify: check the hash chain of STORE/audit.jsonl and "
        "name the first edited, deleted or reordered entry (exit code 1).",
    )
    audit.add_argument("action", choices=("verify",), help="what to do")
    audit.add_argument("store", type=Path, help="store directory (or an audit.jsonl file)")
    audit.set_defaults(run=run_audit)

    compare = commands.add_parser(
        "compare",
        help="render the difference between two stores, layer by layer",
        description=(
            "For every layer published in both stores (e.g. app version 1 and 2, or "
            "variant A and B), render B - A of the grids each normalised to its own peak "
            "with a diverging colour map, and A, B and the difference side by side; "
            "write an index.html gallery of the panels."
        ),
    )
    compare.add_argument("store_a", type=Path, metavar="STORE_A", help="the baseline store")
    compare.add_argument("store_b", type=Path, metavar="STORE_B", help="the store to compare")
    compare.add_argument("--out", required=True, type=Path, help="directory for the images")
    compare.add_argument(
        "--labels", default="A,B", metavar="A,B", help="names of the two stores, e.g. v5.2,v5.3"
    )
    compare.add_argument("--colormap", default="inferno", help="colour map of the A and B panels")
    compare.add_argument(
        "--backgrounds", type=Path, metavar="DIR", help="screenshots named after screens"
    )
    compare.set_defaults(run=run_compare)

    bench = commands.add_parser(
        "bench",
        help="time heatengine against Polars, DuckDB and numpy on the same generated data",
        description=(
            "Generate taps with the demo generator, run heatengine's whole pipeline and the "
            "same exact job in Polars and DuckDB (when installed) in this process, check "
            "that every answer equals heatengine's, and print seconds, throughput, peak "
            "memory and ratios."
        ),
    )
    bench.add_argument("--taps", type=int, default=1_000_000, help="taps to generate")
    bench.add_argument("--seed", type=int, default=0, help="random seed")
    bench.add_argument("--repeat", type=int, default=3, help="runs per tool (best is shown)")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the timings here")
    bench.add_argument(
        "--streaming",
        type=Path,
        metavar="DIR",
        help="instead: write the taps as Parquet files in DIR and compare streaming runs",
    )
    bench.add_argument("--files", type=int, default=16, help="Parquet files for --streaming")
    bench.set_defaults(run=run_bench)
    return parser


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    defaults = AggregateConfig()
    policy = defaults.privacy
    parser.add_argument("--k", type=int, default=policy.k, help="minimum distinct users per cell")
    parser.add_argument(
        "--allow-small-k", action="store_true", help="permit k below 5 (weak protection)"
    )
    parser.add_argument(
        "--grid",
        type=_parse_grid,
        default=defaults.grid,
        metavar="COLSxROWS",
        help="public grid, default 64x128",
    )
    parser.add_argument("--sigma", type=float, default=defaults.sigma, help="smoothing in cells")
    parser.add_argument(
        "--measure", choices=("users", "taps"), default=defaults.measure, help="what to map"
    )
    parser.add_argument(
        "--segments", default="", help="comma-separated columns that split layers, e.g. platform"
    )
    parser.add_argument(
        "--max-taps",
        type=int,
        default=policy.max_taps_per_user_cell,
        help="cap on one user's taps counted per cell",
    )
    parser.add_argument(
        "--retention-days", type=int, default=policy.retention_days, help="retention window"
    )
    parser.add_argument(
        "--as-of",
        type=_parse_time,
        help="reference time for retention (ISO-8601, default: now, UTC)",
    )
    parser.add_argument(
        "--coordinates",
        choices=("normalised", "pixels"),
        default=defaults.coordinates,
        help="pixels: x and y are divided by viewport_width and viewport_height",
    )
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="CANONICAL=COLUMN",
        help="read a canonical column from another name, e.g. --map x=tap_x (repeatable)",
    )
    parser.add_argument(
        "--assume-consent",
        action="store_true",
        help="state that every row is consented (only allowed without a consent column)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="fail instead of quarantining bad rows"
    )
    parser.add_argument(
        "--elements",
        type=Path,
        metavar="FILE",
        help="UI elements (CSV or JSON: screen, element, rectangle): engagement per element, "
        "dead taps per screen",
    )
    parser.add_argument(
        "--rage-taps",
        action="store_true",
        help="publish rage-tap bursts (3+ taps by one user within 1 s and ~30 px) as "
        "their own layers, with each screen's rage-tap share",
    )
    _add_privacy_options(parser)


def _rage_policy(wanted: bool):
    if not wanted:
        return None
    from heatengine.rage import RagePolicy

    return RagePolicy()


def _elements_from(path: Path | None) -> tuple:
    if path is None:
        return ()
    from heatengine.elements import load_elements

    table = load_elements(path)
    return tuple(table.select("screen", "element", "x0", "y0", "x1", "y1").iter_rows())


def _add_privacy_options(parser: argparse.ArgumentParser) -> None:
    dominance = DominanceRule()
    group = parser.add_argument_group("disclosure control beyond k")
    group.add_argument(
        "--p-percent",
        type=float,
        default=dominance.p,
        metavar="P",
        help="p%% dominance rule on capped taps (default 10; 0 to turn it off)",
    )
    group.add_argument(
        "--nk-rule",
        metavar="N,K",
        help="(n, k) dominance: hide cells whose N largest users hold over K%% of taps",
    )
    group.add_argument(
        "--true-totals",
        action="store_true",
        help="publish true layer totals, with secondary suppression protecting them",
    )
    dp = parser.add_argument_group("differential privacy (pip install heatengine[dp])")
    dp.add_argument(
        "--privacy",
        choices=("k-anonymity", "dp"),
        default="k-anonymity",
        help="dp: noise every cell of the released layers instead of suppressing",
    )
    dp.add_argument("--epsilon", type=float, default=1.0, help="epsilon of this release")
    dp.add_argument("--delta", type=float, default=1e-6, help="delta of this release")
    dp.add_argument(
        "--max-cells-per-user", type=int, default=8, help="L0: cells one user contributes to"
    )
    dp.add_argument(
        "--max-taps-per-cell", type=int, default=1, help="Linf: one user's taps counted per cell"
    )
    dp.add_argument(
        "--max-screens-per-user", type=int, default=1, help="layers one user contributes to"
    )
    dp.add_argument(
        "--public-screens",
        default="",
        metavar="A,B",
        help="screens released whatever the data; others pass noisy partition selection",
    )
    dp.add_argument(
        "--noise",
        choices=("laplace", "gaussian"),
        default="laplace",
        help="discrete Laplace (pure epsilon) or discrete Gaussian noise",
    )
    dp.add_argument(
        "--budget-epsilon",
        type=float,
        help="total epsilon per user within the retention horizon (required with --privacy dp)",
    )
    dp.add_argument(
        "--budget-delta", type=float, default=1e-5, help="total delta within the horizon"
    )


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Dask (pip install heatengine[dask])")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="run on a Dask cluster, e.g. tls://host:8786"
    )
    where.add_argument(
        "--local-workers", type=int, metavar="N", help="start N local worker processes for the run"
    )


def _cluster_client(args: argparse.Namespace):
    """A Dask client when --scheduler or --local-workers asks for one, else None."""
    if args.scheduler is None and args.local_workers is None:
        return None
    from heatengine.distributed import _require_dask, local_client

    _require_dask()
    if args.local_workers is not None:
        if args.local_workers < 1:
            msg = f"--local-workers must be at least 1, got {args.local_workers}"
            raise HeatengineError(msg)
        return local_client(args.local_workers)
    from distributed import Client

    return Client(args.scheduler, timeout="30s")


def _close_client(client) -> None:
    """Close the client, and the local cluster when --local-workers started one."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _add_audit_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("audit")
    group.add_argument("--actor", help="who runs this, for the audit log (default: the user)")
    group.add_argument("--purpose", default="", help="why, for the audit log")


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("rendering")
    group.add_argument(
        "--colormap", default="inferno", help="inferno (default), viridis, magma, cividis, "
        "turbo or heat (the blue-green-yellow-red ramp of web heatmap tools)",
    )  # fmt: skip
    group.add_argument(
        "--scale", choices=("linear", "sqrt", "log"), default="linear", help="colour scale"
    )
    group.add_argument(
        "--scale-max",
        default="layer",
        metavar="layer|shared|NUMBER",
        help="top of the colour scale: each layer's peak (default), the largest peak of all "
        "layers (to compare screens), or a fixed value; larger values saturate",
    )
    group.add_argument(
        "--backgrounds",
        type=Path,
        metavar="DIR",
        help="screenshots named after screens (home.png, ...) to draw the heatmaps on",
    )
    group.add_argument(
        "--background-map",
        type=Path,
        metavar="FILE",
        help="screenshots by screen from a JSON object or a CSV of screen,file",
    )
    group.add_argument(
        "--no-legend", action="store_true", help="leave out the caption and colour bar"
    )
    group.add_argument(
        "--min-alpha", type=float, default=0.0, help="opacity of the faintest heat (0 to 0.9)"
    )


def _parse_grid(text: str) -> GridSpec:
    try:
        return GridSpec.parse(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        msg = f"expected a day as YYYY-MM-DD, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        msg = f"--as-of must be an ISO-8601 date or time, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _config_from(args: argparse.Namespace) -> AggregateConfig:
    column_map = {}
    for item in args.map:
        canonical, sep, column = item.partition("=")
        if not sep or not canonical or not column:
            msg = f"--map takes CANONICAL=COLUMN, got {item!r}"
            raise HeatengineError(msg)
        column_map[canonical.strip()] = column.strip()
    try:
        return AggregateConfig(
            grid=args.grid,
            privacy=PrivacyPolicy(
                k=args.k,
                max_taps_per_user_cell=args.max_taps,
                retention_days=args.retention_days,
                allow_small_k=args.allow_small_k,
                dominance=_dominance_from(args),
                true_totals=args.true_totals,
            ),
            dp=_dp_policy_from(args),
            elements=_elements_from(args.elements),
            rage_taps=_rage_policy(args.rage_taps),
            sigma=args.sigma,
            measure=args.measure,
            segments=tuple(s.strip() for s in args.segments.split(",") if s.strip()),
            column_map=tuple(column_map.items()),
            coordinates=args.coordinates,
            as_of=args.as_of,
            assume_consent=args.assume_consent,
            strict=args.strict,
        )
    except (TypeError, ValueError) as exc:
        raise HeatengineError(str(exc)) from None


def _dominance_from(args: argparse.Namespace) -> DominanceRule:
    n = k_percent = None
    if args.nk_rule:
        parts = args.nk_rule.split(",")
        if len(parts) != 2:
            msg = f"--nk-rule takes N,K, for example 2,85; got {args.nk_rule!r}"
            raise HeatengineError(msg)
        try:
            n, k_percent = int(parts[0]), float(parts[1])
        except ValueError:
            msg = f"--nk-rule takes an integer N and a percentage K; got {args.nk_rule!r}"
            raise HeatengineError(msg) from None
    return DominanceRule(p=args.p_percent or None, n=n, k_percent=k_percent)


def _dp_policy_from(args: argparse.Namespace):
    """The DPPolicy of --privacy dp, or None."""
    if args.privacy != "dp":
        return None
    from heatengine.dp import DPPolicy

    if args.budget_epsilon is None:
        msg = (
            "--privacy dp needs --budget-epsilon: the total epsilon one user may lose to "
            "this store's releases within the retention horizon"
        )
        raise HeatengineError(msg)
    screens = tuple(s.strip() for s in args.public_screens.split(",") if s.strip())
    return DPPolicy(
        epsilon=args.epsilon,
        delta=args.delta,
        max_cells_per_user=args.max_cells_per_user,
        max_taps_per_cell=args.max_taps_per_cell,
        public_screens=screens or None,
        max_screens_per_user=args.max_screens_per_user,
        noise=args.noise,
    )


def _budget_from(args: argparse.Namespace, config: AggregateConfig):
    """The store's budget policy for a DP run, or None."""
    if config.dp is None:
        return None
    from heatengine.budget import BudgetPolicy

    try:
        return BudgetPolicy(
            epsilon=args.budget_epsilon,
            delta=args.budget_delta,
            horizon_days=config.privacy.retention_days,
        )
    except (TypeError, ValueError) as exc:
        raise HeatengineError(str(exc)) from None


_LOG = {"json": False}
#: Exit code of a run that found personal data in its own outputs.
PII_IN_OUTPUT = 3


def _log(event: str, text: str, **fields: object) -> None:
    """A log line on stderr: plain text, or one JSON object per line (--log-format json)."""
    if _LOG["json"]:
        record = {"time": datetime.now(UTC).isoformat(), "event": event, **fields}
        print(json.dumps(record, default=str), file=sys.stderr, flush=True)
    else:
        print(text, file=sys.stderr, flush=True)


def _progress(step: str, seconds: float) -> None:
    _log("step", f"  {step:<22} {seconds:6.2f} s", step=step, seconds=round(seconds, 3))


def run_aggregate(args: argparse.Namespace) -> int:
    """``heatengine aggregate``."""
    from heatengine.audit import AUDIT_FILE
    from heatengine.budget import charge_release, release_id, require_room
    from heatengine.io import input_files
    from heatengine.pipeline import aggregate
    from heatengine.pseudonym import PseudonymKey
    from heatengine.store import write_quarantine

    config = _config_from(args)
    _check_render_options(args)
    key = PseudonymKey.from_file(args.key_file) if args.key_file else None
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    budget = _budget_from(args, config)
    if budget is not None:  # refuse before reading any data
        require_room(args.out, "this run", config.dp.epsilon, config.dp.delta, budget, started_at)
    print(f"heatengine {__version__}: aggregating {len(args.inputs)} input(s)", file=sys.stderr)
    client = _cluster_client(args)
    if client is None:
        heatmaps = aggregate(
            args.inputs if len(args.inputs) > 1 else args.inputs[0],
            config,
            key=key,
            progress=_progress,
            streaming=args.streaming,
            spill_dir=args.spill_dir,
        )
    else:
        from heatengine import distributed

        try:
            config = config if config.as_of else replace(config, as_of=started_at)
            heatmaps = distributed.aggregate(args.inputs, config, client, key_file=args.key_file)
        finally:
            _close_client(client)
        _progress("aggregate on Dask", time.perf_counter() - started)
    if budget is not None:
        release = release_id(f"aggregate {started_at.isoformat()}")
        status = charge_release(heatmaps, args.out, release, budget)
        print(f"  {_budget_line(status)}", file=sys.stderr)
    _write_checked(heatmaps, args.out)
    outputs = _store_files(args.out)
    if args.quarantine:
        rows = write_quarantine(heatmaps, args.quarantine)
        print(f"  quarantined rows ({rows:,}) written to {args.quarantine}", file=sys.stderr)
        outputs.append(args.quarantine)
    images = _render_all(heatmaps, args.png, args) if args.png else []
    published = _store_files(args.out) + ([args.png] if args.png else [])
    pii = _check_outputs(heatmaps, published)
    entry = _audit(
        heatmaps, args, "aggregate", started_at, input_files(args.inputs), outputs, pii=pii
    )
    print(f"  audit entry {entry['seq']} appended to {args.out / AUDIT_FILE}", file=sys.stderr)
    print(format_summary(heatmaps, time.perf_counter() - started))
    print(_pii_line(pii))
    print(f"store: {args.out}")
    if images:
        print(f"images: {len(images)} PNG(s) in {args.png}")
    return 0 if pii["clean"] else PII_IN_OUTPUT


def _budget_line(status) -> str:
    return (
        f"privacy budget: epsilon {status.epsilon_spent:.3g} of {status.epsilon_budget:.3g} "
        f"spent within the horizon ({len(status.releases)} release(s))"
    )


def _store_files(store: Path) -> list[Path]:
    from heatengine.store import CELLS_FILE, ELEMENTS_FILE, GRIDS_FILE, MANIFEST_FILE

    names = (CELLS_FILE, GRIDS_FILE, MANIFEST_FILE, ELEMENTS_FILE)
    return [store / name for name in names if name != ELEMENTS_FILE or (store / name).exists()]


def _write_checked(heatmaps, store: Path) -> None:
    """Write the store only after a staged copy of it scans free of personal data."""
    import tempfile

    from heatengine.pii import PersonalDataInOutputs, check_outputs

    store.parent.mkdir(parents=True, exist_ok=True)
    summary = heatmaps.stats.pii_input or {"kinds": [], "columns": {}}
    with tempfile.TemporaryDirectory(dir=store.parent, prefix=".heatengine-check-") as staged:
        heatmaps.write(staged)
        scan = check_outputs(summary, staged)
        scan["locations"] = [place.replace(f"{staged}/", "") for place in scan["locations"]]
    if not scan["clean"]:
        raise PersonalDataInOutputs(scan)
    heatmaps.write(store)


def _check_outputs(heatmaps, paths: list[Path]) -> dict:
    """Scan every published file for personal data (quarantine files are the operator's)."""
    from heatengine.pii import check_outputs

    summary = heatmaps.stats.pii_input or {"kinds": [], "columns": {}}
    result = check_outputs(summary, paths)
    if not result["clean"]:
        where = ", ".join(result["locations"])
        _log(
            "pii",
            f"heatengine: personal data found in outputs ({', '.join(result['kinds'])}): {where}",
            **result,
        )
    return result


def _pii_line(pii: dict) -> str:
    state = "clean" if pii["clean"] else "PERSONAL DATA FOUND: " + ", ".join(pii["kinds"])
    return (
        f"outputs scanned for personal data: {pii['files_scanned']} file(s), {state}; "
        f"anonymisation effectiveness {pii['effectiveness']:.0%}"
    )


def _audit(
    heatmaps, args, command: str, started_at: datetime, inputs, outputs, pii: dict | None = None
) -> dict:
    """Append this run's record to the store's hash-chained audit log."""
    from heatengine.audit import AUDIT_FILE, append_entry, files_with_hashes, run_record

    record = run_record(
        heatmaps,
        command=command,
        started=started_at,
        finished=datetime.now(UTC),
        inputs=files_with_hashes(inputs),
        outputs=files_with_hashes(outputs),
        actor=args.actor,
        purpose=args.purpose,
    )
    if pii is not None:
        record["pii_outputs"] = pii
    store = args.out / "store" if command == "demo" else args.out
    return append_entry(store / AUDIT_FILE, record)


def run_nightly_command(args: argparse.Namespace) -> int:
    """``heatengine nightly``."""
    from heatengine.nightly import run_nightly
    from heatengine.pseudonym import PseudonymKey

    _LOG["json"] = args.log_format == "json"
    config = _config_from(args)
    _check_render_options(args)
    key = PseudonymKey.from_file(args.key_file) if args.key_file else None
    started = time.perf_counter()
    _log("start", f"heatengine {__version__}: nightly {args.date} -> {args.store}",
         day=args.date, store=args.store, version=__version__)  # fmt: skip
    client = _cluster_client(args)
    builder = None
    if client is not None:
        from heatengine.distributed import build_partial_distributed

        def builder(source, day_config, *, as_of, key):
            return build_partial_distributed([source], day_config, client, key_file=args.key_file)

    result = run_nightly(
        args.input,
        args.store,
        args.date,
        config=config,
        window=args.window,
        key=key,
        now=args.now,
        actor=args.actor,
        purpose=args.purpose,
        render=lambda heatmaps, folder: _render_all(heatmaps, folder / "png", args),
        builder=builder,
        budget=_budget_from(args, config),
        rolling=args.rolling,
    )
    if client is not None:
        _close_client(client)
    if result.budget is not None:
        _log("budget", f"  {_budget_line(result.budget)}", epsilon=result.budget.epsilon_spent)
    if result.purged:
        days = ", ".join(d.isoformat() for d in result.purged)
        _log("purge", f"  purged partials past retention: {days}", days=result.purged)
    first, last = result.window
    seconds = time.perf_counter() - started
    _log(
        "finish",
        f"  finished in {seconds:.1f} s",
        window=[first, last],
        days_merged=result.days_merged,
        window_dir=result.window_dir,
        seconds=round(seconds, 3),
        stats=result.heatmaps.stats.publishable(),
    )
    print(format_summary(result.heatmaps, seconds))
    print(_pii_line(result.pii))
    print(f"window {first} to {last} from {len(result.days_merged)} day(s): {result.window_dir}")
    return 0 if result.pii["clean"] else PII_IN_OUTPUT


def run_scan_pii(args: argparse.Namespace) -> int:
    """``heatengine scan-pii``."""
    from heatengine.pii import scan_input

    if args.sample < 0:
        msg = f"--sample must be 0 (all rows) or positive, got {args.sample}"
        raise HeatengineError(msg)
    source = args.inputs if len(args.inputs) > 1 else args.inputs[0]
    report = scan_input(source, args.sample or None)
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if not report.findings:
        print("no personal data found")
        return 0
    print(f"{'column':<28}{'kind':<26}{'found in':<10}{'hits':>10}{'sampled':>10}")
    for f in sorted(report.findings, key=lambda f: (f.location, f.kind)):
        print(f"{f.location:<28}{f.kind:<26}{f.source:<10}{f.hits:>10,}{f.sampled:>10,}")
    print(f"columns with personal data: {', '.join(report.columns_with_pii())}")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    """``heatengine audit verify``."""
    from heatengine.audit import AUDIT_FILE, verify_log

    log = args.store if args.store.is_file() else args.store / AUDIT_FILE
    result = verify_log(log)
    if result.ok:
        print(f"{log}: {result.entries} entries, hash chain intact")
        return 0
    print(f"{log}: entry {result.first_bad} (line {result.first_bad + 1}) fails: {result.reason}")
    return 1


def run_render(args: argparse.Namespace) -> int:
    """``heatengine render``."""
    from heatengine.store import read

    _check_render_options(args)
    heatmaps = read(args.store)
    images = _render_all(heatmaps, args.out, args)
    print(f"{len(images)} PNG(s) and index.html written to {args.out}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """``heatengine demo``."""
    from heatengine.pipeline import aggregate
    from heatengine.pseudonym import PseudonymKey
    from heatengine.store import write_atomically
    from heatengine.synthetic import DEMO_END, SCREEN_LAYOUTS, draw_screen_mockup, generate_taps

    if args.taps < 1:
        msg = f"--taps must be positive, got {args.taps}"
        raise HeatengineError(msg)
    _check_render_options(args)
    started = time.perf_counter()
    out: Path = args.out
    print(f"heatengine {__version__}: demo with {args.taps:,} taps -> {out}", file=sys.stderr)
    taps = generate_taps(args.taps, seed=args.seed)
    input_path = out / "input" / "taps.parquet"
    write_atomically(input_path, taps.write_parquet)
    _progress("generate demo data", time.perf_counter() - started)

    from heatengine.elements import demo_elements

    layout = demo_elements().select("screen", "element", "x0", "y0", "x1", "y1")
    from heatengine.rage import RagePolicy

    config = AggregateConfig(
        segments=DEMO_SEGMENTS,
        as_of=DEMO_END,
        elements=tuple(layout.iter_rows()),
        rage_taps=RagePolicy(),
    )
    screens = out / "screens"
    rows, columns = config.grid.shape
    for screen in SCREEN_LAYOUTS:  # mock-ups with the grid's aspect ratio
        image = draw_screen_mockup(screen, MOCKUP_WIDTH, MOCKUP_WIDTH * rows // columns)
        write_atomically(screens / f"{screen}.png", lambda p, im=image: im.save(p, format="PNG"))

    # A throw-away key: demo pseudonyms cannot be linked to anything after the run.
    key = PseudonymKey(secrets.token_bytes(32))
    started_at = datetime.now(UTC)
    heatmaps = aggregate(taps, config, key=key, progress=_progress)
    _write_checked(heatmaps, out / "store")
    if args.backgrounds is None:
        args.backgrounds = screens
    images = _render_all(heatmaps, out / "png", args)
    pii = _check_outputs(heatmaps, [*_store_files(out / "store"), out / "png"])
    args.actor, args.purpose = None, "heatengine demo on generated data"
    _audit(heatmaps, args, "demo", started_at, [input_path], _store_files(out / "store"), pii)
    print(format_summary(heatmaps, time.perf_counter() - started))
    print(_pii_line(pii))
    print(f"input:  {input_path}  (try: heatengine aggregate {input_path} --out DIR)")
    print(f"store:  {out / 'store'}")
    print(f"images: {len(images)} PNG(s) in {out / 'png'}, gallery: {out / 'png' / 'index.html'}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """``heatengine compare``."""
    from heatengine.compare import compare_stores
    from heatengine.gallery import GalleryEntry, write_gallery
    from heatengine.store import read

    labels = tuple(label.strip() for label in args.labels.split(","))
    if len(labels) != 2 or not all(labels):
        msg = f"--labels takes two names separated by a comma, got {args.labels!r}"
        raise HeatengineError(msg)
    a, b = read(args.store_a), read(args.store_b)
    comparisons = compare_stores(
        a, b, args.out, labels=labels, colormap=args.colormap, backgrounds=args.backgrounds
    )
    entries = [
        GalleryEntry(
            c.panels_path,
            c.label,
            (f"largest change {c.max_abs_difference:.2f} of the peak",),
            (("difference only", c.difference_path),),
        )
        for c in comparisons
    ]
    write_gallery(
        args.out,
        entries,
        title=f"{labels[1]} compared with {labels[0]}",
        subtitle="each layer normalised to its own peak; blue: more in "
        f"{labels[0]}, red: more in {labels[1]}",
    )
    print(f"{len(comparisons)} shared layer(s) compared; gallery: {args.out / 'index.html'}")
    for c in sorted(comparisons, key=lambda c: -c.max_abs_difference)[:5]:
        print(f"  {c.label:<40} largest change {c.max_abs_difference:.2f}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """``heatengine bench``."""
    from heatengine.bench import (
        compare,
        compare_streaming,
        format_table,
        write_benchmark_files,
        write_json,
    )

    if args.taps < 1000 or args.repeat < 1 or args.files < 1:
        msg = "--taps must be at least 1000, --repeat and --files at least 1"
        raise HeatengineError(msg)
    print(f"heatengine {__version__}: benchmark on {args.taps:,} taps", file=sys.stderr)
    if args.streaming:
        if args.streaming.exists() and any(args.streaming.iterdir()):
            msg = f"--streaming needs an empty or new directory, {str(args.streaming)!r} is not"
            raise HeatengineError(msg)
        write_benchmark_files(args.taps, args.streaming, files=args.files, seed=args.seed)
        timings = compare_streaming(args.streaming, args.taps, repeat=args.repeat)
    else:
        timings = compare(args.taps, seed=args.seed, repeat=args.repeat)
    print(format_table(timings))
    if args.json:
        write_json(timings, args.json)
        print(f"timings written to {args.json}")
    return 0


def _check_render_options(args: argparse.Namespace) -> None:
    """Fail on a bad colour map, scale or screenshot option before any work is done."""
    from heatengine.batch import load_background_map
    from heatengine.colormaps import DIVERGING_NAMES, get_colormap

    get_colormap(args.colormap)
    if args.backgrounds is not None and not args.backgrounds.is_dir():
        msg = f"the backgrounds directory {str(args.backgrounds)!r} does not exist"
        raise HeatengineError(msg)
    args.screenshots = load_background_map(args.background_map) if args.background_map else {}
    if args.colormap in DIVERGING_NAMES:
        msg = f"--colormap {args.colormap} is for differences (heatengine compare)"
        raise HeatengineError(msg)
    if args.scale_max not in ("layer", "shared"):
        try:
            args.scale_max = float(args.scale_max)
        except ValueError:
            args.scale_max = float("nan")
        if not 0 < args.scale_max < float("inf"):
            msg = "--scale-max takes layer, shared or a positive number"
            raise HeatengineError(msg)
    if not 0.0 <= args.min_alpha <= 0.9:
        msg = f"--min-alpha must be between 0 and 0.9, got {args.min_alpha}"
        raise HeatengineError(msg)


def _render_all(heatmaps, directory: Path, args: argparse.Namespace) -> list:
    from heatengine.batch import render_layers, write_layer_gallery

    started = time.perf_counter()
    rendered = render_layers(
        heatmaps,
        directory,
        colormap=args.colormap,
        scale=args.scale,
        scale_max=args.scale_max,
        backgrounds=args.backgrounds,
        background_map=args.screenshots,
        legend=not args.no_legend,
        min_alpha=args.min_alpha,
        progress=_progress_bar("rendering"),
    )
    unknown = sorted(set(args.screenshots) - set(heatmaps.layers["screen"].to_list()))
    if unknown:
        text = f"the screenshot mapping names screens with no published layer: {unknown}"
        _log("warning", f"  warning: {text}", message=text)
    for layer in rendered:
        for warning in layer.warnings:
            _log(
                "warning",
                f"  warning: {layer.title}: {warning}",
                layer=layer.title,
                message=warning,
            )
    write_layer_gallery(heatmaps, directory, rendered)
    _progress("render PNGs and gallery", time.perf_counter() - started)
    return rendered


def _progress_bar(label: str):
    """A one-line progress bar on a terminal; nothing when stderr is a file or pipe."""
    if not sys.stderr.isatty() or _LOG["json"]:
        return None

    def show(done: int, total: int) -> None:
        filled = round(24 * done / total) if total else 24
        end = "\n" if done == total else ""
        print(f"\r  {label} [{'#' * filled}{'.' * (24 - filled)}] {done}/{total}", end=end,
              file=sys.stderr, flush=True)  # fmt: skip

    return show


def _share(share: float | None) -> str:
    return "" if share is None else f", {share:.1%} of taps"


def _shares(heatmaps, column: str) -> str:
    """``home 3.1%, checkout 9.5%`` for the layers where ``column`` is published."""
    listed = [
        f"{heatmaps.layer_label(row['layer'])} {row[column]:.1%}"
        for row in heatmaps.layers.iter_rows(named=True)
        if row[column] is not None
    ]
    return ", ".join(listed) or "none published"


def _coverage_lines(coverage: dict | None) -> list[str]:
    """``consent coverage: 88.2% of users, 88.5% of sessions`` and any warnings."""
    from heatengine.coverage import warnings

    if not coverage:
        return []
    shares = [
        f"{s['coverage']:.1%} of {what}" if s["coverage"] is not None else f"{what} withheld (< k)"
        for what, s in coverage.items()
    ]
    notes = [f"WARNING: {w}" for what, s in coverage.items() for w in warnings(s, what)]
    return [f"consent coverage: {', '.join(shares)}", *notes]


def _k_lines(heatmaps, line) -> list[str]:
    sup = heatmaps.stats.suppression
    rules = {
        "k": sup.cells_suppressed_k,
        "p%": sup.cells_suppressed_p_percent,
        "(n,k)": sup.cells_suppressed_nk,
        "secondary": sup.cells_suppressed_secondary,
    }
    by_rule = ", ".join(f"{name} {n:,}" for name, n in rules.items() if n)
    privacy = heatmaps.config.privacy
    return [
        line(
            "layers published", sup.layers_published, f"   (suppressed: {sup.layers_suppressed:,})"
        ),
        line(
            "cells published",
            sup.cells_published,
            f"   (suppressed: {sup.cells_suppressed:,}{_share(sup.suppressed_tap_share)})",
        ),
        *([f"  suppressed by rule: {by_rule}"] if by_rule else []),
        f"k = {privacy.k}, p% rule: {privacy.dominance.p or 'off'}"
        + (", true totals" if privacy.true_totals else ""),
    ]


def _dp_lines(heatmaps, line) -> list[str]:
    from heatengine.legend import privacy_summary

    dp = heatmaps.stats.dp
    grid_cells = heatmaps.config.grid.cells
    return [
        line(
            "layers released",
            heatmaps.layers.height,
            f"   ({dp['screens_selected']:,} non-public selected, with noise)",
        ),
        line("cells released", heatmaps.layers.height * grid_cells, "   (every cell, with noise)"),
        privacy_summary(heatmaps) + f", noise scale {dp['noise_scale']:.3g} ({dp['noise']})",
    ]


def format_summary(heatmaps, seconds: float) -> str:
    """The short run summary the CLI prints."""
    stats = heatmaps.stats
    width = 26

    def line(label: str, value: int, note: str = "") -> str:
        return f"{label:<{width}}{value:>11,}{note}"

    lines = [
        line("rows in", stats.rows_in),
        line("eligible", stats.rows_eligible),
        line("quarantined", stats.rows_quarantined),
        *[line(f"  {reason}", n) for reason, n in stats.quarantined.items()],
        line("excluded", stats.rows_excluded),
        *[line(f"  {reason}", n) for reason, n in stats.excluded.items()],
        *(_dp_lines(heatmaps, line) if stats.dp is not None else _k_lines(heatmaps, line)),
        f"measure = {heatmaps.config.measure}, "
        f"grid = {heatmaps.config.grid.columns}x{heatmaps.config.grid.rows}, "
        f"sigma = {heatmaps.config.sigma}",
    ]
    lines += _coverage_lines(stats.consent_coverage)
    for column, label in (
        ("rage_tap_share", "rage taps (share of published taps)"),
        ("dead_tap_share", "dead taps (outside every element)"),
    ):
        if column in heatmaps.layers.columns:
            lines.append(f"{label}: {_shares(heatmaps, column)}")
    if stats.pii_input and stats.pii_input["columns"]:
        found = ", ".join(f"{c} ({', '.join(k)})" for c, k in stats.pii_input["columns"].items())
        lines.append(f"personal data in the input (kept out of outputs): {found}")
    if stats.consent_assumed:
        lines.append("consent: assumed for every row (--assume-consent)")
    if stats.dropped_columns:
        lines.append(f"columns dropped (not on the allow-list): {', '.join(stats.dropped_columns)}")
    lines.append(f"finished in {seconds:.1f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
