"""The pipeline end to end in Python: chunking, merging, measures, layers, input formats."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatengine import GridSpec, aggregate, merge_partials
from heatengine.partial import partial_from_taps
from heatengine.pipeline import PARALLEL_SLICE_MIN_ROWS, _code_user_ids, _in_slices
from heatengine.schema import ResolvedColumns
from heatengine.synthetic import generate_taps
from tests import reference
from tests.factory import AS_OF, KEY, small_config, taps_frame


@pytest.fixture(scope="module")
def demo_taps() -> pl.DataFrame:
    return generate_taps(40_000, seed=3)


def demo_config(**options):
    defaults = {"grid": GridSpec(16, 32), "sigma": 1.5, "segments": ("platform",)}
    return small_config(k=5, **{**defaults, **options})


def assert_same(a, b):
    assert a.cells.equals(b.cells)
    assert a.layers.equals(b.layers)
    np.testing.assert_array_equal(a.grids, b.grids)


@pytest.mark.parametrize("chunks", [2, 4, 7])
def test_same_result_for_any_chunking_and_row_order(demo_taps, chunks):
    one = aggregate(demo_taps, demo_config(), key=KEY, chunks=1)
    shuffled = demo_taps.sample(fraction=1.0, shuffle=True, seed=chunks)
    other = aggregate(shuffled, demo_config(), key=KEY, chunks=chunks)
    assert one.cells.height > 100
    assert_same(one, other)


def random_partial_inputs(rng, n, layers):
    return (
        rng.integers(0, layers, n).astype(np.int64),
        rng.random(n),
        rng.random(n),
        rng.integers(0, 60, n).astype(np.uint64),
    )


@pytest.mark.parametrize("parts", [1, 2, 4, 7])
def test_merging_partials_equals_binning_everything_at_once(parts):
    rng = np.random.default_rng(parts)
    grid = GridSpec(5, 3)
    layer_table = pl.DataFrame({"screen": ["a", "b", "c", "d"]})
    layer, x, y, users = random_partial_inputs(rng, 3000, 4)
    whole = partial_from_taps(grid, layer_table, layer, x, y, users, chunks=3)
    pieces = []
    for idx in np.array_split(rng.permutation(x.size), parts):
        present = np.unique(layer[idx])  # each piece knows only its own layers
        local = np.searchsorted(present, layer[idx]).astype(np.int64)
        pieces.append(
            partial_from_taps(grid, layer_table[present], local, x[idx], y[idx], users[idx])
        )
    rng.shuffle(pieces)
    merged = merge_partials(pieces, chunks=2)
    assert merged.layers.equals(whole.layers)
    for name in ("keys", "users", "taps"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))
    left, right = merge_partials(pieces[: parts // 2] or pieces[:1]), pieces[parts // 2 :]
    regrouped = merge_partials([left, *right]) if parts > 1 else left
    np.testing.assert_array_equal(regrouped.taps, whole.taps)


def test_merging_partials_of_different_grids_is_refused():
    table = pl.DataFrame({"screen": ["a"]})
    args = (table, np.zeros(1, np.int64), np.zeros(1), np.zeros(1), np.zeros(1, np.uint64))
    with pytest.raises(ValueError, match="different grids"):
        merge_partials(
            [partial_from_taps(GridSpec(2, 2), *args), partial_from_taps(GridSpec(3, 2), *args)]
        )


def test_cells_match_a_polars_reference(demo_taps):
    result = aggregate(demo_taps, demo_config(sigma=0.0), key=KEY)
    eligible = reference.eligible_rows(demo_taps, AS_OF)
    layer = ["screen", "platform"]
    expected = reference.published_cells(eligible, layer, columns=16, rows=32, cap=5, k=5)
    got = result.cells.sort("screen", "platform", "cy", "cx")
    assert got.select(expected.columns).equals(expected)
    assert (got["density"] == got["users"]).all()  # sigma = 0: density is the measure
    cells = reference.cell_of(eligible["x"].to_numpy(), eligible["y"].to_numpy(), 16, 32)
    published = eligible.with_columns(cx=pl.Series(cells % 16), cy=pl.Series(cells // 16)).join(
        expected.select("screen", "platform", "cx", "cy").with_columns(
            pl.col("cx", "cy").cast(pl.Int64)
        ),
        on=["screen", "platform", "cx", "cy"],
    )
    layer_users = published.group_by("screen", "platform").agg(users=pl.col("user_id").n_unique())
    joined = result.layers.join(layer_users, on=["screen", "platform"], suffix="_ref")
    assert joined.height == result.layers.height
    assert (joined["users"] == joined["users_ref"]).all()


def test_taps_measure_caps_each_users_taps_per_cell():
    rows = [{"user_id": "heavy"}] * 50 + [{"user_id": f"u{i}"} for i in range(4)]
    result = aggregate(taps_frame(rows), small_config(k=5, measure="taps"), key=KEY)
    assert result.cells.select("users", "taps", "density").row(0) == (5, 5 + 4, 9.0)
    assert result.layers["taps"].to_list() == [9]


def test_grid_lookup_by_segments_and_a_helpful_key_error(demo_taps):
    result = aggregate(demo_taps, demo_config(), key=KEY)
    grid = result.grid("home", platform="ios")
    assert grid.shape == (32, 16)
    assert grid.max() > 0
    with pytest.raises(KeyError, match=r"no published layer .*published layers: layer_0000"):
        result.grid("home", platform="symbian")
    assert result.layer_label(0) == "checkout, platform=android"


def test_smoothing_spreads_but_keeps_mass_away_from_edges():
    rows = [{"x": 0.55, "y": 0.55, "user_id": f"u{i}"} for i in range(5)]
    sharp = aggregate(taps_frame(rows), small_config(k=5, grid=GridSpec(12, 12)), key=KEY)
    smooth = aggregate(
        taps_frame(rows), small_config(k=5, grid=GridSpec(12, 12), sigma=1.0), key=KEY
    )
    assert sharp.grids.sum() == pytest.approx(smooth.grids.sum(), rel=1e-6)
    assert np.count_nonzero(smooth.grids) > np.count_nonzero(sharp.grids)
    assert smooth.grids.max() < sharp.grids.max()


@pytest.mark.parametrize("fmt", ["parquet", "csv", "ndjson"])
def test_file_formats_directories_globs_and_hive_partitions(tmp_path, demo_taps, fmt):
    frame = demo_taps.head(5000)
    expected = aggregate(frame, demo_config(), key=KEY)
    for platform in ("ios", "android"):
        part = frame.filter(pl.col("platform") == platform).drop("platform")
        folder = tmp_path / f"platform={platform}"
        folder.mkdir()
        for i, piece in enumerate(part.iter_slices(2000)):
            path = folder / f"part-{i}.{fmt}"
            if fmt == "parquet":
                piece.write_parquet(path)
            elif fmt == "csv":
                piece.write_csv(path)
            else:
                piece.write_ndjson(path)
    for source in (tmp_path, str(tmp_path / "platform=*" / f"*.{fmt}")):
        whole = aggregate(source, demo_config(), key=KEY)
        assert whole.stats.rows_in == 5000
        assert_same(expected, whole)
        # File by file: the same result, statistics and quarantine included.
        streamed = aggregate(source, demo_config(), key=KEY, streaming=True)
        assert_same(whole, streamed)
        assert streamed.stats == whole.stats
        assert streamed.quarantine.sort(pl.all()).equals(whole.quarantine.sort(pl.all()))


def test_unknown_paths_and_types_are_clear_errors(tmp_path):
    from heatengine.errors import HeatengineError

    with pytest.raises(HeatengineError, match="input not found"):
        aggregate(tmp_path / "absent.parquet", small_config(), key=KEY)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(HeatengineError, match="unsupported file type"):
        aggregate(tmp_path / "notes.txt", small_config(), key=KEY)
    with pytest.raises(HeatengineError, match="holds no Parquet"):
        aggregate(tmp_path, small_config(), key=KEY)


def test_streaming_many_files_equals_one_run(tmp_path, demo_taps):
    for i, piece in enumerate(demo_taps.iter_slices(2500)):
        piece.write_parquet(tmp_path / f"part-{i:02d}.parquet")
    assert len(list(tmp_path.iterdir())) == 16
    laps = []
    streamed = aggregate(
        tmp_path, demo_config(), key=KEY, streaming=True, progress=lambda s, _: laps.append(s)
    )
    assert_same(aggregate(demo_taps, demo_config(), key=KEY), streamed)
    assert "batch 16/16" in laps


@pytest.mark.parametrize("height", [0, 5, PARALLEL_SLICE_MIN_ROWS * 3 + 7])
@pytest.mark.parametrize("parts", [None, 1, 3, 4])  # None: one per Polars thread
def test_expressions_in_slices_equal_one_evaluation(height, parts):
    # A ragged last slice, a frame of several chunks, fewer rows than slices, no rows.
    rng = np.random.default_rng(height)
    values = rng.normal(size=height)
    v = pl.col("v")
    frame = pl.DataFrame({"v": np.where(rng.random(height) < 0.1, np.nan, values)})
    frame = pl.concat([frame.head(height // 3), frame.tail(height - height // 3)], rechunk=False)
    expression = (
        pl.when(v.is_nan()).then(pl.lit(3, pl.UInt8)).when(v < 0).then(pl.lit(1, pl.UInt8))
        .otherwise(pl.lit(0, pl.UInt8)).alias("code")
    )  # fmt: skip
    result = _in_slices(frame, expression, parts)
    assert result.name == "code"
    assert result.dtype == pl.UInt8
    assert result.equals(frame.select(expression).to_series())


@pytest.mark.parametrize("parts", [1, 3])
def test_expressions_in_slices_must_give_a_value_per_row(parts):
    frame = pl.DataFrame({"v": np.arange(1000.0)})
    with pytest.raises(ValueError, match=f"gives {parts} values for 1,000 rows"):
        _in_slices(frame, pl.col("v").sum(), parts)


@given(st.lists(st.sampled_from(["u1", " u1", "u1 ", "u2", "", "  ", None, "u3"]), max_size=60))
def test_user_ids_are_numbered_by_their_cleaned_value(values):
    # Both ways of numbering: cleaning merges no ids (a shortcut), or it merges some.
    raw = pl.DataFrame({"user_id": pl.Series(values, dtype=pl.String)})
    ids = _code_user_ids(raw, ResolvedColumns("user_id", False, ("user_id",), ()))
    assert ids.ids.null_count() == 0
    assert ids.ids.n_unique() == ids.ids.len()
    cleaned = [None if v is None or not v.strip() else v.strip() for v in values]
    assert sorted(ids.ids.to_list()) == sorted({c for c in cleaned if c is not None})
    named = [None if c < 0 else ids.ids[int(c)] for c in ids.code]
    assert named == cleaned
