"""The partial aggregate: the exact, mergeable summary of a set of taps.

A :class:`Partial` holds, per layer and grid cell, each pseudonymous user's uncapped
tap count. That is enough for every later decision (distinct users, capped taps,
suppression), and two partials merge exactly, in any order and grouping. Caps are
applied only when a merged window is finalised, so capping never depends on how the
taps were split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import polars as pl

from heatengine.config import GridSpec
from heatengine.kernels import cell_totals, combine_contributions, layer_cell_keys


@dataclass(frozen=True)
class Partial:
    """Per-(layer, cell, user) tap counts for one set of taps.

    Attributes
    ----------
    grid
        The grid the cells belong to.
    layers
        One row per layer, sorted, with the layer columns (``screen`` and segments).
    keys, users, taps
        The contribution list (see :mod:`heatengine.kernels`): ``keys`` pack a row
        of ``layers`` and a cell as ``layer * grid.cells + cell``; each (key, user)
        pair appears once, sorted.
    """

    grid: GridSpec
    layers: pl.DataFrame
    keys: np.ndarray
    users: np.ndarray
    taps: np.ndarray

    @property
    def n_keys(self) -> int:
        """Number of possible keys: layers times cells."""
        return self.layers.height * self.grid.cells

    def cell_totals(self, cap: int) -> tuple[np.ndarray, np.ndarray]:
        """Distinct users and capped taps, each of shape ``(layers, cells)``."""
        users = np.zeros(self.n_keys, np.int64)
        taps = np.zeros(self.n_keys, np.int64)
        cell_totals(self.keys, self.taps, cap, users, taps)
        shape = (self.layers.height, self.grid.cells)
        return users.reshape(shape), taps.reshape(shape)


def default_chunks() -> int:
    """One chunk per Numba thread."""
    return numba.get_num_threads()


def partial_from_taps(
    grid: GridSpec,
    layers: pl.DataFrame,
    layer: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    users: np.ndarray,
    chunks: int | None = None,
) -> Partial:
    """Bin validated taps into a partial.

    Parameters
    ----------
    grid
        The public grid.
    layers
        Sorted distinct layer rows; ``layer`` indexes into it.
    layer : int64 array
    x, y : float64 arrays in [0, 1]
    users : uint64 array of pseudonymous tokens
    chunks
        Parallel chunks (default: Numba's thread count); the result is the same for all.
    """
    keys = np.empty(x.size, np.int64)
    layer_cell_keys(layer, x, y, grid.columns, grid.rows, keys)
    ones = np.ones(x.size, np.int64)
    n_keys = layers.height * grid.cells
    merged = combine_contributions(keys, users, ones, n_keys, chunks or default_chunks())
    return Partial(grid, layers, *merged)


def merge_partials(parts: Sequence[Partial], chunks: int | None = None) -> Partial:
    """Merge partials of the same grid into one, exactly.

    Layers are united and re-sorted; each partial's keys are moved to the united
    layer numbering, and counts of the same (layer, cell, user) are summed.
    """
    if not parts:
        msg = "merge_partials needs at least one partial"
        raise ValueError(msg)
    grid = parts[0].grid
    for part in parts[1:]:
        if part.grid != grid:
            msg = f"cannot merge partials on different grids: {grid} and {part.grid}"
            raise ValueError(msg)
    columns = parts[0].layers.columns
    united = pl.concat([p.layers for p in parts], how="vertical").unique().sort(columns)
    numbered = united.with_row_index("united")
    keys = []
    for part in parts:
        mapping = (
            part.layers.with_row_index("own")
            .join(numbered, on=columns, how="left", nulls_equal=True)
            .sort("own")["united"]
            .to_numpy()
            .astype(np.int64)
        )
        layer, cell = np.divmod(part.keys, grid.cells)
        keys.append(mapping[layer] * grid.cells + cell)
    merged = combine_contributions(
        np.concatenate(keys),
        np.concatenate([p.users for p in parts]),
        np.concatenate([p.taps for p in parts]),
        united.height * grid.cells,
        chunks or default_chunks(),
    )
    return Partial(grid, united, *merged)
