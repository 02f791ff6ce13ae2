"""Layer numbering (heatengine.layers), the hash-numbering and published-user kernels, and
the per-layer published users of the pipeline, against slow references defined here."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from heatengine import aggregate
from heatengine.config import AggregateConfig, GridSpec
from heatengine.errors import SchemaError
from heatengine.kernels import (
    _count_distinct,
    distinct_users_per_group,
    new_pair_numbering,
    number_pairs,
    published_user_groups,
)
from heatengine.layers import (
    HASH_SLICE_ROWS,
    SPARSE_COMBINATIONS_PER_ROW,
    code_layers,
    distinct_codes,
    used_layers,
)
from heatengine.partial import partial_from_taps
from heatengine.pipeline import _published_users_per_layer, build_partial
from heatengine.schema import MISSING_SEGMENT
from tests import reference
from tests.factory import AS_OF, KEY, small_config, taps_frame

# --- slow, obviously correct references ---------------------------------------------


def first_appearance_numbers(values: list) -> tuple[list[int], list[int]]:
    """Number of each value in order of first appearance, and the row of each first one."""
    numbers: dict = {}
    rows = []
    for i, value in enumerate(values):
        if value not in numbers:
            numbers[value] = len(numbers)
            rows.append(i)
    return [numbers[v] for v in values], rows


def cleaned_layer_frame(df: pl.DataFrame, layer_columns: list[str]) -> pl.DataFrame:
    """Layer columns as published, row by row: a blank screen is null; segment values
    are stripped text, blank or null meaning MISSING_SEGMENT."""
    screen = pl.col("screen").cast(pl.String)
    exprs = [pl.when(screen.str.strip_chars() == "").then(None).otherwise(screen).alias("screen")]
    for name in layer_columns[1:]:
        text = pl.col(name).cast(pl.String).str.strip_chars()
        exprs.append(
            pl.when(text.is_null() | (text == ""))
            .then(pl.lit(MISSING_SEGMENT))
            .otherwise(text)
            .alias(name)
        )
    return df.select(exprs)


def reference_layers(df: pl.DataFrame, layer_columns: list[str]) -> pl.DataFrame:
    """Distinct cleaned layer rows with a screen, sorted."""
    cleaned = cleaned_layer_frame(df, layer_columns)
    return cleaned.filter(pl.col("screen").is_not_null()).unique().sort(layer_columns)


def distinct_published_users(
    keys: np.ndarray,
    users: np.ndarray,
    layer_position: np.ndarray,
    published: np.ndarray,
    cells: int,
    n_kept: int,
) -> np.ndarray:
    """Distinct users per kept layer position among entries whose key is published."""
    seen: list[set] = [set() for _ in range(n_kept)]
    for key, user in zip(keys.tolist(), users.tolist(), strict=True):
        position = layer_position[key // cells]
        if position >= 0 and published[key]:
            seen[position].add(user)
    return np.array([len(s) for s in seen], np.int64)


def published_users_from_taps(
    n_layers: int,
    layer: np.ndarray,
    cell: np.ndarray,
    users: np.ndarray,
    keep: np.ndarray,
    published: np.ndarray,
) -> np.ndarray:
    """Distinct users per kept layer, over taps that fall in a published cell (Polars)."""
    position = np.full(n_layers, -1, np.int64)
    position[keep] = np.arange(len(keep))
    frame = pl.DataFrame(
        {"position": position[layer], "cell": cell, "user": users},
        schema_overrides={"user": pl.UInt64},
    ).filter(pl.col("position") >= 0)
    published_cells = pl.DataFrame(
        {
            "position": np.repeat(np.arange(len(keep)), published.shape[1]),
            "cell": np.tile(np.arange(published.shape[1]), len(keep)),
            "published": published.ravel(),
        }
    )
    counted = (
        frame.join(published_cells, on=["position", "cell"], how="inner")
        .filter("published")
        .group_by("position")
        .agg(pl.col("user").n_unique())
    )
    out = np.zeros(len(keep), np.int64)
    out[counted["position"].to_numpy()] = counted["user"].to_numpy()
    return out


# --- number_pairs over a whole column ------------------------------------------------


def first_occurrences(first: np.ndarray, second: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """number_pairs over the whole column at once: the first row of each number."""
    *_, rows, n_codes = number_pairs(first, second, codes, 0, *new_pair_numbering())
    return rows[:n_codes]


U64 = st.integers(0, 2**64 - 1)


def check_first_occurrences(first: np.ndarray, second: np.ndarray) -> None:
    codes = np.full(first.size, -7, np.int64)
    rows = first_occurrences(first, second, codes)
    expected_codes, expected_rows = first_appearance_numbers(
        list(zip(first.tolist(), second.tolist(), strict=True))
    )
    assert codes.tolist() == expected_codes
    assert rows.dtype == np.int64
    assert rows.tolist() == expected_rows


@given(
    hnp.arrays(np.uint64, st.integers(0, 300), elements=st.integers(0, 4)),
    st.data(),
)
def test_first_occurrences_number_pairs_in_order_of_first_appearance(first, data):
    second = data.draw(hnp.arrays(np.uint64, first.size, elements=st.integers(0, 3)))
    check_first_occurrences(first, second)


@given(
    hnp.arrays(
        np.uint64,
        st.integers(0, 200),
        elements=st.sampled_from([0, 1, 1024, 2048, 2**63, 2**64 - 1, 2**64 - 1024]),
    ),
    st.data(),
)
def test_first_occurrences_with_extreme_and_slot_sharing_hashes(first, data):
    second = data.draw(
        hnp.arrays(np.uint64, first.size, elements=st.sampled_from([0, 1, 2**64 - 1]))
    )
    check_first_occurrences(first, second)


@settings(max_examples=15)
@given(st.integers(0, 2**32), st.integers(601, 5000), st.sampled_from([1, 1024, 2**40]))
def test_first_occurrences_across_several_rehashes(seed, n_distinct, stride):
    # Up to 5000 distinct pairs: the 1024-slot table doubles three times. A stride that
    # is a multiple of the table size puts every value's first hash in the same slot.
    rng = np.random.default_rng(seed)
    values = rng.integers(0, n_distinct, 2 * n_distinct)
    values[:n_distinct] = rng.permutation(n_distinct)  # every value appears
    rng.shuffle(values)
    first = (values.astype(np.uint64) // np.uint64(2)) * np.uint64(stride)
    second = (values % 2).astype(np.uint64)  # pairs 2k, 2k + 1 differ only in `second`
    check_first_occurrences(first, second)
    assert np.unique(values).size == n_distinct
    check_numbering_in_slices(first, second, slice_rows=int(rng.integers(1, 700)))


def check_numbering_in_slices(first: np.ndarray, second: np.ndarray, slice_rows: int) -> None:
    """number_pairs resumed slice by slice (the table growing between calls) numbers
    every row as first_occurrences does at once."""
    codes = np.full(first.size, -7, np.int32)
    state = new_pair_numbering()
    for start in range(0, first.size, slice_rows):
        end = start + slice_rows
        state = number_pairs(first[start:end], second[start:end], codes[start:end], start, *state)
    *_, rows, n_codes = state
    at_once = np.empty(first.size, np.int64)
    assert rows[:n_codes].tolist() == first_occurrences(first, second, at_once).tolist()
    assert codes.tolist() == at_once.tolist()


def test_pairs_differing_only_in_the_second_hash_get_different_codes():
    first = np.array([9, 9, 9, 9, 5], np.uint64)
    second = np.array([1, 2, 1, 3, 1], np.uint64)
    codes = np.empty(5, np.int64)
    rows = first_occurrences(first, second, codes)
    assert codes.tolist() == [0, 1, 0, 2, 3]
    assert rows.tolist() == [0, 1, 3, 4]


def test_first_occurrences_of_nothing():
    codes = np.empty(0, np.int64)
    rows = first_occurrences(np.empty(0, np.uint64), np.empty(0, np.uint64), codes)
    assert rows.dtype == np.int64
    assert rows.size == 0


# --- distinct_codes --------------------------------------------------------------------

TEXT = st.sampled_from(["home", "a", " a", "a ", "", "  ", "Home", "é", "x y"]) | st.none()


def check_distinct_codes(series: pl.Series) -> None:
    expected_codes, expected_rows = first_appearance_numbers(series.to_list())
    # Hashed at once, and a few rows at a time: the numbering goes on across slices.
    for slice_rows in (HASH_SLICE_ROWS, 1, 3, 7):
        codes, distinct = distinct_codes(series, slice_rows)
        assert codes.dtype == np.int32
        assert codes.tolist() == expected_codes
        assert distinct.name == series.name
        assert distinct.dtype == series.dtype
        assert distinct.to_list() == series.gather(expected_rows).to_list()


@given(st.lists(TEXT | st.text(max_size=3), max_size=80))
def test_distinct_codes_of_text_with_nulls(values):
    check_distinct_codes(pl.Series("screen", values, dtype=pl.String))


@given(
    st.lists(st.integers(-5, 5) | st.sampled_from([-(2**63), 2**63 - 1]) | st.none(), max_size=80)
)
def test_distinct_codes_of_integers(values):
    check_distinct_codes(pl.Series("version", values, dtype=pl.Int64))


@given(st.lists(st.sampled_from([0, 1, 7, 2**63, 2**64 - 1]), max_size=60))
def test_distinct_codes_of_unsigned_integers(values):
    check_distinct_codes(pl.Series("user", values, dtype=pl.UInt64))


@given(st.lists(TEXT, max_size=80))
def test_distinct_codes_of_categoricals(values):
    check_distinct_codes(pl.Series("platform", values, dtype=pl.String).cast(pl.Categorical))


def test_distinct_codes_keep_empty_text_and_null_apart():
    codes, distinct = distinct_codes(pl.Series("s", ["", None, "", "a", None]))
    assert codes.tolist() == [0, 1, 0, 2, 1]
    assert distinct.to_list() == ["", None, "a"]


# --- code_layers -----------------------------------------------------------------------

SEGMENT_NAMES = ("platform", "version")
SEGMENT_TEXT = st.sampled_from(["a", " a", "a ", "b", "", "   ", "x y", "ios"]) | st.none()


@st.composite
def screen_columns(draw, n, wide):
    kind = draw(st.sampled_from(["text", "categorical", "integer"]))
    if kind == "integer":
        values = st.integers(-3, 400 if wide else 12) | st.none()
        return pl.Series("screen", draw(st.lists(values, min_size=n, max_size=n)), pl.Int64)
    texts = (
        st.text("ab ", max_size=6)
        if wide
        else st.sampled_from(["home", "a", " a", "  ", "", "cart"])
    )
    series = pl.Series("screen", draw(st.lists(texts | st.none(), min_size=n, max_size=n)))
    series = series.cast(pl.String)
    return series.cast(pl.Categorical) if kind == "categorical" else series


@st.composite
def segment_columns(draw, name, n, wide):
    kind = draw(st.sampled_from(["text", "categorical", "integer", "boolean", "float", "date"]))
    if kind in ("text", "categorical"):
        texts = st.text(" ab", max_size=5) if wide else SEGMENT_TEXT
        series = pl.Series(name, draw(st.lists(texts | st.none(), min_size=n, max_size=n)))
        series = series.cast(pl.String)
        return series.cast(pl.Categorical) if kind == "categorical" else series
    elements = {
        "integer": st.integers(-2, 1000 if wide else 3),
        "boolean": st.booleans(),
        "float": st.sampled_from([1.5, 2.0, 10.25, -3.0]),
        "date": st.sampled_from([date(2026, 1, 1), date(2026, 12, 31)]),
    }[kind]
    dtype = {"integer": pl.Int64, "boolean": pl.Boolean, "float": pl.Float64, "date": pl.Date}
    values = draw(st.lists(elements | st.none(), min_size=n, max_size=n))
    return pl.Series(name, values, dtype[kind])


@st.composite
def layer_frames(draw):
    n_segments = draw(st.integers(0, 2))
    n = draw(st.integers(0, 60))
    wide = draw(st.booleans())  # many distinct values: the sparse path of _combine
    columns = [draw(screen_columns(n, wide))]
    columns += [draw(segment_columns(name, n, wide)) for name in SEGMENT_NAMES[:n_segments]]
    return pl.DataFrame(columns), SEGMENT_NAMES[:n_segments]


def check_code_layers(df: pl.DataFrame, segments: tuple[str, ...]) -> None:
    config = AggregateConfig(segments=segments)
    layer_columns = list(config.layer_columns)
    coded = code_layers(df, config)
    expected = reference_layers(df, layer_columns)
    assert coded.layers.columns == layer_columns
    assert coded.layers.schema == dict.fromkeys(layer_columns, pl.String)
    assert coded.layers.to_dicts() == expected.to_dicts()

    cleaned = cleaned_layer_frame(df, layer_columns)
    missing = cleaned["screen"].is_null().to_numpy()
    assert coded.layer.dtype == np.int32
    assert coded.layer.shape == (df.height,)
    np.testing.assert_array_equal(coded.layer < 0, missing)
    assert (coded.layer[missing] == -1).all()
    present = np.flatnonzero(~missing)
    assert coded.layers[coded.layer[present]].to_dicts() == cleaned[present].to_dicts()


@given(layer_frames())
def test_code_layers_match_a_polars_reference(case):
    df, segments = case
    check_code_layers(df, segments)


@pytest.mark.parametrize("segments", [(), ("platform",), ("platform", "version")])
def test_code_layers_clean_spaces_blanks_and_numbers(segments):
    df = pl.DataFrame(
        {
            "screen": ["home", "home", "  ", None, "cart", " home", "home", ""],
            "platform": [" a", "a", "a", "a", "a ", None, "", "b"],
            "version": pl.Series([1, 1, 2, None, 10, 1, 2, 3], dtype=pl.Int64),
        }
    )
    check_code_layers(df, segments)
    coded = code_layers(df, AggregateConfig(segments=segments))
    assert coded.layer[[2, 3, 7]].tolist() == [-1, -1, -1]  # blank, null and empty screens
    if segments:
        # " a" and "a" are one layer; a blank or null segment is MISSING_SEGMENT.
        assert coded.layer[0] == coded.layer[1]
        assert " a" not in coded.layers["platform"].to_list()
        assert coded.layers.row(int(coded.layer[6]))[1] == MISSING_SEGMENT
        assert coded.layers.row(int(coded.layer[5]))[:2] == (" home", MISSING_SEGMENT)
    if len(segments) == 2:
        assert coded.layers.row(int(coded.layer[4])) == ("cart", "a", "10")


@pytest.mark.parametrize("n", [30, 1300])
def test_code_layers_sparse_combinations_take_the_sorting_path(n):
    # n rows, each with its own screen and segment values: n**3 possible combinations,
    # far more than SPARSE_COMBINATIONS_PER_ROW per row. 1300**3 passes 2**31: each
    # column's ranks are int32, their combination must not be.
    rng = np.random.default_rng(3)
    df = pl.DataFrame(
        {
            "screen": [f"s{i:02d}" for i in rng.permutation(n)],
            "platform": [f" p{i}" for i in rng.permutation(n)],
            "version": rng.permutation(n).astype(np.int64),
        }
    )
    assert n**3 > SPARSE_COMBINATIONS_PER_ROW * n
    assert n < 100 or n**3 > 2**31
    check_code_layers(df, ("platform", "version"))
    check_code_layers(df.with_columns(screen=pl.lit("one")), ("platform", "version"))


def test_code_layers_dense_combinations_take_the_table_path():
    rng = np.random.default_rng(4)
    n = 400
    df = pl.DataFrame(
        {
            "screen": rng.choice(["a", "b", " ", "c"], n),
            "platform": rng.choice(["x", " x", "y", ""], n),
            "version": rng.integers(0, 3, n),
        }
    )
    check_code_layers(df, ("platform", "version"))


@pytest.mark.parametrize("segments", [(), ("platform",)])
def test_code_layers_of_no_rows_and_of_only_missing_screens(segments):
    empty = pl.DataFrame(
        {"screen": pl.Series([], dtype=pl.String), "platform": pl.Series([], dtype=pl.String)}
    )
    check_code_layers(empty, segments)
    blank = pl.DataFrame({"screen": ["", "  ", None], "platform": ["a", "b", None]})
    check_code_layers(blank, segments)
    assert code_layers(blank, AggregateConfig(segments=segments)).layers.height == 0


def test_code_layers_write_negative_zero_as_given():
    # Float segment values are written as text, so -0.0 and 0.0 name different layers,
    # whichever comes first in the input.
    for values in ([0.0, -0.0], [-0.0, 0.0]):
        df = pl.DataFrame({"screen": ["home", "home"], "platform": values})
        check_code_layers(df, ("platform",))


def test_code_layers_refuse_columns_that_cannot_name_a_layer():
    with pytest.raises(SchemaError, match="column 'screen' has type Float64, expected text"):
        code_layers(pl.DataFrame({"screen": [1.5]}), AggregateConfig())
    df = pl.DataFrame({"screen": ["a"], "platform": [[1, 2]]})
    with pytest.raises(SchemaError, match="column 'platform' has type List"):
        code_layers(df, AggregateConfig(segments=("platform",)))


# --- used_layers -----------------------------------------------------------------------


@given(st.integers(0, 12), st.data())
def test_used_layers_keeps_used_layers_in_order_and_renumbers(n_layers, data):
    layers = pl.DataFrame({"screen": [f"s{i:02d}" for i in range(n_layers)]})
    elements = st.integers(0, max(n_layers - 1, 0))
    size = st.integers(0, 40) if n_layers else st.just(0)
    layer = data.draw(hnp.arrays(np.int64, size, elements=elements))
    kept, renumbered = used_layers(layers, layer)
    used = sorted(set(layer.tolist()))
    assert kept["screen"].to_list() == [f"s{i:02d}" for i in used]
    assert renumbered.tolist() == [used.index(v) for v in layer.tolist()]
    assert kept[renumbered]["screen"].to_list() == layers[layer]["screen"].to_list()


# --- published_user_groups and distinct_users_per_group -------------------------------

USERS = st.sampled_from([0, 1, 2, 3, 7, 1024, 2**32, 2**63, 2**64 - 1]) | U64


@st.composite
def contribution_lists(draw):
    n_layers = draw(st.integers(1, 4))
    cells = draw(st.integers(1, 6))
    n_keys = n_layers * cells
    n = draw(st.integers(0, 300))
    keys = draw(hnp.arrays(np.int64, n, elements=st.integers(0, n_keys - 1)))
    if draw(st.booleans()):
        keys = np.sort(keys)
    users = draw(hnp.arrays(np.uint64, n, elements=USERS))
    kept = draw(hnp.arrays(np.bool_, n_layers, elements=st.booleans()))
    kept[draw(st.integers(0, n_layers - 1))] = True
    layer_position = np.where(kept, np.cumsum(kept) - 1, -1).astype(np.int64)
    published = draw(hnp.arrays(np.bool_, n_keys, elements=st.booleans()))
    # As in the pipeline, only keys of kept layers are published.
    published &= np.repeat(kept, cells)
    return keys, users, layer_position, published, cells


@given(contribution_lists(), st.integers(0, 4), st.integers(1, 5))
def test_published_users_per_layer_kernels_match_reference(case, bucket_bits, chunks):
    keys, users, layer_position, published, cells = case
    n_kept = int(layer_position.max()) + 1
    groups = np.full(keys.size, -99, np.int64)
    published_user_groups(keys, users, layer_position, published, cells, bucket_bits, groups)
    n_groups = n_kept << bucket_bits
    assert ((groups >= 0) & (groups <= n_groups)).all()
    np.testing.assert_array_equal(groups == n_groups, ~published[keys])
    distinct = distinct_users_per_group(groups, users, n_groups, chunks)
    assert distinct.shape == (n_groups,)
    got = distinct.reshape(n_kept, 1 << bucket_bits).sum(axis=1)
    expected = distinct_published_users(keys, users, layer_position, published, cells, n_kept)
    np.testing.assert_array_equal(got, expected)


def test_published_key_in_a_layer_that_is_not_kept_is_not_counted():
    # Layer 0 is not kept (position -1) but its keys are marked published; layer 1 is
    # kept, and its published key 2 holds users 7 and 9.
    cells = 2
    keys = np.array([0, 1, 2, 3, 2], np.int64)
    users = np.array([5, 6, 7, 8, 9], np.uint64)
    layer_position = np.array([-1, 0], np.int64)
    published = np.array([True, True, True, False])
    for bucket_bits in range(4):
        groups = np.empty(keys.size, np.int64)
        published_user_groups(keys, users, layer_position, published, cells, bucket_bits, groups)
        n_groups = 1 << bucket_bits
        distinct = distinct_users_per_group(groups, users, n_groups, 1)
        assert (bucket_bits, int(distinct.sum())) == (bucket_bits, 2)


@given(st.integers(0, 6), st.data(), st.integers(1, 5))
def test_distinct_users_per_group_match_reference(n_groups, data, chunks):
    n = data.draw(st.integers(0, 200))
    groups = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, n_groups)))
    users = data.draw(hnp.arrays(np.uint64, n, elements=USERS))
    distinct = distinct_users_per_group(groups, users, n_groups, chunks)
    expected = [len(set(users[groups == g].tolist())) for g in range(n_groups)]
    assert distinct.tolist() == expected


@given(hnp.arrays(np.uint64, st.integers(0, 400), elements=USERS | st.integers(0, 50)))
def test_count_distinct_matches_a_set(values):
    assert _count_distinct(values) == len(set(values.tolist()))


def test_buckets_split_one_large_layer_without_losing_users():
    rng = np.random.default_rng(8)
    n = 50_000
    users = np.concatenate(
        [np.arange(5000, dtype=np.uint64), rng.integers(0, 2**64, n - 5000, dtype=np.uint64)]
    )
    users = users[rng.permutation(n)]
    keys = rng.integers(0, 6, n).astype(np.int64)  # 2 layers of 3 cells
    layer_position = np.array([0, 1], np.int64)
    published = np.array([True, False, True, True, True, False])
    expected = distinct_published_users(keys, users, layer_position, published, 3, 2)
    for bucket_bits in (0, 4, 10):
        groups = np.empty(n, np.int64)
        published_user_groups(keys, users, layer_position, published, 3, bucket_bits, groups)
        distinct = distinct_users_per_group(groups, users, 2 << bucket_bits, 2)
        got = distinct.reshape(2, 1 << bucket_bits).sum(axis=1)
        np.testing.assert_array_equal(got, expected)


# --- _published_users_per_layer end to end ---------------------------------------------


def small_partial(seed: int, n: int, n_layers: int, grid: GridSpec, distinct_users: int):
    rng = np.random.default_rng(seed)
    layers = pl.DataFrame({"screen": [f"s{i}" for i in range(n_layers)]})
    layer = rng.integers(0, n_layers, n).astype(np.int64)
    x, y = rng.random(n), rng.random(n)
    x[:3], y[:3] = 1.0, 0.0  # edges
    users = rng.integers(0, distinct_users, n).astype(np.uint64) * np.uint64(0x1_0000_0001)
    partial = partial_from_taps(grid, layers, layer, x, y, users, chunks=2)
    cell = reference.cell_of(x, y, grid.columns, grid.rows)
    return partial, layer, cell, users, rng


@pytest.mark.parametrize("chunks", [1, 2, 3])
@pytest.mark.parametrize(
    ("n", "n_layers", "distinct_users"), [(0, 2, 1), (60, 3, 9), (400, 4, 50), (40_000, 3, 30_000)]
)
def test_published_users_per_layer_match_polars(chunks, n, n_layers, distinct_users):
    grid = GridSpec(3, 2)
    partial, layer, cell, users, rng = small_partial(n, n, n_layers, grid, distinct_users)
    for keep in (np.arange(n_layers), np.array([0, n_layers - 1]), np.array([1]), np.array([])):
        keep = keep.astype(np.int64)
        published = rng.random((len(keep), grid.cells)) < 0.6
        got = _published_users_per_layer(partial, published, keep, chunks)
        expected = published_users_from_taps(n_layers, layer, cell, users, keep, published)
        np.testing.assert_array_equal(got, expected)
        assert got.shape == (len(keep),)


# --- partial_from_taps validation ------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, -1e-12, 1.0 + 1e-12, np.inf, -np.inf])
@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("where", [0, 4])
def test_partial_from_taps_refuses_coordinates_outside_the_unit_square(bad, axis, where):
    coordinates = {"x": np.array([0.0, 0.5, 1.0, 0.25, 0.75]), "y": np.linspace(0, 1, 5)}
    coordinates[axis][where] = bad
    layers = pl.DataFrame({"screen": ["home"]})
    with pytest.raises(ValueError, match=r"normalised to \[0, 1\]"):
        partial_from_taps(
            GridSpec(2, 2),
            layers,
            np.zeros(5, np.int64),
            coordinates["x"],
            coordinates["y"],
            np.arange(5, dtype=np.uint64),
        )


def test_partial_from_taps_accepts_edges_and_no_taps():
    layers = pl.DataFrame({"screen": ["home"]})
    x = np.array([0.0, 1.0, -0.0])
    partial = partial_from_taps(
        GridSpec(2, 2), layers, np.zeros(3, np.int64), x, x[::-1].copy(), np.ones(3, np.uint64)
    )
    assert partial.taps.sum() == 3
    empty = np.empty(0)
    none = partial_from_taps(
        GridSpec(2, 2), layers, empty.astype(np.int64), empty, empty, empty.astype(np.uint64)
    )
    assert none.keys.size == 0


# --- layers seen only in rows that are not counted ------------------------------------


def test_screens_seen_only_without_consent_leave_no_trace():
    counted = [{"screen": "home", "user_id": f"u{i}", "platform": "ios"} for i in range(6)]
    hidden = [
        {"screen": "secret", "user_id": f"v{i}", "consent": False, "platform": "ios"}
        for i in range(6)
    ]
    hidden += [{"screen": "home", "user_id": "w", "consent": False, "platform": "hidden"}]
    frame = taps_frame(hidden[:3] + counted + hidden[3:])
    for segments in ((), ("platform",)):
        config = small_config(k=5, segments=segments)
        partial, counts, quarantine = build_partial(frame, config, as_of=AS_OF, key=KEY)
        assert counts.excluded == {"no_consent": 7}
        assert partial.layers["screen"].to_list() == ["home"]
        if segments:
            assert partial.layers["platform"].to_list() == ["ios"]
        assert quarantine.height == 0
        result = aggregate(frame, config, key=KEY)
        assert result.layers["screen"].to_list() == ["home"]
        assert "secret" not in result.cells["screen"].to_list()
        assert result.layers["users"].to_list() == [6]
        if segments:
            assert "hidden" not in result.cells["platform"].to_list()


def test_screens_seen_only_in_quarantined_rows_are_not_layers():
    rows = [{"screen": "home", "user_id": f"u{i}"} for i in range(6)]
    rows += [{"screen": "broken", "user_id": f"v{i}", "x": 1.5} for i in range(6)]
    config = small_config(k=5)
    partial, _, quarantine = build_partial(taps_frame(rows), config, as_of=AS_OF, key=KEY)
    assert partial.layers["screen"].to_list() == ["home"]
    assert quarantine["screen"].unique().to_list() == ["broken"]
