"""Numba kernels: plain arrays in, arrays out.

No Polars, no I/O, no configuration objects and no validation here: callers validate
once at the public edge and hand over contiguous arrays of the documented dtypes.

The central structure is a *contribution list*: parallel arrays ``keys`` (int64, a layer
and cell packed as ``layer * cells + cell``), ``users`` (uint64 pseudonymous tokens) and
``taps`` (int64), sorted by ``(key, user)`` with each pair once. It is exact, and two
lists merge in linear time (:func:`merge_sorted_contributions`), so the same function
merges files, days and workers.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from heatengine.config import NJIT, NJIT_PARALLEL

#: 2**64 over the golden ratio: multiplying by it spreads small and sequential tokens
#: over the top bits (Fibonacci hashing); splitmix64 adds it before mixing.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(**NJIT)
def splitmix64_mix(z: np.uint64) -> np.uint64:
    """splitmix64's mixing steps (without its increment): a 64-bit bijection with good
    avalanche that maps 0 to 0."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(**NJIT)
def chunk_bounds(n: int, n_chunks: int) -> np.ndarray:
    """Start offsets of ``n_chunks`` near-equal contiguous chunks of ``range(n)``, plus ``n``."""
    bounds = np.empty(n_chunks + 1, np.int64)
    for c in range(n_chunks + 1):
        bounds[c] = (n * c) // n_chunks
    return bounds


