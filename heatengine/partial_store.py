"""Day partials on disk: the only place heatengine keeps pseudonymised data.

``STORE/partials/day=YYYY-MM-DD/`` holds ``contributions.npz`` (keys, user tokens, taps),
``layers.parquet`` and ``meta.json`` (row counts, key epoch and the options the partial
depends on). Folders are created owner-only (0700), files 0600, apart from the published
outputs. A day is replaced whole: written to a hidden folder, then renamed into place.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from heatengine.config import AggregateConfig, GridSpec
from heatengine.errors import StoreError
from heatengine.heatmaps import RowCounts
from heatengine.partial import Partial
from heatengine.store import write_npz

PARTIALS_DIR = "partials"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_PREFIX = "day="


def partial_options(config: AggregateConfig) -> dict[str, Any]:
    """The options a partial depends on; partials merge only when these agree."""
    return {
        "grid": asdict(config.grid),
        "segments": list(config.segments),
        "column_map": dict(config.column_map),
        "coordinates": config.coordinates,
        "assume_consent": config.assume_consent,
        "rage_taps": None if config.rage_taps is None else config.rage_taps.to_dict(),
        "screen_names": "routes cleaned",  # partials from before route cleaning differ
    }


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def day_path(store: Path, day: date) -> Path:
    """Where a day's partial lives."""
    return store / PARTIALS_DIR / f"{_PREFIX}{day.isoformat()}"


def stored_days(store: Path) -> list[date]:
    """Days with a stored partial, oldest first."""
    folder = store / PARTIALS_DIR
    if not folder.is_dir():
        return []
    days = [p.name.removeprefix(_PREFIX) for p in folder.iterdir() if p.name.startswith(_PREFIX)]
    return sorted(date.fromisoformat(d) for d in days)


def save_day(
    store: Path, day: date, partial: Partial, counts: RowCounts, config: AggregateConfig
) -> Path:
    """Write (or replace) a day's partial with owner-only permissions."""
    parent = _private_dir(store / PARTIALS_DIR)
    target = day_path(store, day)
    staging = _private_dir(parent / f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        write_npz(
            staging / "contributions.npz",
            {"keys": partial.keys, "users": partial.users, "taps": partial.taps},
        )
        partial.layers.write_parquet(staging / "layers.parquet")
        meta = {
            "day": day.isoformat(),
            "options": partial_options(config),
            "counts": asdict(counts),
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        for file in staging.iterdir():
            os.chmod(file, PRIVATE_FILE_MODE)
        old = parent / f".{target.name}.{secrets.token_hex(6)}.old"
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_day(store: Path, day: date) -> tuple[Partial, RowCounts, dict[str, Any]]:
    """A stored day: its partial, row counts and metadata."""
    folder = day_path(store, day)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        with np.load(folder / "contributions.npz", allow_pickle=False) as arrays:
            keys, users, taps = arrays["keys"], arrays["users"], arrays["taps"]
        layers = pl.read_parquet(folder / "layers.parquet")
    except (OSError, ValueError, KeyError) as exc:
        msg = f"the partial of {day} in {str(folder)!r} cannot be read: {exc}"
        raise StoreError(msg) from None
    grid = GridSpec(**meta["options"]["grid"])
    return Partial(grid, layers, keys, users, taps), RowCounts(**meta["counts"]), meta


def purge_days_before(store: Path, horizon: date) -> list[date]:
    """Delete every stored day older than ``horizon``; return the days removed."""
    removed = [day for day in stored_days(store) if day < horizon]
    for day in removed:
        shutil.rmtree(day_path(store, day))
    return removed
