"""Slow, obviously correct twins of the kernels and of the per-cell pipeline (numpy, Polars)."""

from __future__ import annotations

import numpy as np
import polars as pl


def cell_of(x: np.ndarray, y: np.ndarray, columns: int, rows: int) -> np.ndarray:
    """Cell index by the definition: floor(v * n), with v == 1.0 in the last cell."""
    cx = np.minimum(np.floor(x * columns), columns - 1).astype(np.int64)
    cy = np.minimum(np.floor(y * rows), rows - 1).astype(np.int64)
    return cy * columns + cx


def contributions(keys: np.ndarray, users: np.ndarray, taps: np.ndarray) -> pl.DataFrame:
    """Summed taps per distinct (key, user), sorted."""
    return (
        pl.DataFrame(
            {"key": keys, "user": users, "taps": taps}, schema_overrides={"user": pl.UInt64}
        )
        .group_by("key", "user")
        .agg(pl.col("taps").sum())
        .sort("key", "user")
    )


def per_cell(keys: np.ndarray, users: np.ndarray, cap: int) -> pl.DataFrame:
    """Distinct users and capped taps per key, from one row per tap."""
    return (
        contributions(keys, users, np.ones(keys.size, np.int64))
        .group_by("key")
        .agg(
            pl.col("user").n_unique().alias("users"),
            pl.col("taps").clip(upper_bound=cap).sum().alias("taps"),
        )
        .sort("key")
    )
