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


def flagged_pairs(layer: np.ndarray, person: np.ndarray, flag: np.ndarray) -> pl.DataFrame:
    """Distinct (layer, person) pairs, ``flag`` true where any of the pair's rows is, sorted."""
    return (
        pl.DataFrame(
            {"layer": layer.astype(np.int64), "person": person, "flag": flag},
            schema={"layer": pl.Int64, "person": pl.UInt64, "flag": pl.Boolean},
        )
        .group_by("layer", "person")
        .agg(pl.col("flag").any())
        .sort("layer", "person")
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


def eligible_rows(frame: pl.DataFrame, as_of, retention_days: int = 30) -> pl.DataFrame:
    """Rows of a canonical, normalised frame that pass validation, consent and retention."""
    return frame.filter(
        pl.col("consent").fill_null(False)
        & pl.col("x").is_between(0, 1)
        & pl.col("y").is_between(0, 1)
        & pl.col("screen").str.strip_chars().ne("")
        & pl.col("user_id").str.strip_chars().ne("")
        & pl.col("ts").is_between(as_of - pl.duration(days=retention_days), as_of)
    )


def published_cells(
    eligible: pl.DataFrame, layer_columns: list[str], columns: int, rows: int, cap: int, k: int
) -> pl.DataFrame:
    """Exact distinct users and capped taps per (layer, cx, cy), cells with >= k users only."""
    cells = cell_of(eligible["x"].to_numpy(), eligible["y"].to_numpy(), columns, rows)
    return (
        eligible.with_columns(
            cx=pl.Series(cells % columns, dtype=pl.Int32),
            cy=pl.Series(cells // columns, dtype=pl.Int32),
        )
        .group_by(*layer_columns, "cx", "cy", "user_id")
        .agg(n=pl.len())
        .group_by(*layer_columns, "cx", "cy")
        .agg(
            users=pl.len().cast(pl.Int64),
            taps=pl.col("n").clip(upper_bound=cap).sum().cast(pl.Int64),
        )
        .filter(pl.col("users") >= k)
        .sort(*layer_columns, "cy", "cx")
    )


def drop_small_nested_differences(per_element, group, elements, cells_of, k):
    """The nested-element rule, slowly: walking each layer's elements in table order, an
    inner element (cells a strict subset of an outer one's) is dropped when both are
    still shown and the outer has 1 to k - 1 more users."""
    order = [tuple(r) for r in elements.select("screen", "element").rows()]
    shown = {(tuple(r[c] for c in group), r["element"]): r["users"]
             for r in per_element.iter_rows(named=True)}  # fmt: skip
    dropped = set()
    for layer in {key[0] for key in shown}:
        screen = layer[group.index("screen")]
        for outer in (e for s, e in order if s == screen):
            for inner in (e for s, e in order if s == screen):
                a, b = (layer, outer), (layer, inner)
                if a not in shown or b not in shown or a in dropped or b in dropped:
                    continue
                nested = cells_of[(screen, inner)] < cells_of[(screen, outer)]
                if nested and 0 < shown[a] - shown[b] < k:
                    dropped.add(b)
    keys = [(tuple(r[c] for c in group), r["element"]) for r in per_element.iter_rows(named=True)]
    return per_element.filter(pl.Series([key not in dropped for key in keys], dtype=pl.Boolean))
