"""The partial aggregate: the exact, mergeable summary of a set of taps.

A :class:`Partial` holds, per layer and grid cell, each pseudonymous user's uncapped
tap count. That is enough for every later decision (distinct users, capped taps,
suppression), and two partials merge exactly, in any order and grouping. Caps are
applied only when a merged window is finalised, so capping never depends on how the
taps were split.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numba
import numpy as np
import polars as pl

from heatengine.config import GridSpec
from heatengine.kernels import (
    cell_totals,
    count_contributions,
    distinct_users_per_group,
    layer_cell_keys,
    merge_sorted_contributions,
    published_user_groups,
    renumber_key_layers,
    tap_cell_totals,
)


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

    def user_pairs(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(keys, users)`` of disjoint sets of users (here, all at once): figures that
        add across users are computed part by part (see
        :class:`~heatengine.spill.SpilledPartial`)."""
        yield self.keys, self.users

    def whole(self, chunks: int | None = None) -> Partial:
        """The partial as one contribution list (here, itself)."""
        return self


class TapPartial:
    """Taps not yet counted into a contribution list: ``(keys, users)``, one row per
    tap, as parts of disjoint users.

    It answers what :class:`Partial` answers without the list where it can: cell
    totals and users per layer add across parts of disjoint users, and come straight
    from the taps (:func:`tap_totals`). :meth:`whole` counts the list for the steps
    that need it. Here the taps are one part in memory;
    :class:`~heatengine.spill.SpilledPartial` reads them from disk.

    Attributes
    ----------
    grid, layers
        As for :class:`Partial`.
    """

    def __init__(
        self,
        grid: GridSpec,
        layers: pl.DataFrame,
        keys: np.ndarray | None = None,
        users: np.ndarray | None = None,
        chunks: int | None = None,
    ) -> None:
        self.grid = grid
        self.layers = layers
        self._keys = np.zeros(0, np.int64) if keys is None else keys
        self._users = np.zeros(0, np.uint64) if users is None else users
        self._chunks = chunks

    @property
    def n_keys(self) -> int:
        """Number of possible keys: layers times cells."""
        return self.layers.height * self.grid.cells

    def user_pairs(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Each part's ``(keys, users)``, one entry per tap (pairs repeat). A part may
        live in buffers that the next one overwrites: use it before asking for more."""
        yield self._keys, self._users

    def cell_totals(self, cap: int) -> tuple[np.ndarray, np.ndarray]:
        """Distinct users and capped taps per (layer, cell), summed over the parts."""
        users, taps = np.zeros(self.n_keys, np.int64), np.zeros(self.n_keys, np.int64)
        for keys, part_users in self.user_pairs():
            tap_totals(keys, part_users, self.n_keys, cap, self._chunks, users, taps)
        shape = (self.layers.height, self.grid.cells)
        return users.reshape(shape), taps.reshape(shape)

    def whole(self, chunks: int | None = None) -> Partial:
        """The taps counted into one in-memory :class:`Partial`, part by part, merged."""
        chunks = chunks or self._chunks
        stack: list[Partial] = []
        for keys, users in self.user_pairs():
            stack.append(Partial(self.grid, self.layers, *count(keys, users, self.n_keys, chunks)))
            # Merge while the part below is no larger: few parts are held at once.
            while len(stack) > 1 and stack[-2].keys.size <= stack[-1].keys.size:
                stack[-2:] = [merge_partials(stack[-2:], chunks)]
        if not stack:
            empty = (np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.int64))
            return Partial(self.grid, self.layers, *empty)
        return stack[0] if len(stack) == 1 else merge_partials(stack, chunks)


#: Above this many possible keys per row, keys are first renumbered densely, so memory
#: follows the keys that occur rather than layers x cells (many sparse layers).
SPARSE_KEYS_PER_ROW = 4
#: Cap on the per-chunk key histograms of the counting sort (bytes).
CHUNK_HISTOGRAM_BUDGET = 256 * 2**20


def default_chunks() -> int:
    """One chunk per Numba thread."""
    return numba.get_num_threads()


def _dense_keys(keys: np.ndarray, n_keys: int) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Renumber keys densely when far more are possible than rows exist."""
    if n_keys > SPARSE_KEYS_PER_ROW * max(keys.size, 1):
        occupied, dense = np.unique(keys, return_inverse=True)
        return dense.astype(np.int64), occupied.size, occupied
    return keys, n_keys, None


#: Distinct-user counts sort about this many entries per group (see bucket_bits).
USERS_PER_GROUP = 256
MAX_BUCKET_BITS = 10


def bucket_bits(entries: int, groups: int) -> int:
    """Hash-bucket bits that split ``groups`` into sets of about :data:`USERS_PER_GROUP`
    entries (at most 2**10 buckets each), small enough to count in cache."""
    per_group = entries // max(groups, 1) // USERS_PER_GROUP
    return min(max(per_group, 1).bit_length() - 1, MAX_BUCKET_BITS)


def users_per_layer(
    partial: Partial | TapPartial,
    chosen: np.ndarray,
    in_cells: np.ndarray | None,
    chunks: int | None,
) -> np.ndarray:
    """Exact distinct users of each chosen layer (rows of ``partial.layers``), counting
    only contributions in keys where ``in_cells`` (bool per key) is true, or everywhere.

    Counted part by part (:meth:`Partial.user_pairs`): parts hold disjoint users, so
    their counts add, and a (key, user) pair may repeat within a part."""
    total = np.zeros(len(chosen), np.int64)
    if not len(chosen):
        return total
    layer_position = np.full(partial.layers.height, -1, np.int64)
    layer_position[chosen] = np.arange(len(chosen))
    mask = np.ones(partial.n_keys, bool) if in_cells is None else in_cells
    for keys, users in partial.user_pairs():
        bits = bucket_bits(keys.size, len(chosen))
        # Group numbers fit in 32 bits (layers times at most 2**10 buckets): half the memory.
        groups = np.empty(keys.size, np.int32 if len(chosen) << bits < 2**31 else np.int64)
        published_user_groups(keys, users, layer_position, mask, partial.grid.cells, bits, groups)
        n_groups = len(chosen) << bits
        distinct = distinct_users_per_group(
            groups, users, n_groups, affordable_chunks(n_groups + 1, chunks)
        )
        total += distinct.reshape(len(chosen), 1 << bits).sum(axis=1)
    return total


def affordable_chunks(n_keys: int, chunks: int | None) -> int:
    """Chunks for a counting sort over ``n_keys``, within :data:`CHUNK_HISTOGRAM_BUDGET`."""
    affordable = max(1, CHUNK_HISTOGRAM_BUDGET // (8 * max(n_keys, 1)))
    return max(1, min(chunks or default_chunks(), affordable))


def _restore(result: tuple, occupied: np.ndarray | None) -> tuple:
    out_keys, out_users, out_taps = result
    return (out_keys if occupied is None else occupied[out_keys]), out_users, out_taps


def count(
    keys: np.ndarray, users: np.ndarray, n_keys: int, chunks: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`count_contributions` (one row per tap), with memory bounded by the keys that
    occur; the result is the same for any ``chunks``, which is reduced when the per-chunk
    histograms would exceed :data:`CHUNK_HISTOGRAM_BUDGET`."""
    keys, n_keys, occupied = _dense_keys(keys, n_keys)
    chunks = affordable_chunks(n_keys, chunks)
    return _restore(count_contributions(keys, users, n_keys, chunks), occupied)


def tap_totals(
    keys: np.ndarray,
    users: np.ndarray,
    n_keys: int,
    cap: int,
    chunks: int | None,
    users_out: np.ndarray,
    taps_out: np.ndarray,
) -> None:
    """:func:`~heatengine.kernels.tap_cell_totals` (added to ``users_out`` and
    ``taps_out``), with memory bounded by the keys that occur, as :func:`count`."""
    dense, n_dense, occupied = _dense_keys(keys, n_keys)
    chunks = affordable_chunks(n_dense, chunks)
    if occupied is None:
        tap_cell_totals(keys, users, n_keys, cap, chunks, users_out, taps_out)
        return
    part_users, part_taps = np.zeros(n_dense, np.int64), np.zeros(n_dense, np.int64)
    tap_cell_totals(dense, users, n_dense, cap, chunks, part_users, part_taps)
    users_out[occupied] += part_users
    taps_out[occupied] += part_taps


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
    layer : int32 or int64 array
    x, y : float64 arrays in [0, 1]
    users : uint64 array of pseudonymous tokens
    chunks
        Parallel chunks (default: Numba's thread count); the result is the same for all.
    """
    keys = cell_keys(grid, layers.height, layer, x, y, users)
    return Partial(grid, layers, *count(keys, users, layers.height * grid.cells, chunks))


def cell_keys(
    grid: GridSpec,
    n_layers: int,
    layer: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    users: np.ndarray,
) -> np.ndarray:
    """Each tap's key, ``layer * grid.cells + cell``, after checking the arrays agree in
    length, ``layer`` lies in ``[0, n_layers)`` and ``x``, ``y`` in ``[0, 1]``."""
    if not (layer.size == x.size == y.size == users.size):
        msg = "layer, x, y and users must have the same length"
        raise ValueError(msg)
    if layer.size and (layer.min() < 0 or layer.max() >= n_layers):
        msg = f"layer indices must lie in [0, {n_layers})"
        raise ValueError(msg)
    # min and max make no temporaries, and NaN fails both comparisons.
    if x.size and not (x.min() >= 0 and x.max() <= 1 and y.min() >= 0 and y.max() <= 1):
        msg = "x and y must be normalised to [0, 1] (NaN is not allowed)"
        raise ValueError(msg)
    keys = np.empty(x.size, np.int64)
    layer_cell_keys(layer, x, y, grid.columns, grid.rows, keys)
    return keys


def merge_partials(parts: Sequence[Partial], chunks: int | None = None) -> Partial:
    """Merge partials of the same grid into one, exactly.

    Layers are united and re-sorted; each partial's keys move to the united layer
    numbering (an increasing map, so every list stays sorted), and the sorted lists are
    merged pairwise in linear time, counts of the same (layer, cell, user) summed.
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
    lists = []
    for part in parts:
        mapping = (
            part.layers.with_row_index("own")
            .join(numbered, on=columns, how="left", nulls_equal=True)
            .sort("own")["united"]
            .to_numpy()
            .astype(np.int64)
        )
        keys = part.keys
        if not np.array_equal(mapping, np.arange(mapping.size)):  # else keys stay as they are
            keys = keys.copy()
            renumber_key_layers(keys, mapping, grid.cells)
        lists.append((keys, part.users, part.taps))
    n_parts = 4 * (chunks or default_chunks())
    while len(lists) > 1:  # pairwise rounds: each entry is copied log2(len(parts)) times
        merged = [
            merge_sorted_contributions(*lists[i], *lists[i + 1], n_parts)
            for i in range(0, len(lists) - 1, 2)
        ]
        lists = merged + ([lists[-1]] if len(lists) % 2 else [])
    return Partial(grid, united, *lists[0])
