"""The output store: ``cells.parquet``, ``grids.npz`` and ``manifest.json``.

Every file is written completely under a temporary name in the target directory and
then renamed over the old one, the manifest last; the manifest records each file's
SHA-256 and :func:`read` checks them, so a store is either the old one, the new one,
or reported as inconsistent, never silently half-written.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from heatengine._version import __version__
from heatengine.atomic import commit, temporary_beside, write_atomically
from heatengine.config import AggregateConfig
from heatengine.errors import StoreError
from heatengine.heatmaps import HeatmapSet, RunStats

CELLS_FILE = "cells.parquet"
ELEMENTS_FILE = "elements.parquet"
#: Name suffix, in grids.npz, of a layer's dead cells (covered by no UI element).
DEAD_SUFFIX = "_dead"
GRIDS_FILE = "grids.npz"
MANIFEST_FILE = "manifest.json"
STORE_FORMAT = "heatengine-store"
STORE_FORMAT_VERSION = 1
#: A fixed zip entry time keeps grids.npz byte-identical across runs.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``np.load``-compatible .npz with fixed entry times, so equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def write_store(heatmaps: HeatmapSet, directory: str | os.PathLike[str]) -> Path:
    """Write a :class:`HeatmapSet` to ``directory`` (created if needed).

    Returns
    -------
    Path
        The manifest's path.
    """
    root = Path(directory)
    ids = heatmaps.layers["layer"]
    arrays = {layer: heatmaps.grids[i] for i, layer in enumerate(ids)}
    writers = [
        (CELLS_FILE, lambda p: heatmaps.cells.write_parquet(p, statistics=True)),
        (GRIDS_FILE, lambda p: write_npz(p, arrays)),
    ]
    if heatmaps.dead_cells is not None:
        shape = heatmaps.config.grid.shape
        dead = heatmaps.dead_cells
        arrays |= {f"{layer}{DEAD_SUFFIX}": dead[i].reshape(shape) for i, layer in enumerate(ids)}
    if heatmaps.elements is not None:
        elements = heatmaps.elements
        writers.append((ELEMENTS_FILE, lambda p: elements.write_parquet(p, statistics=True)))
    staged: dict[str, Path] = {}
    try:
        for name, write in writers:
            staged[name] = temporary_beside(root / name)
            write(staged[name])
        files = {
            name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
            for name, path in staged.items()
        }
        staged[MANIFEST_FILE] = temporary_beside(root / MANIFEST_FILE)
        manifest = build_manifest(heatmaps, files)
        staged[MANIFEST_FILE].write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if ELEMENTS_FILE not in staged:  # a store rewritten without elements loses them
            (root / ELEMENTS_FILE).unlink(missing_ok=True)
        for name, temporary in staged.items():  # data files first, the manifest last
            commit(temporary, root / name)
    finally:
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)
    return root / MANIFEST_FILE


def build_manifest(heatmaps: HeatmapSet, files: dict[str, Any]) -> dict[str, Any]:
    """The manifest: configuration, version, counts, suppression, window, layers, file hashes."""
    return {
        "format": STORE_FORMAT,
        "format_version": STORE_FORMAT_VERSION,
        "heatengine_version": __version__,
        "config": heatmaps.config.to_dict(),
        "stats": heatmaps.stats.publishable(),
        "window": {"start": heatmaps.stats.window_start, "end": heatmaps.stats.as_of},
        "layers": heatmaps.layers.to_dicts(),
        "files": files,
    }


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check a store's manifest."""
    path = Path(directory) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        msg = f"{str(directory)!r} is not a heatengine store: it has no {MANIFEST_FILE}"
        raise StoreError(msg) from None
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"cannot read {str(path)!r}: {exc}"
        raise StoreError(msg) from None
    if manifest.get("format") != STORE_FORMAT:
        msg = f"{str(path)!r} is not a heatengine store manifest"
        raise StoreError(msg)
    if manifest.get("format_version") != STORE_FORMAT_VERSION:
        msg = (
            f"{str(path)!r} has store format version {manifest.get('format_version')}; "
            f"this heatengine reads version {STORE_FORMAT_VERSION}"
        )
        raise StoreError(msg)
    return manifest


def read(directory: str | os.PathLike[str]) -> HeatmapSet:
    """Read a store written by :meth:`HeatmapSet.write`, checking every file's SHA-256.

    Raises
    ------
    StoreError
        The directory is not a store, a file is missing, or a file does not match the
        manifest.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    for name, meta in manifest["files"].items():
        path = root / name
        if not path.is_file():
            msg = f"store {str(root)!r} is incomplete: {name} is missing"
            raise StoreError(msg)
        if sha256_file(path) != meta["sha256"]:
            msg = f"store {str(root)!r} is inconsistent: {name} does not match its manifest hash"
            raise StoreError(msg)
    config = AggregateConfig.from_dict(manifest["config"])
    layer_columns = list(config.layer_columns)
    schema = {"layer": pl.String, **dict.fromkeys(layer_columns, pl.String)}
    schema |= {"users": pl.Int64, "taps": pl.Int64, "cells": pl.Int64, "peak": pl.Float64}
    if config.rage_taps is not None and config.dp is None:
        schema |= {"rage_tap_share": pl.Float64}
    if config.elements:
        schema |= {"dead_taps": pl.Int64, "dead_tap_share": pl.Float64}
        schema |= {"elements_suppressed": pl.Int64}
    layers = pl.DataFrame(manifest["layers"], schema=schema, orient="row")
    ids = layers["layer"].to_list()
    with np.load(root / GRIDS_FILE, allow_pickle=False) as archive:
        grids = [archive[layer] for layer in ids]
        dead_cells = None
        if config.elements:
            dead = [archive[f"{layer}{DEAD_SUFFIX}"].ravel() for layer in ids]
            dead_cells = _stack(dead, config.grid.cells, bool)
    return HeatmapSet(
        config=config,
        layers=layers,
        cells=pl.read_parquet(root / CELLS_FILE),
        grids=_stack(grids, config.grid.shape, np.float64),
        stats=RunStats.from_dict(manifest["stats"]),
        elements=pl.read_parquet(root / ELEMENTS_FILE) if config.elements else None,
        dead_cells=dead_cells,
    )


def _stack(arrays: list[np.ndarray], shape, dtype) -> np.ndarray:
    """One array per layer stacked, or an empty stack of the right shape."""
    return np.stack(arrays) if arrays else np.zeros((0, *np.atleast_1d(shape)), dtype)


def write_quarantine(heatmaps: HeatmapSet, path: str | os.PathLike[str]) -> int:
    """Write the quarantined rows (with ``reason``, without user ids) to Parquet or CSV.

    Returns the number of rows written.
    """
    target = Path(path)
    frame = heatmaps.quarantine
    if target.suffix.lower() == ".csv":
        write_atomically(target, frame.write_csv)
    else:
        write_atomically(target, frame.write_parquet)
    return frame.height
