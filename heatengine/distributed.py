"""Scale out on Dask: each worker builds the partial of its files, partials merge in a tree.

The caller passes a ``distributed.Client``; heatengine never starts a cluster on its own
(the CLI's ``--local-workers`` does, on request). Workers run the same kernels as one
machine: their Numba cache is on disk, and Numba and Polars use only the worker's own
threads. Suppression, smoothing and publishing run once, on the merged partial, so the
result is byte-identical to a single-process run.

Raw ids are pseudonymised on the workers, which need the key: pass ``key_file``, a
path every worker can read (a ``PseudonymKey`` is never sent over the network), or set
``HEATENGINE_KEY`` in the workers' environment.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from heatengine.config import AggregateConfig
from heatengine.errors import HeatengineError
from heatengine.heatmaps import HeatmapSet, RowCounts
from heatengine.io import FilePlan, plan_files
from heatengine.partial import Partial, merge_partials
from heatengine.pipeline import build_piece, publish, with_coverage
from heatengine.pseudonym import PseudonymKey
from heatengine.schema import text_source_columns

if TYPE_CHECKING:
    from distributed import Client

Piece = tuple[Partial, RowCounts, pl.DataFrame, dict]
INSTALL_HINT = 'Dask support needs the dask extra: pip install "heatengine[dask]"'


def _require_dask() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise HeatengineError(INSTALL_HINT) from None


def _use_worker_threads() -> None:
    """Numba in this task uses the worker's threads, not the machine's."""
    import numba
    from distributed import get_worker

    try:
        threads = get_worker().state.nthreads
    except ValueError:  # not on a worker (e.g. a synchronous scheduler)
        return
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _key(key_file: str | None) -> PseudonymKey | None:
    return PseudonymKey.from_file(key_file) if key_file else PseudonymKey.from_environment()


def _piece_of_file(plan: FilePlan, config: AggregateConfig, key_file: str | None) -> Piece:
    _use_worker_threads()
    return _counted(build_piece(plan.scan(), config, as_of=config.as_of, key=_key(key_file)))


def _piece_of_frame(frame: Any, config: AggregateConfig, key_file: str | None) -> Piece:
    _use_worker_threads()
    piece = build_piece(pl.from_pandas(frame), config, as_of=config.as_of, key=_key(key_file))
    return _counted(piece)


def _counted(piece: tuple) -> Piece:
    """A worker's piece with its taps counted into a partial that merges."""
    taps, *rest = piece
    return (taps.whole(), *rest)


def _merge(first: Piece, second: Piece) -> Piece:
    epochs = {first[1].key_epoch, second[1].key_epoch}
    if len(epochs) > 1:
        msg = f"workers used different keys (epochs {sorted(map(str, epochs))})"
        raise HeatengineError(msg)
    coverage = {
        what: first[3].get(what, []) + second[3].get(what, []) for what in {*first[3], *second[3]}
    }
    return (
        merge_partials([first[0], second[0]]),
        first[1].merged(second[1]),
        pl.concat([first[2], second[2]], how="vertical"),
        coverage,
    )


def build_partial_distributed(
    inputs: Sequence[str | os.PathLike[str]] | Any,
    config: AggregateConfig,
    client: Client,
    *,
    key_file: str | os.PathLike[str] | None = None,
) -> tuple[Partial, RowCounts, pl.DataFrame]:
    """The merged partial, row counts and quarantine of ``inputs``, built on ``client``.

    ``inputs`` is a list of files, folders or globs, or a ``dask.dataframe.DataFrame``
    (one task per partition). ``config.as_of`` must be set, so every worker applies the
    same retention.
    """
    _require_dask()
    if config.as_of is None:
        msg = "a distributed run needs config.as_of, so every worker uses the same time"
        raise HeatengineError(msg)
    key = None if key_file is None else str(key_file)
    if hasattr(inputs, "to_delayed"):
        from dask import delayed

        tasks = [delayed(_piece_of_frame)(part, config, key) for part in inputs.to_delayed()]
        futures = client.compute(tasks)
    else:
        plans = plan_files(list(inputs), text_source_columns(config))
        futures = [client.submit(_piece_of_file, plan, config, key, pure=False) for plan in plans]
    if not futures:
        msg = "no input partitions to aggregate"
        raise HeatengineError(msg)
    while len(futures) > 1:  # a binary tree of merges, all on the cluster
        pairs = zip(futures[::2], futures[1::2], strict=False)
        paired = [client.submit(_merge, a, b) for a, b in pairs]
        futures = paired + ([futures[-1]] if len(futures) % 2 else [])
    partial, counts, quarantine, coverage = futures[0].result()
    return partial, with_coverage(counts, coverage, config), quarantine


def aggregate(
    inputs: Sequence[str | os.PathLike[str]] | Any,
    config: AggregateConfig,
    client: Client,
    *,
    key_file: str | os.PathLike[str] | None = None,
) -> HeatmapSet:
    """:func:`heatengine.aggregate` on a Dask cluster; the same result, byte for byte.

    Examples
    --------
    ``aggregate(["lake/date=2026-12-03/"], config, Client("tls://scheduler:8786"),
    key_file="/etc/heatengine/key")``
    """
    if config.as_of is None:
        config = replace(config, as_of=datetime.now(UTC))
    partial, counts, quarantine = build_partial_distributed(
        inputs, config, client, key_file=key_file
    )
    return publish(partial, counts, config, as_of=config.as_of, quarantine=quarantine)


def local_client(workers: int, threads_per_worker: int = 1) -> Client:
    """A local cluster of worker processes, each with Polars limited to its threads."""
    _require_dask()
    from distributed import Client, LocalCluster

    environment = {
        "POLARS_MAX_THREADS": str(threads_per_worker),
        "NUMBA_NUM_THREADS": str(threads_per_worker),
    }
    cache = os.environ.get("NUMBA_CACHE_DIR")
    if cache:
        environment["NUMBA_CACHE_DIR"] = str(Path(cache).resolve())
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        dashboard_address=None,
        env=environment,
    )
    return Client(cluster)
