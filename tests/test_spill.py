"""Streaming past memory: spilled taps, split by user bucket, against in-memory partials."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from itertools import pairwise
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import heatengine.pipeline
import heatengine.spill
from heatengine import GridSpec, aggregate
from heatengine.config import DominanceRule, PrivacyPolicy
from heatengine.errors import HeatengineError, QuarantineError
from heatengine.io import scan_slices
from heatengine.kernels import renumber_key_layers, split_by_user_bucket
from heatengine.partial import partial_from_taps, users_per_layer
from heatengine.spill import BUCKET_BITS, SpilledPartial, UserSpill, _bucket_runs, _SpilledBatch
from heatengine.synthetic import generate_taps
from tests.factory import KEY, small_config, taps_frame
from tests.test_pipeline import assert_same, demo_config

MASK64 = 2**64 - 1


def reference_bucket(user: int, bits: int) -> int:
    """The splitmix64 finaliser in plain Python integers, top ``bits`` bits."""
    z = user
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return z >> (64 - bits)


def reference_buckets(users: np.ndarray, bits: int) -> np.ndarray:
    return np.array([reference_bucket(int(u), bits) for u in users.tolist()], np.int64)


# Small and sequential ids as well as tokens anywhere in the 64-bit range.
user_values = st.one_of(st.integers(0, 64), st.integers(0, MASK64))


# --- split_by_user_bucket ------------------------------------------------------------


@settings(deadline=None, max_examples=60)
@given(
    data=st.data(),
    n=st.integers(0, 300),
    bits=st.integers(1, 10),
    key_type=st.sampled_from([np.int32, np.int64]),
    spare=st.integers(0, 5),
)
def test_split_by_user_bucket_matches_a_stable_sort_by_splitmix_bucket(
    data, n, bits, key_type, spare
):
    users = data.draw(hnp.arrays(np.uint64, n, elements=user_values))
    info = np.iinfo(key_type)
    keys = data.draw(hnp.arrays(np.int64, n, elements=st.integers(int(info.min), int(info.max))))
    # Output buffers may be longer than the input (they are reused): only the front is set.
    out_keys = np.full(n + spare, 7, key_type)
    out_users = np.full(n + spare, 9, np.uint64)

    starts = split_by_user_bucket(keys, users, bits, out_keys, out_users)

    buckets = reference_buckets(users, bits)
    order = np.argsort(buckets, kind="stable")
    np.testing.assert_array_equal(out_keys[:n], keys[order].astype(key_type))
    np.testing.assert_array_equal(out_users[:n], users[order])
    assert (out_keys[n:] == 7).all()
    assert (out_users[n:] == 9).all()
    expected_starts = np.concatenate([[0], np.cumsum(np.bincount(buckets, minlength=1 << bits))])
    assert starts.dtype == np.int64
    np.testing.assert_array_equal(starts, expected_starts)
    for b in np.flatnonzero(np.diff(starts)):  # each bucket's rows are its users'
        assert (reference_buckets(out_users[starts[b] : starts[b + 1]], bits) == b).all()


def test_user_bucket_reference_spreads_sequential_ids():
    """Sanity check on the reference itself: sequential ids spread over the buckets."""
    buckets = reference_buckets(np.arange(4096, dtype=np.uint64), 4)
    counts = np.bincount(buckets, minlength=16)
    assert counts.min() > 4096 / 16 / 2
    assert reference_bucket(0, 10) == 0  # the finaliser maps 0 to 0


# --- renumber_key_layers -------------------------------------------------------------


@settings(deadline=None, max_examples=60)
@given(
    data=st.data(),
    n=st.integers(0, 300),
    layers=st.integers(1, 12),
    cells=st.integers(1, 50),
)
def test_renumber_key_layers_matches_numpy(data, n, layers, cells):
    keys = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, layers * cells - 1)))
    layer_map = data.draw(hnp.arrays(np.int64, layers, elements=st.integers(0, 40)))
    expected = layer_map[keys // cells] * cells + keys % cells
    renumber_key_layers(keys, layer_map, cells)
    np.testing.assert_array_equal(keys, expected)


# --- UserSpill against partial_from_taps --------------------------------------------


@st.composite
def spilled_taps(draw):
    """Taps in batches, each batch with its own sorted layer table."""
    names = draw(
        st.lists(st.text("abcxyz", min_size=1, max_size=3), min_size=1, max_size=6, unique=True)
    )
    pool = draw(st.lists(user_values, min_size=1, max_size=60, unique=True))
    n = draw(st.integers(0, 400))
    layer = draw(hnp.arrays(np.int64, n, elements=st.integers(0, len(names) - 1)))
    x = draw(hnp.arrays(np.float64, n, elements=st.floats(0.0, 1.0)))
    y = draw(hnp.arrays(np.float64, n, elements=st.floats(0.0, 1.0)))
    users = np.array(
        draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)), np.uint64
    ).reshape(n)
    n_batches = draw(st.integers(1, 6))
    cuts = sorted(draw(st.lists(st.integers(0, n), min_size=n_batches - 1, max_size=n_batches - 1)))
    bounds = [0, *cuts, n]
    batches = []
    for start, stop in pairwise(bounds):
        used = set(layer[start:stop].tolist())
        extra = draw(st.sets(st.integers(0, len(names) - 1), max_size=2))
        own = sorted({names[i] for i in used | extra})  # the batch's own numbering
        position = {name: i for i, name in enumerate(own)}
        local = np.array([position[names[i]] for i in layer[start:stop].tolist()], np.int64)
        table = pl.DataFrame({"screen": own}, schema={"screen": pl.String})
        batches.append((table, local, x[start:stop], y[start:stop], users[start:stop]))
    part_taps = draw(st.integers(1, 50))
    columns, rows = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return GridSpec(columns, rows), batches, part_taps


def _in_memory(grid, batches):
    """All taps at once, with every layer any batch named, sorted."""
    tables = [table for table, *_ in batches]
    layers = pl.concat(tables).unique().sort("screen")
    position = {name: i for i, name in enumerate(layers["screen"].to_list())}
    layer = np.concatenate(
        [np.zeros(0, np.int64)]
        + [
            np.array([position[s] for s in table["screen"].to_list()], np.int64)[local]
            for table, local, *_ in batches
        ]
    ).astype(np.int64)
    x, y, users = (
        np.concatenate([np.zeros(0, dtype)] + [b[i] for b in batches]).astype(dtype)
        for i, dtype in ((2, np.float64), (3, np.float64), (4, np.uint64))
    )
    return partial_from_taps(grid, layers, layer, x, y, users, chunks=2), users


@settings(deadline=None, max_examples=30)
@given(case=spilled_taps(), data=st.data())
def test_spilled_partial_answers_as_the_in_memory_partial(case, data):
    grid, batches, part_taps = case
    expected, users = _in_memory(grid, batches)
    with (
        tempfile.TemporaryDirectory() as folder,
        mock.patch.object(heatengine.spill, "PART_TAPS", part_taps),
        contextlib.ExitStack() as stack,
    ):
        spill = stack.enter_context(UserSpill(grid, Path(folder)))
        for batch in batches:
            spill.add(*batch)
        spilled = spill.finish(["screen"], chunks=3)

        assert spilled.layers.equals(expected.layers)
        assert spilled.n_keys == expected.n_keys
        for cap in (1, 3):
            got_users, got_taps = spilled.cell_totals(cap)
            want_users, want_taps = expected.cell_totals(cap)
            np.testing.assert_array_equal(got_users, want_users)
            np.testing.assert_array_equal(got_taps, want_taps)

        whole = spilled.whole()
        assert whole.layers.equals(expected.layers)
        for name in ("keys", "users", "taps"):
            np.testing.assert_array_equal(getattr(whole, name), getattr(expected, name))

        n_layers = expected.layers.height
        chosen = np.array(
            sorted(data.draw(st.sets(st.integers(0, max(n_layers - 1, 0)), max_size=n_layers))),
            np.int64,
        )
        mask = data.draw(st.none() | hnp.arrays(np.bool_, expected.n_keys, elements=st.booleans()))
        np.testing.assert_array_equal(
            users_per_layer(spilled, chosen, mask, None),
            users_per_layer(expected, chosen, mask, None),
        )

        # More taps than a part holds, from users of two or more buckets: several parts.
        buckets = set(reference_buckets(users, BUCKET_BITS).tolist())
        assert (spilled.n_parts > 1) == (users.size > part_taps and len(buckets) > 1)


def test_many_users_are_read_in_many_parts(tmp_path, monkeypatch, request):
    rng = np.random.default_rng(5)
    n = 20_000
    grid = GridSpec(6, 5)
    names = ["b", "a", "d", "c"]
    monkeypatch.setattr(heatengine.spill, "PART_TAPS", 500)
    spill = UserSpill(grid, tmp_path)
    request.addfinalizer(spill.close)
    all_layer, all_x, all_y, all_users = [], [], [], []
    for idx in np.array_split(np.arange(n), 5):
        own = sorted(rng.choice(names, 3, replace=False).tolist())
        local = rng.integers(0, 3, idx.size).astype(np.int64)
        x, y = rng.random(idx.size), rng.random(idx.size)
        users = rng.integers(0, 3000, idx.size).astype(np.uint64)
        spill.add(pl.DataFrame({"screen": own}), local, x, y, users)
        all_layer.append(np.array([sorted(names).index(s) for s in own])[local])
        all_x.append(x)
        all_y.append(y)
        all_users.append(users)
    spilled = spill.finish(["screen"])
    expected = partial_from_taps(
        grid,
        pl.DataFrame({"screen": sorted(names)}),
        *(np.concatenate(a) for a in (all_layer, all_x, all_y, all_users)),
    )
    assert spilled.n_parts >= n // 500
    sizes = [keys.size for keys, _ in spilled.user_pairs()]
    assert sum(sizes) == n
    assert max(sizes) <= 500
    seen: set[int] = set()
    for _, users in spilled.user_pairs():  # parts hold disjoint users
        part_users = set(np.unique(users).tolist())
        assert not part_users & seen
        seen |= part_users
    whole = spilled.whole()
    for name in ("keys", "users", "taps"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(expected, name))


def test_an_empty_spill_is_an_empty_partial(tmp_path):
    grid = GridSpec(3, 3)
    with UserSpill(grid, tmp_path) as spill:
        spilled = spill.finish(["screen"])
    assert spilled.layers.height == 0
    assert spilled.layers.columns == ["screen"]
    assert spilled.n_parts == 0
    assert spilled.whole().keys.size == 0
    assert spilled.cell_totals(5)[0].shape == (0, 9)


# --- _bucket_runs --------------------------------------------------------------------


@settings(deadline=None, max_examples=100)
@given(
    data=st.data(),
    n_batches=st.integers(0, 4),
    part_taps=st.integers(1, 40),
)
def test_bucket_runs_are_consecutive_bounded_and_cover_every_tap(data, n_batches, part_taps):
    n_buckets = 1 << BUCKET_BITS
    sparse = st.one_of(st.just(0), st.just(0), st.integers(0, 3), st.integers(0, 60))
    batches = []
    for _ in range(n_batches):
        sizes = data.draw(hnp.arrays(np.int64, n_buckets, elements=sparse))
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        batches.append(_SpilledBatch(0, 0, starts, np.dtype(np.int32)))
    totals = sum((np.diff(b.starts) for b in batches), np.zeros(n_buckets, np.int64))

    with mock.patch.object(heatengine.spill, "PART_TAPS", part_taps):
        runs = _bucket_runs(batches)

    covered = np.zeros(n_buckets, bool)
    for i, (first, stop) in enumerate(runs):
        assert 0 <= first < stop <= n_buckets
        taps = int(totals[first:stop].sum())
        assert taps > 0  # no part is read for nothing
        if np.count_nonzero(totals[first:stop]) > 1:  # only one bucket's taps may be more
            assert taps <= part_taps
        if i + 1 < len(runs):
            assert runs[i + 1][0] == stop  # consecutive
            # Greedy: the next bucket would not have fitted.
            assert taps + int(totals[stop]) > part_taps
        covered[first:stop] = True
    assert covered[totals > 0].all()
    assert sum(int(totals[a:b].sum()) for a, b in runs) == int(totals.sum())


# --- the pipeline --------------------------------------------------------------------


@pytest.fixture(scope="module")
def taps_folder(tmp_path_factory) -> Path:
    """40,000 taps in three Parquet files of uneven size."""
    folder = tmp_path_factory.mktemp("taps")
    taps = generate_taps(40_000, seed=3)
    for i, (start, stop) in enumerate([(0, 9_000), (9_000, 30_500), (30_500, 40_000)]):
        taps.slice(start, stop - start).write_parquet(folder / f"part-{i}.parquet")
    return folder


class _Spy:
    """Records what the spill did, while calling through."""

    def __init__(self, monkeypatch) -> None:
        self.spills: list[SpilledPartial] = []
        self.wholes = 0
        self.adds = 0
        self.files_at_add: list[list[Path]] = []
        self.unlinked_at_add: list[bool] = []
        self.folders: list[Path] = []
        finish, whole, add = UserSpill.finish, SpilledPartial.whole, UserSpill.add

        def spy_finish(spill, *args, **kwargs):
            self.spills.append(finish(spill, *args, **kwargs))
            return self.spills[-1]

        def spy_whole(spilled, *args, **kwargs):
            self.wholes += 1
            return whole(spilled, *args, **kwargs)

        def spy_add(spill, *args, **kwargs):
            add(spill, *args, **kwargs)
            self.adds += 1
            self.folders.append(spill.directory)
            self.files_at_add.append(sorted(spill.directory.iterdir()))
            handles = spill._files
            self.unlinked_at_add.append(
                all(os.fstat(h.fileno()).st_nlink == 0 for h in handles)
                and handles.keys.tell() > 0
                and handles.users.tell() > 0
            )

        monkeypatch.setattr(UserSpill, "finish", spy_finish)
        monkeypatch.setattr(SpilledPartial, "whole", spy_whole)
        monkeypatch.setattr(UserSpill, "add", spy_add)


def forcing_whole_config():
    """True totals and an (n, k) rule that can fire at k = 5 and cap 5."""
    rule = DominanceRule(p=10, n=2, k_percent=60)
    return demo_config(privacy=PrivacyPolicy(k=5, dominance=rule, true_totals=True))


@pytest.mark.parametrize("make_config", [demo_config, forcing_whole_config])
def test_streaming_in_slices_and_parts_equals_the_run_in_memory(
    taps_folder, monkeypatch, make_config
):
    config = make_config()
    expected = aggregate(taps_folder, config, key=KEY)
    monkeypatch.setattr(heatengine.pipeline, "STREAMING_BATCH_ROWS", 3_000)
    monkeypatch.setattr(heatengine.spill, "PART_TAPS", 2_000)
    spy = _Spy(monkeypatch)
    streamed = aggregate(taps_folder, config, key=KEY, streaming=True)

    assert expected.cells.height > 100
    assert_same(expected, streamed)
    assert streamed.stats == expected.stats
    assert streamed.quarantine.sort(pl.all()).equals(expected.quarantine.sort(pl.all()))
    # 9,000 + 21,500 + 9,500 rows in slices of 3,000: 3 + 8 + 4 batches.
    assert spy.adds == 15
    (spilled,) = spy.spills
    assert spilled.n_parts > 10
    if make_config is forcing_whole_config:
        assert spy.wholes >= 1
        assert expected.stats.suppression.cells_suppressed_nk > 0  # the rule did fire
    else:
        assert spy.wholes == 0


def test_spill_folder_is_emptied_after_a_run(taps_folder, tmp_path, monkeypatch):
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    monkeypatch.setattr(heatengine.pipeline, "STREAMING_BATCH_ROWS", 10_000)
    spy = _Spy(monkeypatch)
    aggregate(taps_folder, demo_config(), key=KEY, streaming=True, spill_dir=spill_dir)
    assert spy.adds > 1
    (folder,) = set(spy.folders)
    assert folder.parent == spill_dir
    # Taps were written to files already removed from the folder: freed on any exit.
    assert spy.files_at_add[-1] == []
    assert all(spy.unlinked_at_add)
    assert spill_dir.is_dir()
    assert list(spill_dir.iterdir()) == []


def test_spill_folder_is_emptied_when_a_later_batch_fails(tmp_path, monkeypatch):
    source = tmp_path / "taps"
    source.mkdir()
    clean = [{"user_id": f"u{i}", "x": (i % 10) / 10} for i in range(40)]
    taps_frame(clean).write_parquet(source / "part-0.parquet")
    taps_frame([*clean, {"x": None}]).write_parquet(source / "part-1.parquet")
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    spy = _Spy(monkeypatch)
    config = small_config(k=5, strict=True)
    with pytest.raises(QuarantineError, match="1 rows would be quarantined"):
        aggregate(source, config, key=KEY, streaming=True, spill_dir=spill_dir)
    assert spy.adds == 1  # the first file was spilled before the second failed
    assert spy.folders[0].parent == spill_dir
    assert spy.unlinked_at_add == [True]
    assert spill_dir.is_dir()
    assert list(spill_dir.iterdir()) == []
    # The same input without the bad row goes through.
    (source / "part-1.parquet").unlink()
    result = aggregate(source, config, key=KEY, streaming=True, spill_dir=spill_dir)
    assert result.stats.rows_in == 40
    assert list(spill_dir.iterdir()) == []


def test_spill_dir_needs_streaming_and_an_existing_folder(taps_folder, tmp_path):
    with pytest.raises(HeatengineError, match="only by streaming runs"):
        aggregate(taps_folder, demo_config(), key=KEY, spill_dir=tmp_path)
    with pytest.raises(HeatengineError, match="does not exist"):
        aggregate(taps_folder, demo_config(), key=KEY, streaming=True, spill_dir=tmp_path / "no")


def test_only_parquet_files_and_frames_are_sliced(tmp_path):
    taps = generate_taps(2_500, seed=4)
    taps.write_parquet(tmp_path / "a.parquet", row_group_size=400)
    taps.head(1_500).write_csv(tmp_path / "b.csv")
    taps.clear().write_parquet(tmp_path / "c.parquet")
    pieces = scan_slices(tmp_path, rows=1_000)
    # a.parquet in three near-equal slices, b.csv whole, the empty c.parquet as one
    # empty slice: together every row, in order.
    assert [p.collect().height for p in pieces] == [834, 834, 832, 1_500, 0]
    assert pieces[1].collect()["x"].equals(taps["x"].slice(834, 834))
    assert [p.collect().height for p in scan_slices(taps, rows=1_000)] == [1_000, 1_000, 500]
    assert len(scan_slices(taps.lazy(), rows=1_000)) == 1  # a query's row order may vary


def test_sigterm_unwinds_the_cli(monkeypatch):
    from heatengine import cli

    with pytest.raises(SystemExit) as stopped:
        cli._terminate(signal.SIGTERM, None)
    assert stopped.value.code == 128 + signal.SIGTERM


def test_rows_set_aside_come_back_in_order(tmp_path):
    first = pl.DataFrame({"reason": ["a", "b"], "x": [0.1, None]})
    with UserSpill(GridSpec(2, 2), tmp_path) as spill:
        spill.set_aside(first.clear())  # an empty batch still gives the schema
        assert spill.rows_set_aside().equals(first.clear())
        spill.set_aside(first)
        spill.set_aside(first.reverse())
        back = spill.rows_set_aside()
    assert back.equals(pl.concat([first, first.reverse()]))
    assert list(tmp_path.iterdir()) == []
