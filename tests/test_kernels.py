"""Kernels against the slow references in tests/reference.py."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from heatengine.kernels import (
    HASHED_GROUP_MAX,
    PAIR_PART_ROWS,
    cell_totals,
    count_contributions,
    count_values,
    distinct_flagged_pairs,
    layer_cell_keys,
    merge_sorted_contributions,
    remap_in_place,
    tap_cell_totals,
)
from heatengine.partial import tap_totals
from tests import reference

coordinates = st.floats(0.0, 1.0, allow_nan=False, width=64)


@st.composite
def taps(draw, max_layers=3, max_rows=400):
    n = draw(st.integers(0, max_rows))
    columns = draw(st.integers(1, 9))
    rows = draw(st.integers(1, 9))
    layers = draw(st.integers(1, max_layers))
    x = draw(hnp.arrays(np.float64, n, elements=coordinates))
    y = draw(hnp.arrays(np.float64, n, elements=coordinates))
    # int32 as the pipeline numbers layers, int64 as merges and tests may
    dtype = draw(st.sampled_from([np.int32, np.int64]))
    layer = draw(hnp.arrays(dtype, n, elements=st.integers(0, layers - 1)))
    users = draw(hnp.arrays(np.uint64, n, elements=st.sampled_from([0, 1, 2, 7, 2**63, 2**64 - 1])))
    return columns, rows, layers, layer, x, y, users


def keys_of(columns, rows, layer, x, y):
    out = np.empty(x.size, np.int64)
    layer_cell_keys(layer, x, y, columns, rows, out)
    return out


@settings(deadline=None, max_examples=150)
@given(taps())
def test_layer_cell_keys_match_reference(case):
    columns, rows, _, layer, x, y, _ = case
    expected = layer * columns * rows + reference.cell_of(x, y, columns, rows)
    np.testing.assert_array_equal(keys_of(columns, rows, layer, x, y), expected)


def test_right_and_bottom_edges_belong_to_the_last_cell():
    x = np.array([0.0, 1.0, 1.0, 0.999999, 0.5])
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    keys = keys_of(4, 2, np.zeros(5, np.int64), x, y)
    assert keys.tolist() == [0, 7, 3, 7, 6]  # cells are row * 4 + column


@settings(deadline=None, max_examples=150)
@given(taps(), st.integers(1, 8), st.integers(1, 6))
def test_count_contributions_matches_polars(case, chunks, cap):
    columns, rows, layers, layer, x, y, users = case
    keys = keys_of(columns, rows, layer, x, y)
    n_keys = layers * columns * rows
    out_keys, out_users, out_taps = count_contributions(keys, users, n_keys, chunks)
    expected = reference.contributions(keys, users, np.ones(keys.size, np.int64))
    np.testing.assert_array_equal(out_keys, expected["key"].to_numpy())
    np.testing.assert_array_equal(out_users, expected["user"].to_numpy())
    np.testing.assert_array_equal(out_taps, expected["taps"].to_numpy())

    users_per_key = np.zeros(n_keys, np.int64)
    taps_per_key = np.zeros(n_keys, np.int64)
    cell_totals(out_keys, out_taps, cap, users_per_key, taps_per_key)
    expected_users, expected_taps = expected_totals(keys, users, cap, n_keys)
    np.testing.assert_array_equal(users_per_key, expected_users)
    np.testing.assert_array_equal(taps_per_key, expected_taps)


def expected_totals(keys, users, cap, n_keys):
    cells = reference.per_cell(keys, users, cap)
    expected_users = np.zeros(n_keys, np.int64)
    expected_taps = np.zeros(n_keys, np.int64)
    expected_users[cells["key"].to_numpy()] = cells["users"].to_numpy()
    expected_taps[cells["key"].to_numpy()] = cells["taps"].to_numpy()
    return expected_users, expected_taps


@settings(deadline=None, max_examples=150)
@given(taps(), st.integers(1, 8), st.integers(1, 6), st.integers(0, 3))
def test_tap_cell_totals_match_polars_and_add_up(case, chunks, cap, start):
    """Totals straight from the taps, added onto what the outputs held (``start``)."""
    columns, rows, layers, layer, x, y, users = case
    keys = keys_of(columns, rows, layer, x, y)
    n_keys = layers * columns * rows
    expected_users, expected_taps = expected_totals(keys, users, cap, n_keys)
    users_out, taps_out = np.full(n_keys, start, np.int64), np.full(n_keys, start, np.int64)
    tap_cell_totals(keys, users, n_keys, cap, chunks, users_out, taps_out)
    np.testing.assert_array_equal(users_out, expected_users + start)
    np.testing.assert_array_equal(taps_out, expected_taps + start)
    # Through the wrapper, with many more possible keys than taps (renumbered densely).
    sparse = n_keys * 1000
    users_out, taps_out = np.zeros(sparse, np.int64), np.zeros(sparse, np.int64)
    tap_totals(keys * 1000 + 7, users, sparse, cap, chunks, users_out, taps_out)
    np.testing.assert_array_equal(users_out[7::1000], expected_users)
    np.testing.assert_array_equal(taps_out[7::1000], expected_taps)
    assert users_out.sum() == expected_users.sum()


@settings(deadline=None, max_examples=10)
@given(st.integers(0, 2**32), st.integers(1, 3), st.integers(1, 5))
def test_tap_cell_totals_of_busy_keys_match_polars(seed, chunks, cap):
    """Keys with more taps than the hash table takes are sorted instead. A key at the
    table's limit with nearly every user distinct fills it half full, so probes run into
    occupied slots; structured tokens and a key of one repeated user are counted too."""
    rng = np.random.default_rng(seed)
    busy = HASHED_GROUP_MAX + int(rng.integers(1, 3000))
    keys = np.concatenate(
        [
            np.zeros(busy, np.int64),  # busier than the table: sorted
            np.full(HASHED_GROUP_MAX, 1, np.int64),  # exactly the table's limit
            rng.integers(2, 5000, 3000),  # small groups, over several parallel blocks
            np.full(500, 60, np.int64),  # one user, many taps
        ]
    )
    tokens = rng.integers(0, 2**64, 400, dtype=np.uint64)
    tokens[:200] = np.arange(200, dtype=np.uint64) << np.uint64(40)  # structured
    users = rng.choice(tokens, keys.size)
    at_limit = slice(busy, busy + HASHED_GROUP_MAX)
    users[at_limit] = rng.integers(0, 2**64, HASHED_GROUP_MAX, dtype=np.uint64)
    users[busy : busy + 50] = users[busy + 50 : busy + 100]  # and a few repeats
    users[-500:] = tokens[0]
    order = rng.permutation(keys.size)
    keys, users = keys[order], users[order]
    n_keys = 5000  # 4 blocks of keys, each with its scratch table
    expected_users, expected_taps = expected_totals(keys, users, cap, n_keys)
    users_out, taps_out = np.zeros(n_keys, np.int64), np.zeros(n_keys, np.int64)
    tap_cell_totals(keys, users, n_keys, cap, chunks, users_out, taps_out)
    np.testing.assert_array_equal(users_out, expected_users)
    np.testing.assert_array_equal(taps_out, expected_taps)


@settings(deadline=None, max_examples=150)
@given(taps(), st.integers(0, 400), st.integers(1, 9))
def test_merge_sorted_contributions_matches_polars(case, split, n_parts):
    """Two lists counted from two halves of the taps merge into the list of all taps."""
    columns, rows, layers, layer, x, y, users = case
    keys = keys_of(columns, rows, layer, x, y)
    n_keys = layers * columns * rows
    split = min(split, keys.size)
    first = count_contributions(keys[:split], users[:split], n_keys, 2)
    second = count_contributions(keys[split:], users[split:], n_keys, 3)
    merged = merge_sorted_contributions(*first, *second, n_parts)
    expected = reference.contributions(keys, users, np.ones(keys.size, np.int64))
    for got, column in zip(merged, ("key", "user", "taps"), strict=True):
        np.testing.assert_array_equal(got, expected[column].to_numpy())
    swapped = merge_sorted_contributions(*second, *first, 1)
    for a, b in zip(merged, swapped, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("chunks", [1, 2, 4, 7])
def test_result_is_the_same_for_any_chunking_and_order(chunks):
    rng = np.random.default_rng(5)
    n, n_keys = 20_000, 300
    keys = rng.integers(0, n_keys, n).astype(np.int64)
    users = rng.integers(0, 500, n).astype(np.uint64)
    order = rng.permutation(n)
    counted_serial = count_contributions(keys, users, n_keys, 1)
    counted = count_contributions(keys[order], users[order], n_keys, chunks)
    for a, b in zip(counted_serial, counted, strict=True):
        np.testing.assert_array_equal(a, b)


def test_empty_input_gives_empty_lists():
    empty = np.empty(0, np.int64)
    no_users = np.empty(0, np.uint64)
    keys, users, taps_ = count_contributions(empty, no_users, 10, 3)
    assert keys.size == users.size == taps_.size == 0
    keys, users, taps_ = merge_sorted_contributions(
        empty, no_users, empty, empty, no_users, empty, 4
    )
    assert keys.size == users.size == taps_.size == 0


def test_single_cell_counts_users_once_and_caps_taps():
    keys = np.zeros(9, np.int64)
    users = np.array([5, 5, 5, 5, 5, 5, 9, 9, 1], np.uint64)
    out = count_contributions(keys, users, 1, 2)
    assert out[1].tolist() == [1, 5, 9]
    assert out[2].tolist() == [1, 6, 2]
    users_out, taps_out = np.zeros(1, np.int64), np.zeros(1, np.int64)
    cell_totals(out[0], out[2], 5, users_out, taps_out)
    assert users_out.tolist() == [3]
    assert taps_out.tolist() == [1 + 5 + 2]


@given(
    st.sampled_from([np.uint8, np.int32, np.int64]),
    st.integers(1, 12),
    st.data(),
)
def test_count_values_matches_numpy_bincount(dtype, size, data):
    values = data.draw(hnp.arrays(dtype, st.integers(0, 300), elements=st.integers(0, size - 1)))
    counts = count_values(values, size)
    assert counts.dtype == np.int64
    assert counts.tolist() == np.bincount(values, minlength=size).tolist()


def test_count_values_over_many_parallel_chunks():
    values = np.random.default_rng(8).integers(0, 7, 300_001).astype(np.uint8)  # 4 chunks
    assert count_values(values, 7).tolist() == np.bincount(values, minlength=7).tolist()


@pytest.mark.parametrize("outside", [-1, 3])
@pytest.mark.parametrize(
    ("n", "at"), [(3, 1), (300_000, 1), (300_000, 250_000)]
)  # counted alone; in the first of several chunks, and in a later one
def test_count_values_refuses_values_outside_the_range(outside, n, at):
    values = np.zeros(n, np.int64)
    values[at] = outside
    with pytest.raises(ValueError, match="outside"):
        count_values(values, 3)


@given(st.sampled_from([np.int32, np.int64]), st.integers(1, 20), st.data())
def test_remap_in_place_matches_numpy_gather(dtype, size, data):
    mapping = data.draw(hnp.arrays(np.int32, size, elements=st.integers(-1, 10**6)))
    values = data.draw(hnp.arrays(dtype, st.integers(0, 300), elements=st.integers(0, size - 1)))
    expected = mapping[values]
    remap_in_place(values, mapping)
    assert values.dtype == dtype
    assert values.tolist() == expected.tolist()


def flagged_pairs_frame(pairs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> pl.DataFrame:
    layer, person, flag = pairs
    return pl.DataFrame(
        {"layer": layer.astype(np.int64), "person": person, "flag": flag},
        schema={"layer": pl.Int64, "person": pl.UInt64, "flag": pl.Boolean},
    ).sort("layer", "person")


@settings(deadline=None, max_examples=150)
@given(
    st.sampled_from([np.int32, np.int64]),
    st.integers(1, 4),
    st.sampled_from([1, 3, 64, PAIR_PART_ROWS]),  # small parts: up to 512 of them here
    st.data(),
)
def test_distinct_flagged_pairs_match_reference(dtype, chunks, part_rows, data):
    n = data.draw(st.integers(0, 300))
    layer = data.draw(hnp.arrays(dtype, n, elements=st.integers(0, 4)))
    people = st.sampled_from([0, 1, 2, 7, 2**63, 2**64 - 1])
    person = data.draw(hnp.arrays(np.uint64, n, elements=people))
    flag = data.draw(hnp.arrays(np.bool_, n))
    pairs = distinct_flagged_pairs(layer, person, flag, chunks, part_rows)
    assert pairs[0].dtype == dtype
    assert flagged_pairs_frame(pairs).equals(reference.flagged_pairs(layer, person, flag))
    serial = distinct_flagged_pairs(layer, person, flag, 1, part_rows)
    assert all(np.array_equal(a, b) for a, b in zip(pairs, serial, strict=True))


def test_distinct_flagged_pairs_split_into_many_parts():
    rng = np.random.default_rng(11)
    n = 5 * PAIR_PART_ROWS  # split in 8 parts, each counted in its own table
    layer = rng.integers(0, 40, n).astype(np.int32)
    person = rng.integers(0, 3_000, n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    flag = rng.random(n) < 0.1
    pairs = distinct_flagged_pairs(layer, person, flag, 3, PAIR_PART_ROWS)
    assert flagged_pairs_frame(pairs).equals(reference.flagged_pairs(layer, person, flag))
    serial = distinct_flagged_pairs(layer, person, flag, 1, PAIR_PART_ROWS)
    assert all(np.array_equal(a, b) for a, b in zip(pairs, serial, strict=True))
