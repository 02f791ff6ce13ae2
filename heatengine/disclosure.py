"""Dominance rules and secondary suppression: protection beyond k distinct users.

The k rule (:mod:`heatengine.privacy`) hides cells with few users, but a cell with many
users can still give one user away when that user made nearly all of its taps. Two
classic magnitude rules catch that, both on capped contributions ``min(taps, cap)``:

* the **p% rule**: a cell is unsafe when the other users' taps, once the two largest
  contributors are taken out, are less than ``p`` % of the largest contribution. The
  second-largest contributor could then estimate the largest one to within ``p`` %.
* the **(n, k) rule**: a cell is unsafe when its ``n`` largest contributions make up more
  than ``k_percent`` % of it.

Hiding cells is not enough when true (additive) layer totals are published: the total
minus the published cells gives the hidden cells' sum, one hidden cell's exact value
when only one is hidden. :func:`secondary_suppression` hides further cells until the
hidden remainder of every layer spans at least two cells and at least ``k`` distinct
users, or withholds the layer.

Putting the pieces together (``users`` and ``taps`` from
:meth:`heatengine.partial.Partial.cell_totals`, ``shape == (layers, cells)``)::

    p_bad, nk_bad = dominance_unsafe(keys, taps_list, cap, users.size, rule)
    below_k = (users > 0) & (users < k)
    primary = below_k | ((users > 0) & (p_bad | nk_bad).reshape(shape))
    added, layer_hidden = secondary_suppression(keys, user_tokens, primary, measure, k)
    stats = DisclosureStats.from_masks(users > 0, below_k, p_bad, nk_bad, added)

Like the k rule, all of this runs on fully merged counts, before smoothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numba import njit, prange

from heatengine.config import NJIT, NJIT_PARALLEL, DominanceRule, _require_int, _require_percent
from heatengine.kernels import _count_distinct

#: Largest ``n`` an (n, k) rule may name; real rules use 1 to 3, and the kernel keeps
#: ``n`` values per non-empty cell.
_INT64_MAX = np.iinfo(np.int64).max


# --------------------------------------------------------------------------- kernels


@njit(**NJIT)
def largest_contributions(keys: np.ndarray, taps: np.ndarray, cap: int, out: np.ndarray) -> None:
    """The ``n`` largest capped contributions per key, in descending order.

    ``out`` (int64, shape ``(n_keys, n)``, zeroed by the caller) receives for each key
    the ``n`` largest values of ``min(taps, cap)`` over its entries, largest first;
    keys with fewer than ``n`` entries keep zeros at the end. Entries need not be
    sorted. Insertion into a short sorted row: ``O(entries * n)``.
    """
    n = out.shape[1]
    for i in range(keys.size):
        row = out[keys[i]]
        value = min(taps[i], cap)
        if n == 0 or value <= row[n - 1]:
            continue
        j = n - 1
        while j > 0 and row[j - 1] < value:
            row[j] = row[j - 1]
            j -= 1
        row[j] = value


@njit(**NJIT)
def _distinct_users(users, entry_start, chosen, count):
    """Distinct users over the entries of cells ``chosen[:count]`` (occupied indices)."""
    size = 0
    for j in range(count):
        size += entry_start[chosen[j] + 1] - entry_start[chosen[j]]
    pooled = np.empty(size, users.dtype)
    at = 0
    for j in range(count):
        for e in range(entry_start[chosen[j]], entry_start[chosen[j] + 1]):
            pooled[at] = users[e]
            at += 1
    return _count_distinct(pooled)


@njit(**NJIT_PARALLEL)
def _secondary_cells(layer_start, entry_start, users, values, hidden, k, added, layer_hidden):
    """Greedy secondary suppression over occupied (non-empty) cells, one layer per task.

    Occupied cells ``layer_start[l]:layer_start[l + 1]`` belong to layer ``l`` in cell
    order; cell ``c`` owns entries ``entry_start[c]:entry_start[c + 1]`` of ``users``.
    While a layer's hidden set has fewer than two cells or fewer than ``k`` distinct
    users, the published cell with the smallest value (lowest index on ties) joins it;
    ``added`` marks those cells. A layer with nothing left to add is marked in
    ``layer_hidden``. Every task writes only its own layer's slots.
    """
    for layer in prange(layer_start.size - 1):
        lo, hi = layer_start[layer], layer_start[layer + 1]
        chosen = np.empty(hi - lo, np.int64)
        count = 0
        for c in range(lo, hi):
            if hidden[c]:
                chosen[count] = c
                count += 1
        if count == 0:
            continue
        while count < 2 or _distinct_users(users, entry_start, chosen, count) < k:
            best = -1
            for c in range(lo, hi):
                if not hidden[c] and not added[c] and (best < 0 or values[c] < values[best]):
                    best = c
            if best < 0:
                layer_hidden[layer] = True
                break
            added[best] = True
            chosen[count] = best
            count += 1


# ------------------------------------------------------------------------ validation


def _integer_array(name: str, values: object) -> np.ndarray:
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.integer):
        msg = f"{name} must hold integers, got dtype {array.dtype}"
        raise TypeError(msg)
    return array


def _same_shape(**arrays: np.ndarray) -> None:
    shapes = {name: array.shape for name, array in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        msg = f"arrays must have the same shape, got {listed}"
        raise ValueError(msg)


def _contribution_keys(keys: object, n_keys: int) -> np.ndarray:
    """Keys of a contribution list: 1-D int64, sorted, in ``[0, n_keys)``."""
    keys = _integer_array("keys", keys)
    if keys.ndim != 1:
        msg = f"keys must be one-dimensional, got shape {keys.shape}"
        raise ValueError(msg)
    keys = np.ascontiguousarray(keys, np.int64)
    if keys.size and (keys[0] < 0 or keys[-1] >= n_keys or np.any(keys[1:] < keys[:-1])):
        msg = (
            f"keys must be sorted and lie in [0, {n_keys}); "
            f"got {keys.size} keys from {keys.min()} to {keys.max()}"
        )
        raise ValueError(msg)
    return keys


def _occupied(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys of a sorted key array, and where each one's entries start (plus end)."""
    first = np.ones(keys.size, bool)
    first[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(first)
    return keys[starts], np.append(starts, keys.size).astype(np.int64, copy=False)


def _exact_sides(a: np.ndarray, percent: float, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``100 * a`` and ``percent * b`` in a form whose comparison is exact when possible.

    ``percent`` is a binary fraction ``num / den``; the sides are scaled to
    ``100 * den * a`` and ``num * b`` in int64 when neither can overflow (always for a
    whole ``percent`` or one such as 12.5 on realistic counts), else both are float64.
    """
    num, den = float(percent).as_integer_ratio()
    a_max = int(np.abs(a).max()) if a.size else 0
    b_max = int(np.abs(b).max()) if b.size else 0
    if 100 * den * max(a_max, 1) <= _INT64_MAX and num * max(b_max, 1) <= _INT64_MAX:
        return a.astype(np.int64, copy=False) * (100 * den), b.astype(np.int64, copy=False) * num
    return a.astype(np.float64) * 100.0, b.astype(np.float64) * float(percent)


# ------------------------------------------------------------------------ rules


def p_percent_unsafe(total: np.ndarray, x1: np.ndarray, x2: np.ndarray, p: float) -> np.ndarray:
    """Cells that fail the p% rule: ``total - x1 - x2 < (p / 100) * x1``.

    Parameters
    ----------
    total : integer array
        Capped taps per cell.
    x1, x2 : integer arrays, same shape
        The largest and second-largest capped contribution of one user in each cell
        (zero when the cell has fewer users).
    p : float
        The rule's percentage, 0 to 100. The test is ``100 * (total - x1 - x2) <
        p * x1``, done in int64 and so exactly whenever ``p`` is whole or a short binary
        fraction such as 12.5 (and the counts are below about ``2**56``); any other ``p``
        (for example 10.1) is compared in float64.

    Returns
    -------
    bool array, the shape of ``total``
        True for unsafe cells. Empty cells (``total == 0``) are never unsafe, and equality
        is safe. A cell with one or two users is unsafe whenever ``p > 0``.

    Examples
    --------
    >>> total = np.array([411, 60, 0, 115])
    >>> x1 = np.array([400, 5, 0, 100])
    >>> x2 = np.array([1, 5, 0, 5])
    >>> p_percent_unsafe(total, x1, x2, 10).tolist()
    [True, False, False, False]
    """
    total, x1, x2 = (
        _integer_array(name, v).astype(np.int64, copy=False)
        for name, v in (("total", total), ("x1", x1), ("x2", x2))
    )
    _same_shape(total=total, x1=x1, x2=x2)
    p = _require_percent("p", p, allow_zero=True)
    rest, scaled = _exact_sides(total - x1 - x2, p, x1)
    return (rest < scaled) & (total > 0)


def nk_dominance_unsafe(total: np.ndarray, top_n: np.ndarray, k_percent: float) -> np.ndarray:
    """Cells that fail the (n, k) rule: ``top_n > (k_percent / 100) * total``.

    Parameters
    ----------
    total : integer array
        Capped taps per cell.
    top_n : integer array, same shape
        Sum of the ``n`` largest capped per-user contributions in each cell.
    k_percent : float
        Above 0 and at most 100; exact in the same cases as :func:`p_percent_unsafe`.

    Returns
    -------
    bool array, the shape of ``total``
        True for unsafe cells; empty cells are never unsafe, equality is safe.

    Examples
    --------
    >>> total = np.array([100, 100, 100, 0])
    >>> top_2 = np.array([90, 85, 30, 0])
    >>> nk_dominance_unsafe(total, top_2, 85).tolist()
    [True, False, False, False]
    """
    total = _integer_array("total", total).astype(np.int64, copy=False)
    top_n = _integer_array("top_n", top_n).astype(np.int64, copy=False)
    _same_shape(total=total, top_n=top_n)
    k_percent = _require_percent("k_percent", k_percent, allow_zero=False)
    top, scaled = _exact_sides(top_n, k_percent, total)
    return (top > scaled) & (total > 0)


def dominance_possible_from_k(rule: DominanceRule, cap: int, k: int) -> bool:
    """Whether ``rule`` can hide a cell that has ``k`` or more users.

    Every user in a cell has at least one tap and at most ``cap``. The p% rule needs
    ``T - x1 - x2 < p/100 * x1``, and the other users add at least one tap each, so it
    only fires with fewer than ``2 + p/100 * cap`` users. The (n, k) rule needs the top
    ``n`` (at most ``n * cap``) above ``k_percent`` % of ``T``, with the other users
    adding at least one each, so it only fires with fewer than
    ``n + n * cap * (100 / k_percent - 1)`` users. When both bounds are at most ``k``,
    the k rule already hides every cell the rule could, and it need not be evaluated.

    Examples
    --------
    >>> dominance_possible_from_k(DominanceRule(p=10), cap=5, k=10)
    False
    >>> dominance_possible_from_k(DominanceRule(p=10), cap=1000, k=10)
    True
    """
    bounds = []
    if rule.p is not None:
        bounds.append(2 + rule.p / 100 * cap)
    if rule.n is not None and rule.k_percent is not None:
        bounds.append(rule.n + rule.n * cap * (100 / rule.k_percent - 1))
    return any(bound > k for bound in bounds)


def dominance_unsafe(
    keys: np.ndarray, taps: np.ndarray, cap: int, n_keys: int, rule: DominanceRule
) -> tuple[np.ndarray, np.ndarray]:
    """Keys that fail the p% rule and the (n, k) rule, from a contribution list.

    Parameters
    ----------
    keys : int64 array, sorted, in ``[0, n_keys)``
        Keys of the contribution list (see :mod:`heatengine.kernels`).
    taps : integer array, same length
        Each entry's uncapped taps.
    cap : int
        The per-user, per-cell tap cap (``max_taps_per_user_cell``).
    n_keys : int
        Number of possible keys, layers times cells.
    rule : DominanceRule
        The rules to apply.

    Returns
    -------
    p_unsafe, nk_unsafe : bool arrays of length ``n_keys``
        Keys failing each rule; all False for a disabled rule and for empty keys.
        Reshape to ``(layers, cells)`` as needed.

    Notes
    -----
    Memory follows the non-empty keys: the kernel keeps ``rule.largest_needed`` values
    for each distinct key in ``keys``, not for every possible key.

    Examples
    --------
    >>> keys = np.array([0] * 12 + [1] * 12)
    >>> taps = np.array([400] + [1] * 11 + [5] * 12)
    >>> p_bad, nk_bad = dominance_unsafe(keys, taps, 1000, 3, DominanceRule(p=10))
    >>> p_bad.tolist(), nk_bad.tolist()
    ([True, False, False], [False, False, False])
    """
    if not isinstance(rule, DominanceRule):
        msg = f"rule must be a DominanceRule, got {type(rule).__name__}"
        raise TypeError(msg)
    _require_int("n_keys", n_keys, 0)
    _require_int("cap", cap, 1)
    keys = _contribution_keys(keys, n_keys)
    taps = np.ascontiguousarray(_integer_array("taps", taps), np.int64)
    if taps.shape != keys.shape:
        msg = f"keys and taps must have the same length, got {keys.size} and {taps.size}"
        raise ValueError(msg)
    p_unsafe = np.zeros(n_keys, bool)
    nk_unsafe = np.zeros(n_keys, bool)
    if rule.largest_needed == 0 or keys.size == 0:
        return p_unsafe, nk_unsafe
    occupied, entry_start = _occupied(keys)
    dense = np.repeat(np.arange(occupied.size, dtype=np.int64), np.diff(entry_start))
    largest = np.zeros((occupied.size, rule.largest_needed), np.int64)
    largest_contributions(dense, taps, cap, largest)
    total = np.add.reduceat(np.minimum(taps, cap), entry_start[:-1])
    if rule.p is not None:
        p_unsafe[occupied] = p_percent_unsafe(total, largest[:, 0], largest[:, 1], rule.p)
    if rule.n is not None:
        top_n = largest[:, : rule.n].sum(axis=1)
        nk_unsafe[occupied] = nk_dominance_unsafe(total, top_n, rule.k_percent)
    return p_unsafe, nk_unsafe


# ----------------------------------------------------------- secondary suppression


def secondary_suppression(
    keys: np.ndarray, users: np.ndarray, hidden: np.ndarray, values: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hide more cells so that true layer totals do not give hidden cells away.

    When a layer's true total is published next to its published cells, the difference
    is the sum of its hidden cells. For every layer with a hidden non-empty cell, this
    greedily hides the published non-empty cell with the smallest value (lowest cell
    index on ties) until the hidden set has at least two cells and its cells together
    hold at least ``k`` distinct users, counted exactly on the union from the
    contribution list (a user in two hidden cells counts once).

    Parameters
    ----------
    keys : int64 array, sorted, in ``[0, layers * cells)``
        Keys of the contribution list, ``layer * cells + cell``.
    users : uint64 array, same length
        The list's user tokens, sorted within each key.
    hidden : bool array ``(layers, cells)``
        Cells hidden by primary suppression (k rule, dominance). Empty cells in it are
        ignored: they hide nothing.
    values : integer or float array ``(layers, cells)``
        What would be published per cell (users or capped taps); read only for
        published non-empty cells, to choose the smallest.
    k : int
        Distinct users the hidden remainder of a layer must reach.

    Returns
    -------
    added : bool array ``(layers, cells)``
        Non-empty cells to hide in addition to ``hidden``.
    layer_hidden : bool array ``(layers,)``
        Layers to withhold whole, total included. This happens when even hiding every
        non-empty cell leaves the hidden set short of two cells or ``k`` users: the hidden
        remainder is then the layer total itself, so publishing the total would publish
        the hidden cells' sum; the only safe choice is to publish nothing of the layer.
        All of such a layer's non-empty cells are in ``hidden | added``.

    Examples
    --------
    One hidden cell (3 users) in a layer of four; the smallest published cell joins it:

    >>> keys = np.repeat([0, 1, 2, 3], [3, 12, 10, 11])
    >>> users = np.concatenate([np.arange(n, dtype=np.uint64) for n in (3, 12, 10, 11)])
    >>> hidden = np.array([[True, False, False, False]])
    >>> values = np.array([[3, 12, 10, 11]])
    >>> added, layer_hidden = secondary_suppression(keys, users, hidden, values, k=5)
    >>> added.astype(int).tolist(), layer_hidden.tolist()
    ([[0, 0, 1, 0]], [False])
    """
    hidden = np.asarray(hidden)
    if hidden.dtype != np.bool_ or hidden.ndim != 2:
        msg = (
            f"hidden must be a boolean (layers, cells) array, "
            f"got dtype {hidden.dtype} and shape {hidden.shape}"
        )
        raise ValueError(msg)
    values = np.asarray(values)
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        msg = f"values must be integers or floats, got dtype {values.dtype}"
        raise TypeError(msg)
    _same_shape(hidden=hidden, values=values)
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
        msg = "values must be finite (no NaN or infinity)"
        raise ValueError(msg)
    _require_int("k", k, 1)
    layers, cells = hidden.shape
    keys = _contribution_keys(keys, layers * cells)
    users = np.asarray(users)
    if users.dtype != np.uint64 or users.shape != keys.shape:
        msg = (
            f"users must be a uint64 array as long as keys ({keys.size}), "
            f"got dtype {users.dtype} and shape {users.shape}"
        )
        raise ValueError(msg)
    occupied, entry_start = _occupied(keys)
    layer_start = np.searchsorted(occupied, np.arange(layers + 1, dtype=np.int64) * cells)
    occupied_added = np.zeros(occupied.size, bool)
    layer_hidden = np.zeros(layers, bool)
    _secondary_cells(
        layer_start.astype(np.int64, copy=False),
        entry_start,
        np.ascontiguousarray(users),
        np.ascontiguousarray(values.reshape(-1)[occupied]),
        np.ascontiguousarray(hidden.reshape(-1)[occupied]),
        k,
        occupied_added,
        layer_hidden,
    )
    added = np.zeros(layers * cells, bool)
    added[occupied[occupied_added]] = True
    return added.reshape(layers, cells), layer_hidden


# ------------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class DisclosureStats:
    """Non-empty cells suppressed, each counted under exactly one rule.

    Precedence is k > p% > (n, k) > secondary: a cell below ``k`` users counts under
    ``cells_suppressed_k`` whatever else it fails; a cell failing both dominance rules
    counts under ``cells_suppressed_p_percent``; ``cells_suppressed_secondary`` holds
    only cells no primary rule hid. Counts of cells reveal no cell's value and may be
    published.

    Examples
    --------
    >>> nonempty = np.array([True, True, True, True, False])
    >>> below_k = np.array([True, False, False, False, False])
    >>> p_bad = np.array([True, True, False, False, True])
    >>> nk_bad = np.array([False, True, True, False, False])
    >>> added = np.array([False, False, False, True, False])
    >>> stats = DisclosureStats.from_masks(nonempty, below_k, p_bad, nk_bad, added)
    >>> stats.cells_suppressed_k, stats.cells_suppressed_p_percent
    (1, 1)
    >>> stats.cells_suppressed_nk, stats.cells_suppressed_secondary
    (1, 1)
    """

    cells_suppressed_k: int
    cells_suppressed_p_percent: int
    cells_suppressed_nk: int
    cells_suppressed_secondary: int

    @classmethod
    def from_masks(
        cls,
        nonempty: np.ndarray,
        below_k: np.ndarray,
        p_unsafe: np.ndarray,
        nk_unsafe: np.ndarray,
        secondary: np.ndarray,
    ) -> DisclosureStats:
        """Count cells from same-shaped boolean masks, applying the precedence.

        Every mask is restricted to ``nonempty``; the arrays may be ``(layers, cells)``
        or flat, as long as all have the same number of elements.
        """
        masks = {
            "nonempty": nonempty,
            "below_k": below_k,
            "p_unsafe": p_unsafe,
            "nk_unsafe": nk_unsafe,
            "secondary": secondary,
        }
        flat = {}
        for name, mask in masks.items():
            array = np.asarray(mask)
            if array.dtype != np.bool_:
                msg = f"{name} must be a boolean mask, got dtype {array.dtype}"
                raise TypeError(msg)
            flat[name] = array.reshape(-1)
        _same_shape(**flat)
        left = flat["nonempty"].copy()
        counts = []
        for name in ("below_k", "p_unsafe", "nk_unsafe", "secondary"):
            caught = left & flat[name]
            counts.append(int(caught.sum()))
            left &= ~caught
        return cls(*counts)

    def to_dict(self) -> dict[str, int]:
        """Plain values."""
        return asdict(self)
