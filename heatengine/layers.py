"""Per-row layer numbers, with layer names cleaned once per distinct value.

A screen column holds millions of rows but a few hundred distinct names, which may be
routes or URLs (cleaned by :mod:`heatengine.routes`, so ids and e-mails in paths become
placeholders and one screen does not become one layer per user). Rows are
numbered by a pair of 64-bit hashes, a slice at a time (:func:`heatengine.kernels.number_pairs`);
only the distinct values are cleaned (blank screens, segment text) and sorted, and the
numbers are then mapped to positions in the sorted layer table.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

from heatengine.config import AggregateConfig
from heatengine.errors import HeatengineError
from heatengine.kernels import count_values, new_pair_numbering, number_pairs, remap_in_place
from heatengine.routes import clean_routes
from heatengine.schema import clean_layer_values, clean_screen_names

#: Seeds of the two in-run hashes that group equal values (not secrets, never stored).
HASH_SEEDS = (0x5EED, 0xC0FFEE)
#: Above this many possible layer combinations per row, occupied ones are found by
#: sorting rather than by a table indexed by combination.
SPARSE_COMBINATIONS_PER_ROW = 4
#: Rows hashed at once when numbering values: bounds the hashes' memory (32 MB a slice,
#: two slices at a time: the next is hashed while this one is numbered).
HASH_SLICE_ROWS = 2**21
_INT32_MAX = 2**31 - 1


def distinct_codes(
    values: pl.Series, slice_rows: int = HASH_SLICE_ROWS
) -> tuple[np.ndarray, pl.Series]:
    """Number equal values (nulls included) in order of first appearance.

    Values are hashed ``slice_rows`` at a time, which bounds the memory the hashes take;
    the numbers do not depend on it. The next slice is hashed in a thread while this one
    is numbered (Polars hashes on one core, and the numbering kernel releases the GIL).

    Returns
    -------
    codes : int32 array (int64 past 2**31 rows), one per row
    distinct : the first row of each number, in number order

    Examples
    --------
    >>> codes, distinct = distinct_codes(pl.Series("s", ["b", "a", "b", None]))
    >>> codes.tolist(), distinct.to_list()
    ([0, 1, 0, 2], ['b', 'a', None])
    """
    n = values.len()
    codes = np.empty(n, np.int32 if n <= _INT32_MAX else np.int64)
    state = new_pair_numbering()

    def hashes(start: int) -> tuple[np.ndarray, np.ndarray]:
        part = values.slice(start, slice_rows)
        first, second = (part.hash(seed=seed).to_numpy() for seed in HASH_SEEDS)
        return first, second

    starts = range(0, n, slice_rows)
    with ThreadPoolExecutor(max_workers=1) as hasher:
        following = hasher.submit(hashes, 0) if len(starts) > 1 else None
        for start in starts:
            first, second = hashes(start) if following is None else following.result()
            later = start + slice_rows
            following = hasher.submit(hashes, later) if later < n else None
            state = number_pairs(first, second, codes[start : start + first.size], start, *state)
    *_, rows, n_codes = state
    return codes, values.gather(rows[:n_codes])


@dataclass(frozen=True)
class LayerCodes:
    """Layer number per row and the layer table it indexes.

    Attributes
    ----------
    layers
        Sorted distinct layer rows (``screen`` and segments, cleaned text).
    layer
        int32 per row: position in ``layers``, or -1 where the screen is missing.
    screens_renamed
        In-run hashes of the distinct screen names that route cleaning changed.
    """

    layers: pl.DataFrame
    layer: np.ndarray
    screens_renamed: frozenset[int] = frozenset()


def used_layers(layers: pl.DataFrame, layer: np.ndarray) -> tuple[pl.DataFrame, np.ndarray]:
    """Only the layers some row uses, and ``layer`` (all >= 0) renumbered to match
    (``layer`` itself, not a copy, when every layer is used).

    Layers seen only in excluded or quarantined rows leave no trace in a partial.
    """
    used = count_values(layer, layers.height) > 0
    if used.all():  # the usual case: nothing to renumber
        return layers, layer
    renumber = (np.cumsum(used) - 1).astype(np.int32)
    return layers.filter(pl.Series(used)), renumber[layer]


def code_layers(df: pl.DataFrame, config: AggregateConfig) -> LayerCodes:
    """Number every row's layer (``config.layer_columns``) against the sorted layer table.

    Raises
    ------
    SchemaError
        A layer column has a type that cannot name a layer.
    """
    ranks, names = [], []
    renamed: frozenset[int] = frozenset()
    for column in config.layer_columns:
        values = df[column]
        if column != "screen" and values.dtype.is_float():  # hashing equates 0.0 and -0.0
            values = values.cast(pl.String)
        codes, distinct = distinct_codes(values)
        cleaned = clean_layer_values(distinct, screen=column == "screen")
        if column == "screen":  # routes lose ids, e-mails and queries (heatengine.routes)
            routes = clean_screen_names(clean_routes(cleaned))
            changed = (cleaned != routes).fill_null(False)
            renamed = frozenset(distinct.filter(changed).hash(seed=HASH_SEEDS[0]).to_list())
            cleaned = routes
        sorted_names = cleaned.drop_nulls().unique().sort()
        position = (
            cleaned.to_frame()
            .join(
                sorted_names.to_frame().with_row_index("rank"),
                on=column,
                how="left",
                maintain_order="left",
            )
            .get_column("rank")
            .fill_null(-1)
            .cast(pl.Int32)
            .to_numpy()
        )
        remap_in_place(codes, position)  # each row's rank in the sorted layer values
        ranks.append(codes)
        names.append(sorted_names)
    layers, layer = _combine(ranks, names) if len(ranks) > 1 else (names[0].to_frame(), ranks[0])
    return LayerCodes(layers, layer, renamed)


def _combine(ranks: list[np.ndarray], names: list[pl.Series]) -> tuple[pl.DataFrame, np.ndarray]:
    """Layers of several columns: mixed-radix combinations, in lexicographic order."""
    sizes = [max(len(n), 1) for n in names]
    missing = ranks[0] < 0
    # int64: the ranks are int32, and the combinations of several columns can pass 2**31.
    combined = np.where(missing, 0, ranks[0]).astype(np.int64)
    for rank, size in zip(ranks[1:], sizes[1:], strict=True):
        combined = combined * size + rank
    possible = math.prod(sizes)
    if possible >= 2**62:
        msg = f"too many combinations of layer values to number: {possible:,}"
        raise HeatengineError(msg)
    present = combined[~missing]
    if possible <= SPARSE_COMBINATIONS_PER_ROW * max(present.size, 1):
        occupied = np.flatnonzero(np.bincount(present, minlength=possible))
    else:
        occupied = np.unique(present)
    layer = np.searchsorted(occupied, combined)
    layer[missing] = -1
    columns, rest = {}, occupied
    for name, size in zip(reversed(names), reversed(sizes), strict=True):
        rest, digit = np.divmod(rest, size)
        columns[name.name] = name.gather(digit)
    ordered = {name.name: columns[name.name] for name in names}
    return pl.DataFrame(ordered), layer.astype(np.int32)
