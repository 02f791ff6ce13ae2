"""pytest-benchmark timings of each kernel next to a peer on the same data (slow).

Run: ``pytest benchmarks -m slow``. Each benchmark checks its answer against the peer's
before timing, and warms the JIT first. Not part of the default test run.
"""

from __future__ import annotations

import hmac

import numpy as np
import polars as pl
import pytest

from heatengine.kernels import (
    PAIR_PART_ROWS,
    count_contributions,
    count_values,
    distinct_flagged_pairs,
    layer_cell_keys,
    split_by_user_bucket,
    tap_cell_totals,
)
from heatengine.layers import distinct_codes
from heatengine.pseudonym import PseudonymKey
from heatengine.smooth import smooth_grids

pytestmark = pytest.mark.slow

N = 5_000_000
COLUMNS, ROWS, LAYERS = 128, 256, 20


@pytest.fixture(scope="module")
def taps():
    rng = np.random.default_rng(0)
    layer = rng.zipf(1.5, N).clip(max=LAYERS) - 1
    x, y = rng.beta(2, 3, N), rng.beta(3, 2, N)
    users = rng.integers(0, 200_000, N).astype(np.uint64)
    keys = np.empty(N, np.int64)
    layer_cell_keys(layer.astype(np.int64), x, y, COLUMNS, ROWS, keys)
    return layer.astype(np.int64), x, y, users, keys


def test_cell_keys_against_numpy(benchmark, taps):
    layer, x, y, _, expected = taps
    out = np.empty(N, np.int64)

    def run():
        layer_cell_keys(layer, x, y, COLUMNS, ROWS, out)

    benchmark(run)
    np.testing.assert_array_equal(out, expected)


def test_cell_keys_numpy_peer(benchmark, taps):
    layer, x, y, _, expected = taps

    def run():
        cx = np.minimum((x * COLUMNS).astype(np.int64), COLUMNS - 1)
        cy = np.minimum((y * ROWS).astype(np.int64), ROWS - 1)
        return layer * COLUMNS * ROWS + cy * COLUMNS + cx

    np.testing.assert_array_equal(benchmark(run), expected)


def _polars_distinct(keys, users):
    return (
        pl.DataFrame({"key": keys, "user": users})
        .group_by("key")
        .agg(users=pl.col("user").n_unique())
        .sort("key")
    )


def test_distinct_users_heatengine(benchmark, taps):
    *_, users, keys = taps
    n_keys = LAYERS * COLUMNS * ROWS
    result = benchmark(lambda: count_contributions(keys, users, n_keys, 2))
    per_key = np.bincount(result[0], minlength=n_keys)
    expected = _polars_distinct(keys, users)
    np.testing.assert_array_equal(per_key[expected["key"].to_numpy()], expected["users"].to_numpy())


def test_distinct_users_polars_peer(benchmark, taps):
    *_, users, keys = taps
    benchmark(lambda: _polars_distinct(keys, users))


def _polars_totals(keys, users, cap):
    return (
        pl.DataFrame({"key": keys, "user": users})
        .group_by("key", "user")
        .len()
        .group_by("key")
        .agg(users=pl.len(), taps=pl.col("len").clip(upper_bound=cap).sum())
        .sort("key")
    )


def test_cell_totals_from_taps_heatengine(benchmark, taps):
    *_, users, keys = taps
    n_keys = LAYERS * COLUMNS * ROWS

    def run():
        users_out, taps_out = np.zeros(n_keys, np.int64), np.zeros(n_keys, np.int64)
        tap_cell_totals(keys, users, n_keys, 5, 2, users_out, taps_out)
        return users_out, taps_out

    users_out, taps_out = benchmark(run)
    expected = _polars_totals(keys, users, 5)
    np.testing.assert_array_equal(users_out[expected["key"].to_numpy()], expected["users"])
    np.testing.assert_array_equal(taps_out[expected["key"].to_numpy()], expected["taps"])


def test_cell_totals_polars_peer(benchmark, taps):
    *_, users, keys = taps
    benchmark(lambda: _polars_totals(keys, users, 5))