@njit(**NJIT_PARALLEL)
def count_values(values: np.ndarray, size: int) -> np.ndarray:
    """How often each of ``0 .. size - 1`` occurs in ``values``.

    ``np.bincount`` in parallel, without its copy of small integer codes to 8-byte
    integers. Raises ``ValueError`` for a value outside the range, rather than count
    into other memory.
    """
    # Chunks of at least 2**16 values, each with at least 8 values per count it keeps:
    # with many possible values (many layers) the per-chunk counts would cost more time
    # and memory than they save, and one chunk counts alone.
    n_chunks = max(1, min(16, values.size >> 16, values.size // (8 * max(size, 1))))
    if n_chunks == 1:
        total = np.zeros(size, np.int64)
        for v in values:
            if v < 0 or v >= size:
                raise ValueError("count_values: a value lies outside [0, size)")
            total[v] += 1
        return total
    bounds = chunk_bounds(values.size, n_chunks)
    counts = np.zeros((n_chunks, size), np.int64)
    outside = np.zeros(n_chunks, np.bool_)
    for c in prange(n_chunks):
        for i in range(bounds[c], bounds[c + 1]):
            v = values[i]
            if v < 0 or v >= size:
                outside[c] = True
                break
            counts[c, v] += 1
    if outside.any():
        raise ValueError("count_values: a value lies outside [0, size)")
    total = counts[0].copy()
    for c in range(1, n_chunks):
        total += counts[c]
    return total


@njit(**NJIT_PARALLEL)
def remap_in_place(values: np.ndarray, mapping: np.ndarray) -> None:
    """``values[i] = mapping[values[i]]`` for every ``i`` (all within ``mapping``).

    ``mapping[values]`` without numpy's new array: eight times faster on 10M row
    numbers, whose pages need not be faulted in again.
    """
    for i in prange(values.size):
        values[i] = mapping[values[i]]


@njit(**NJIT_PARALLEL)
def layer_cell_keys(
    layer: np.ndarray, x: np.ndarray, y: np.ndarray, columns: int, rows: int, out: np.ndarray
) -> None:
    """Pack each tap's layer and grid cell into one key.

    ``x`` and ``y`` are normalised to [0, 1]; the cell is ``floor(x * columns)`` clamped
    to the last column, so ``x == 1.0`` belongs to the right-most cell (likewise rows,
    with row 0 at the top). ``key = layer * rows * columns + row * columns + column``.
    """
    cells = rows * columns
    for i in prange(x.size):
        cx = min(np.int64(x[i] * columns), columns - 1)
        cy = min(np.int64(y[i] * rows), rows - 1)
        out[i] = layer[i] * cells + cy * columns + cx


@njit(**NJIT)
def _chunk_positions(counts):
    """In place, per-chunk counts (chunks x groups) become each chunk's first position in
    each group, for a scatter that keeps groups in order and chunks in order within a
    group. Returns where each group starts, plus the total."""
    n_chunks, n_groups = counts.shape
    start = np.empty(n_groups + 1, np.int64)
    total = 0
    for g in range(n_groups):
        start[g] = total
        for c in range(n_chunks):
            rows = counts[c, g]
            counts[c, g] = total
            total += rows
    start[n_groups] = total
    return start


@njit(**NJIT_PARALLEL)
def _group_by_key(keys, values, n_keys, n_chunks):
    """Counting sort: ``values`` grouped by key, and where each key's group starts.

    Each chunk counts its own keys; offsets give every (chunk, key) pair a private slot
    range, so the scatter that follows is race-free and the grouping does not depend on
    ``n_chunks`` beyond the order of values inside a key, which the callers sort away.
    Values are scattered as the keys are read a second time: no array of positions.
    """
    n = keys.size
    bounds = chunk_bounds(n, n_chunks)
    counts = np.zeros((n_chunks, n_keys), np.int64)
    for c in prange(n_chunks):
        for i in range(bounds[c], bounds[c + 1]):
            counts[c, keys[i]] += 1
    key_start = _chunk_positions(counts)
    grouped = np.empty(n, values.dtype)
    for c in prange(n_chunks):
        position = counts[c]
        for i in range(bounds[c], bounds[c + 1]):
            k = keys[i]
            grouped[position[k]] = values[i]
            position[k] += 1
    return key_start, grouped


@njit(**NJIT)
def _segment_starts(distinct):
    """Exclusive prefix sum: where each key's output entries begin, plus the total."""
    out_start = np.empty(distinct.size + 1, np.int64)
    out_start[0] = 0
    for k in range(distinct.size):
        out_start[k + 1] = out_start[k] + distinct[k]
    return out_start


@njit(**NJIT_PARALLEL)
def count_contributions(
    keys: np.ndarray, users: np.ndarray, n_keys: int, n_chunks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Taps per distinct ``(key, user)`` pair, one input row per tap.

    Only users move, and each key's users are sorted in place.

    Parameters
    ----------
    keys : int64 array in ``[0, n_keys)``
    users : uint64 array, pseudonymous user tokens
    n_keys : number of possible keys
    n_chunks : parallel chunks; the output is identical for every value

    Returns
    -------
    keys, users, taps
        One entry per distinct pair, sorted by key and then by user.
    """
    key_start, grouped = _group_by_key(keys, users, n_keys, n_chunks)
    distinct = np.zeros(n_keys, np.int64)
    for k in prange(n_keys):
        start, stop = key_start[k], key_start[k + 1]
        grouped[start:stop].sort()
        count = 0
        for i in range(start, stop):
            if i == start or grouped[i] != grouped[i - 1]:
                count += 1
        distinct[k] = count
    out_start = _segment_starts(distinct)
    m = out_start[n_keys]
    out_keys = np.empty(m, np.int64)
    out_users = np.empty(m, users.dtype)
    out_taps = np.zeros(m, np.int64)
    for k in prange(n_keys):
        j = out_start[k] - 1
        for i in range(key_start[k], key_start[k + 1]):
            if i == key_start[k] or grouped[i] != grouped[i - 1]:
                j += 1
                out_keys[j] = k
                out_users[j] = grouped[i]
            out_taps[j] += 1
    return out_keys, out_users, out_taps


#: Groups up to this size are counted in a hash table of twice as many slots; larger
#: ones (a busy cell) are sorted in place.
HASHED_GROUP_MAX = 4096
#: Blocks of keys that tap_cell_totals counts in parallel, each with its own scratch table
#: (192 KiB): enough for any thread count this runs on.
SCRATCH_BLOCKS = 64


@njit(**NJIT)
def _hashed_distinct_capped(group, cap, slot_users, slot_taps, slot_stamp, stamp):
    """Distinct values of ``group`` and the sum over them of ``min(occurrences, cap)``.

    The scratch table's slots belong to this group where ``slot_stamp == stamp``, so it
    is never cleared between groups. Needs ``2 * group.size <= slot_users.size``.
    """
    bits = 1
    while (1 << bits) < 2 * group.size:
        bits += 1
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    distinct, capped = 0, 0
    for user in group:
        slot = np.int64((user * GOLDEN) >> shift)
        while slot_stamp[slot] == stamp and slot_users[slot] != user:
            slot = (slot + 1) & mask
        if slot_stamp[slot] != stamp:
            slot_stamp[slot], slot_users[slot], slot_taps[slot] = stamp, user, 0
            distinct += 1
        slot_taps[slot] += 1
        if slot_taps[slot] <= cap:
            capped += 1
    return distinct, capped


@njit(**NJIT)
def _sorted_distinct_capped(group, cap):
    """As :func:`_hashed_distinct_capped`, by sorting ``group`` in place."""
    group.sort()
    distinct, capped, run = 0, 0, 0
    for i in range(group.size):
        if i > 0 and group[i] != group[i - 1]:
            distinct += 1
            capped += min(run, cap)
            run = 0
        run += 1
    return distinct + 1, capped + min(run, cap)


@njit(**NJIT_PARALLEL)
def tap_cell_totals(
    keys: np.ndarray,
    users: np.ndarray,
    n_keys: int,
    cap: int,
    n_chunks: int,
    users_out: np.ndarray,
    taps_out: np.ndarray,
) -> None:
    """Distinct users and capped taps per key straight from one row per tap.

    The same figures as :func:`count_contributions` followed by :func:`cell_totals`,
    without writing the contribution list: each key's users are grouped, then counted
    in a small hash table (a busy key's are sorted instead: bounded scratch memory).
    ``users_out`` and ``taps_out`` (int64, length ``n_keys``) are *added to*, so
    disjoint sets of users accumulate.
    """
    key_start, grouped = _group_by_key(keys, users, n_keys, n_chunks)
    # Many blocks, whatever the chunks the counting sort could afford: busy keys cluster
    # in popular layers, and every thread should find work. Each block has its scratch.
    n_blocks = max(1, min(SCRATCH_BLOCKS, n_keys // 1024))
    blocks = chunk_bounds(n_keys, n_blocks)
    for b in prange(n_blocks):
        slot_users = np.empty(2 * HASHED_GROUP_MAX, np.uint64)
        slot_taps = np.empty(2 * HASHED_GROUP_MAX, np.int64)
        slot_stamp = np.full(2 * HASHED_GROUP_MAX, -1, np.int64)
        for k in range(blocks[b], blocks[b + 1]):
            group = grouped[key_start[k] : key_start[k + 1]]
            if group.size == 0:
                continue
            if group.size <= HASHED_GROUP_MAX:
                distinct, capped = _hashed_distinct_capped(
                    group, cap, slot_users, slot_taps, slot_stamp, k
                )
            else:
                distinct, capped = _sorted_distinct_capped(group, cap)
            users_out[k] += distinct
            taps_out[k] += capped


@njit(**NJIT)
def cell_totals(
    keys: np.ndarray, taps: np.ndarray, cap: int, users_out: np.ndarray, taps_out: np.ndarray
) -> None:
    """Distinct users and capped taps per key from a contribution list.

    ``users_out`` and ``taps_out`` (int64, length ``n_keys``, zeroed by the caller)
    receive, per key, the number of entries and the sum of ``min(taps, cap)``.
    """
    for i in range(keys.size):
        k = keys[i]
        users_out[k] += 1
        taps_out[k] += min(taps[i], cap)


@njit(**NJIT)
def _rehash(table_first, table_second, table_code, capacity):
    """Copy a full table into one of ``capacity`` slots (a power of two)."""
    first = np.zeros(capacity, np.uint64)
    second = np.zeros(capacity, np.uint64)
    code = np.full(capacity, -1, np.int64)
    mask = np.uint64(capacity - 1)
    for s in range(table_code.size):
        c = table_code[s]
        if c < 0:
            continue
        slot = np.int64(table_first[s] & mask)
        while code[slot] >= 0:
            slot = (slot + 1) & (capacity - 1)
        first[slot], second[slot], code[slot] = table_first[s], table_second[s], c
    return first, second, code


def new_pair_numbering() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """An empty numbering state for :func:`number_pairs`: hash table (first, second,
    code), first rows and count."""
    capacity = 1024
    return (
        np.zeros(capacity, np.uint64),
        np.zeros(capacity, np.uint64),
        np.full(capacity, -1, np.int64),
        np.empty(64, np.int64),
        0,
    )


@njit(**NJIT)
def number_pairs(
    first_hash: np.ndarray,
    second_hash: np.ndarray,
    codes: np.ndarray,
    offset: int,
    first: np.ndarray,
    second: np.ndarray,
    code: np.ndarray,
    rows: np.ndarray,
    n_codes: int,
):
    """Go on numbering distinct ``(first_hash, second_hash)`` pairs in order of first
    appearance, for rows ``offset, offset + 1, ...`` of a longer column.

    ``codes[i]`` receives the number of the pair at ``i``. The state (hash table
    ``first``, ``second``, ``code``; the first row of each number in ``rows[:n_codes]``)
    comes from :func:`new_pair_numbering` or the previous call, and the updated state is
    returned, so a column is numbered a slice at a time with the same result as at once.
    With two independent 64-bit hashes per value, two values share a number only when
    both hashes collide, which is negligible (about 2**-128 per pair of values).
    """
    capacity = code.size
    for i in range(first_hash.size):
        a, b = first_hash[i], second_hash[i]
        slot = np.int64(a & np.uint64(capacity - 1))
        while code[slot] >= 0 and (first[slot] != a or second[slot] != b):
            slot = (slot + 1) & (capacity - 1)
        if code[slot] >= 0:
            codes[i] = code[slot]
            continue
        first[slot], second[slot], code[slot] = a, b, n_codes
        if n_codes == rows.size:
            rows = np.concatenate((rows, np.empty(rows.size, np.int64)))
        rows[n_codes] = offset + i
        codes[i] = n_codes
        n_codes += 1
        if 2 * n_codes > capacity:  # keep the table at most half full
            capacity *= 2
            first, second, code = _rehash(first, second, code, capacity)
    return first, second, code, rows, n_codes


@njit(**NJIT_PARALLEL)
def published_user_groups(
    keys: np.ndarray,
    users: np.ndarray,
    layer_position: np.ndarray,
    published: np.ndarray,
    cells: int,
    bucket_bits: int,
    out: np.ndarray,
) -> None:
    """Group of each contribution for counting distinct users per published layer.

    ``out[i] = layer_position[layer] * 2**bucket_bits + bucket(user)`` where the entry's
    key is published and its layer kept (``layer_position >= 0``); otherwise the number
    of groups (one past the last), which :func:`distinct_users_per_group` skips. A user
    always lands in the same bucket of a layer, so distinct users per layer is the sum of
    distinct users over its buckets; the buckets only split each layer into small groups
    that sort in parallel.
    """
    skip = (layer_position.max() + 1) << bucket_bits
    shift = np.uint64(64 - bucket_bits)
    for i in prange(keys.size):
        k = keys[i]
        position = layer_position[k // cells]
        if published[k] and position >= 0:
            bucket = np.int64((users[i] * GOLDEN) >> shift) if bucket_bits else 0
            out[i] = (position << bucket_bits) + bucket
        else:
            out[i] = skip


@njit(**NJIT_PARALLEL)
def distinct_users_per_group(
    groups: np.ndarray, users: np.ndarray, n_groups: int, n_chunks: int
) -> np.ndarray:
    """Distinct ``users`` per group in ``[0, n_groups)``; entries of group ``n_groups`` are
    skipped."""
    key_start, grouped = _group_by_key(groups, users, n_groups + 1, n_chunks)
    distinct = np.zeros(n_groups, np.int64)
    for g in prange(n_groups):
        distinct[g] = _count_distinct(grouped[key_start[g] : key_start[g + 1]])
    return distinct


@njit(**NJIT)
def _count_distinct(values):
    """Distinct values of a small array, with an open-addressing set (no sort needed)."""
    bits = 1
    while (1 << bits) < 2 * values.size:
        bits += 1
    mask = (1 << bits) - 1
    table = np.empty(1 << bits, values.dtype)
    used = np.zeros(1 << bits, np.bool_)
    mixer = np.uint64(0xBF58476D1CE4E5B9)  # not the bucket hash: its top bits are shared
    count = 0
    for v in values:
        mixed = np.uint64(v) ^ (np.uint64(v) >> np.uint64(31))
        slot = np.int64((mixed * mixer) >> np.uint64(64 - bits))
        while used[slot] and table[slot] != v:
            slot = (slot + 1) & mask
        if not used[slot]:
            used[slot] = True
            table[slot] = v
            count += 1
    return count


@njit(**NJIT)
def _before(key_a, user_a, key_b, user_b):
    return key_a < key_b or (key_a == key_b and user_a < user_b)


@njit(**NJIT)
def _merge_range(ka, ua, ta, a0, a1, kb, ub, tb, b0, b1, out_k, out_u, out_t, start, write):
    """Merge two sorted contribution ranges; returns the entries produced.

    With ``write`` false only counts, so a first pass can size each range's output.
    """
    i, j, n = a0, b0, 0
    while i < a1 or j < b1:
        if j >= b1 or (i < a1 and _before(ka[i], ua[i], kb[j], ub[j])):
            k, u, t = ka[i], ua[i], ta[i]
            i += 1
        elif i >= a1 or _before(kb[j], ub[j], ka[i], ua[i]):
            k, u, t = kb[j], ub[j], tb[j]
            j += 1
        else:  # the same (key, user) in both: one entry, taps summed
            k, u, t = ka[i], ua[i], ta[i] + tb[j]
            i += 1
            j += 1
        if write:
            out_k[start + n], out_u[start + n], out_t[start + n] = k, u, t
        n += 1
    return n


@njit(**NJIT_PARALLEL)
def merge_sorted_contributions(
    ka: np.ndarray,
    ua: np.ndarray,
    ta: np.ndarray,
    kb: np.ndarray,
    ub: np.ndarray,
    tb: np.ndarray,
    n_parts: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge two contribution lists that are each sorted by ``(key, user)``.

    The contribution list of both sets of taps together, in linear time: no sort, no
    histogram. The key range is cut into ``n_parts`` pieces at keys of
    the longer list, so the pieces merge in parallel; the output does not depend on
    ``n_parts``.
    """
    if ka.size < kb.size:
        ka, ua, ta, kb, ub, tb = kb, ub, tb, ka, ua, ta
    cuts = np.empty(n_parts + 1, np.int64)
    for p in range(n_parts + 1):
        cuts[p] = ka[min(ka.size * p // n_parts, ka.size - 1)] if ka.size else 0
    a_at = np.searchsorted(ka, cuts)
    b_at = np.searchsorted(kb, cuts)
    a_at[0] = b_at[0] = 0
    a_at[n_parts], b_at[n_parts] = ka.size, kb.size
    sizes = np.zeros(n_parts, np.int64)
    out_k = np.empty(0, ka.dtype)
    out_u = np.empty(0, ua.dtype)
    out_t = np.empty(0, ta.dtype)
    for p in prange(n_parts):
        sizes[p] = _merge_range(
            ka, ua, ta, a_at[p], a_at[p + 1], kb, ub, tb, b_at[p], b_at[p + 1],
            out_k, out_u, out_t, 0, False,
        )  # fmt: skip
    starts = _segment_starts(sizes)
    total = starts[n_parts]
    out_k = np.empty(total, ka.dtype)
    out_u = np.empty(total, ua.dtype)
    out_t = np.empty(total, ta.dtype)
    for p in prange(n_parts):
        _merge_range(
            ka, ua, ta, a_at[p], a_at[p + 1], kb, ub, tb, b_at[p], b_at[p + 1],
            out_k, out_u, out_t, starts[p], True,
        )  # fmt: skip
    return out_k, out_u, out_t


@njit(**NJIT)
def user_bucket(user: np.uint64, bits: int) -> np.int64:
    """A user's bucket in ``[0, 2**bits)``: the top bits of the splitmix64 finaliser, so
    integer tokens given as small or sequential numbers still spread evenly."""
    return np.int64(splitmix64_mix(user) >> np.uint64(64 - bits))


@njit(**NJIT)
def split_by_user_bucket(
    keys: np.ndarray, users: np.ndarray, bits: int, out_keys: np.ndarray, out_users: np.ndarray
) -> np.ndarray:
    """Group taps by :func:`user_bucket`, stably: every user's taps land in one bucket.

    The reordered ``keys`` and ``users`` go to the front of ``out_keys`` and
    ``out_users`` (``out_keys`` may be a narrower integer type). Returns the start of
    each bucket's rows (``2**bits + 1`` offsets, the last being the number of rows).
    """
    n_buckets = 1 << bits
    starts = np.zeros(n_buckets + 1, np.int64)
    for i in range(users.size):
        starts[user_bucket(users[i], bits) + 1] += 1
    for b in range(n_buckets):
        starts[b + 1] += starts[b]
    position = starts[:-1].copy()
    for i in range(users.size):  # hashing twice is cheaper than storing the buckets
        b = user_bucket(users[i], bits)
        j = position[b]
        out_keys[j] = keys[i]
        out_users[j] = users[i]
        position[b] = j + 1
    return starts


@njit(**NJIT_PARALLEL)
def renumber_key_layers(keys: np.ndarray, layer_map: np.ndarray, cells: int) -> None:
    """In place: move each key's layer ``l`` to ``layer_map[l]``, keeping its cell."""
    for i in prange(keys.size):
        layer = keys[i] // cells
        keys[i] = layer_map[layer] * cells + (keys[i] - layer * cells)


#: Rows per part, on average, when :func:`distinct_flagged_pairs` splits its input.
#: Smaller parts keep each table (2 to 4 slots a row, 14 bytes a slot with int32 layers)
#: in cache, larger ones scatter the rows to fewer places: on 7.1M rows, 2**16 took
#: 89 ms, 2**14 102 ms and 2**17 95 ms.
PAIR_PART_ROWS = 2**16


@njit(**NJIT)
def _pair_hash(layer, person) -> np.uint64:
    return splitmix64_mix(np.uint64(person) ^ (np.uint64(layer) * GOLDEN))


@njit(**NJIT)
def _pair_part(layer, person, bits) -> np.uint64:
    """The part of a pair: the top ``bits`` bits of its hash (two shifts, so 0 bits is
    part 0 rather than a shift by 64)."""
    return (_pair_hash(layer, person) >> np.uint64(32)) >> (32 - bits)


@njit(**NJIT_PARALLEL)
def _scatter_by_pair(layer, person, flag, bits, n_chunks):
    """Rows grouped into ``2**bits`` parts by :func:`_pair_part`, in row order within a
    part; returns where each part starts (plus the row count) and the grouped rows."""
    n, n_parts = layer.size, 1 << bits
    bounds = chunk_bounds(n, n_chunks)
    # Each chunk counts its rows per part, so the scatter below is race-free; the hash
    # is computed again there rather than stored (8 bytes a row).
    counts = np.zeros((n_chunks, n_parts), np.int64)
    for c in prange(n_chunks):
        for i in range(bounds[c], bounds[c + 1]):
            counts[c, _pair_part(layer[i], person[i], bits)] += 1
    part_start = _chunk_positions(counts)
    part_layer = np.empty(n, layer.dtype)
    part_person = np.empty(n, np.uint64)
    part_flag = np.empty(n, np.bool_)
    for c in prange(n_chunks):
        position = counts[c]
        for i in range(bounds[c], bounds[c + 1]):
            p = _pair_part(layer[i], person[i], bits)
            j = position[p]
            part_layer[j], part_person[j], part_flag[j] = layer[i], person[i], flag[i]
            position[p] = j + 1
    return part_start, part_layer, part_person, part_flag


@njit(**NJIT)
def _distinct_in_place(layer, person, flag, begin, end) -> int:
    """Overwrite rows ``begin`` to ``end - 1`` with their distinct pairs, flags or-ed;
    return how many there are. The table has at least twice as many slots as rows."""
    slots = 16
    while slots < 2 * (end - begin):
        slots *= 2
    mask = np.uint64(slots - 1)
    used = np.zeros(slots, np.bool_)
    slot_layer = np.empty(slots, layer.dtype)
    slot_person = np.empty(slots, np.uint64)
    slot_flag = np.empty(slots, np.bool_)
    for j in range(begin, end):
        s = np.int64(_pair_hash(layer[j], person[j]) & mask)
        while used[s] and not (slot_layer[s] == layer[j] and slot_person[s] == person[j]):
            s = (s + 1) & (slots - 1)
        if used[s]:
            slot_flag[s] = slot_flag[s] or flag[j]
        else:
            used[s] = True
            slot_layer[s], slot_person[s], slot_flag[s] = layer[j], person[j], flag[j]
    at = begin
    for s in range(slots):
        if used[s]:
            layer[at], person[at], flag[at] = slot_layer[s], slot_person[s], slot_flag[s]
            at += 1
    return at - begin


@njit(**NJIT_PARALLEL)
def distinct_flagged_pairs(
    layer: np.ndarray, person: np.ndarray, flag: np.ndarray, n_chunks: int, part_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct ``(layer, person)`` pairs, each flagged when any of its rows is.

    Rows are split by a hash of the pair into parts of about ``part_rows`` rows
    (:data:`PAIR_PART_ROWS`; at most 2**16 parts), each counted in its own small table,
    in parallel: a table of every pair would be far larger than the cache. Pairs come
    out part by part, in an order set by the hash and the row order alone, so the same
    for any ``n_chunks``.

    Returns
    -------
    pair_layer : ``layer``'s dtype, pair_person : uint64, pair_flag : bool
    """
    bits = 0
    while (layer.size >> bits) > part_rows and bits < 16:
        bits += 1
    part_start, part_layer, part_person, part_flag = _scatter_by_pair(
        layer, person, flag, bits, n_chunks
    )
    n_parts = 1 << bits
    part_distinct = np.zeros(n_parts, np.int64)
    for p in prange(n_parts):
        part_distinct[p] = _distinct_in_place(
            part_layer, part_person, part_flag, part_start[p], part_start[p + 1]
        )
    out_start = _segment_starts(part_distinct)
    pair_layer = np.empty(out_start[n_parts], layer.dtype)
    pair_person = np.empty(out_start[n_parts], np.uint64)
    pair_flag = np.empty(out_start[n_parts], np.bool_)
    for p in prange(n_parts):
        for t in range(part_distinct[p]):
            source, target = part_start[p] + t, out_start[p] + t
            pair_layer[target] = part_layer[source]
            pair_person[target] = part_person[source]
            pair_flag[target] = part_flag[source]
    return pair_layer, pair_person, pair_flag