def test_split_by_user_bucket_heatengine(benchmark, taps):
    *_, users, keys = taps
    out_keys, out_users = np.empty(N, np.int32), np.empty(N, np.uint64)
    starts = benchmark(lambda: split_by_user_bucket(keys, users, 10, out_keys, out_users))
    assert starts[-1] == N
    np.testing.assert_array_equal(np.sort(out_users), np.sort(users))


def test_split_by_user_bucket_numpy_peer(benchmark, taps):
    """The same grouping with numpy: a stable argsort by bucket, then two gathers."""
    *_, users, keys = taps

    def run():
        z = users ^ (users >> np.uint64(30))
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        order = np.argsort((z ^ (z >> np.uint64(31))) >> np.uint64(54), kind="stable")
        return keys[order].astype(np.int32), users[order]

    benchmark(run)


def test_smoothing_scipy(benchmark):
    grids = np.random.default_rng(1).random((LAYERS, ROWS, COLUMNS))
    out = benchmark(lambda: smooth_grids(grids, 1.5))
    assert out.shape == grids.shape


@pytest.fixture(scope="module")
def ids():
    """200,000 distinct raw ids, as the benchmark's users, and their bytes end to end."""
    names = [f"user-{i:08d}@example-app" for i in range(200_000)]
    data = np.frombuffer("".join(names).encode(), np.uint8)
    offsets = np.cumsum([0, *map(len, names)], dtype=np.int64)
    return names, data, offsets


KEY_BYTES = b"benchmark key, at least 32 bytes long"


def test_hmac_tokens_heatengine(benchmark, ids):
    names, data, offsets = ids
    key = PseudonymKey(KEY_BYTES)
    expected = [
        int.from_bytes(hmac.digest(KEY_BYTES, n.encode(), "sha256")[:8], "big")
        for n in names[:1000]
    ]
    tokens = benchmark(lambda: key.token_prefixes(data, offsets))
    assert tokens[:1000].tolist() == expected


def test_hmac_tokens_hashlib_peer(benchmark, ids):
    """The same tokens with the standard library, one id at a time."""
    names = [n.encode() for n in ids[0]]
    benchmark(lambda: [hmac.digest(KEY_BYTES, n, "sha256")[:8] for n in names])


@pytest.fixture(scope="module")
def screens():
    rng = np.random.default_rng(2)
    return pl.Series("screen", [f"screen_{i}" for i in rng.zipf(1.5, N).clip(max=50)])


def test_value_numbering_heatengine(benchmark, screens):
    codes, distinct = benchmark(lambda: distinct_codes(screens))
    assert distinct.gather(codes).equals(screens, check_names=False)


def test_value_numbering_polars_peer(benchmark, screens):
    """Polars' own numbering of distinct values: a Categorical's physical codes."""
    benchmark(lambda: screens.cast(pl.Categorical).to_physical().to_numpy())


def test_count_values_heatengine(benchmark, taps):
    layer = taps[0].astype(np.int32)
    counts = benchmark(lambda: count_values(layer, LAYERS))
    np.testing.assert_array_equal(counts, np.bincount(layer, minlength=LAYERS))


def test_count_values_numpy_peer(benchmark, taps):
    layer = taps[0].astype(np.int32)
    benchmark(lambda: np.bincount(layer, minlength=LAYERS))


def _polars_flagged_pairs(layer, users, flag):
    frame = pl.DataFrame({"layer": layer, "person": users, "flag": flag})
    return frame.group_by("layer", "person").agg(pl.col("flag").any())


def test_coverage_pairs_heatengine(benchmark, taps):
    layer, _, _, users, _ = taps
    layer, flag = layer.astype(np.int32), users % 7 != 0
    pairs = benchmark(lambda: distinct_flagged_pairs(layer, users, flag, 2, PAIR_PART_ROWS))
    expected = _polars_flagged_pairs(layer, users, flag)
    assert pairs[0].size == expected.height
    assert int(pairs[2].sum()) == int(expected["flag"].sum())


def test_coverage_pairs_polars_peer(benchmark, taps):
    layer, _, _, users, _ = taps
    benchmark(lambda: _polars_flagged_pairs(layer.astype(np.int32), users, users % 7 != 0))
