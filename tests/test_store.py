"""The store: round trip, determinism, atomic replacement, tamper detection."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

import heatengine
from heatengine import aggregate, read
from heatengine.config import GridSpec
from heatengine.errors import StoreError
from heatengine.store import write_quarantine
from heatengine.synthetic import generate_taps
from tests.factory import KEY, small_config, taps_frame


@pytest.fixture(scope="module")
def heatmaps():
    config = small_config(k=5, grid=GridSpec(8, 16), sigma=1.0, segments=("platform",))
    return aggregate(generate_taps(20_000, seed=9), config, key=KEY)


def test_round_trip(tmp_path, heatmaps):
    heatmaps.write(tmp_path)
    again = read(tmp_path)
    assert again.cells.equals(heatmaps.cells)
    assert again.layers.equals(heatmaps.layers)
    np.testing.assert_array_equal(again.grids, heatmaps.grids)
    private = {"suppressed_tap_share": None, "suppressed_user_share": None}
    # Coverage is written as shares only: the counts behind them stay with the operator.
    shares = {
        what: {
            "coverage": summary["coverage"],
            "layers": [
                {k: v for k, v in layer.items() if k not in ("seen", "consented")}
                for layer in summary["layers"]
            ],
        }
        for what, summary in heatmaps.stats.consent_coverage.items()
    }
    assert again.stats == replace(
        heatmaps.stats,
        suppression=replace(heatmaps.stats.suppression, **private),
        consent_coverage=shares,
    )
    assert again.config == heatmaps.config
    assert again.grid("home", platform="ios").shape == (16, 8)


def test_manifest_records_config_counts_window_and_hashes(tmp_path, heatmaps):
    heatmaps.write(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["heatengine_version"] == heatengine.__version__
    assert manifest["config"]["privacy"]["k"] == 5
    assert manifest["stats"]["rows_in"] == 20_000
    assert manifest["stats"]["suppression"]["cells_published"] == heatmaps.cells.height
    # sums over suppressed cells stay out of the store (they would reveal hidden cells)
    assert "suppressed_tap_share" not in manifest["stats"]["suppression"]
    assert manifest["window"] == {
        "start": "2026-10-31T00:00:00+00:00",
        "end": "2026-11-30T00:00:00+00:00",
    }
    for name in ("cells.parquet", "grids.npz"):
        digest = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert manifest["files"][name]["sha256"] == digest


def test_writes_are_deterministic(tmp_path, heatmaps):
    heatmaps.write(tmp_path / "a")
    heatmaps.write(tmp_path / "b")
    for name in ("cells.parquet", "grids.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_failed_write_leaves_the_previous_store_intact(tmp_path, heatmaps, monkeypatch):
    heatmaps.write(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    small = aggregate(taps_frame([{"user_id": f"u{i}"} for i in range(5)]), small_config(), key=KEY)

    def broken(path, arrays):
        path.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("heatengine.store.write_npz", broken)
    with pytest.raises(OSError, match="No space"):
        small.write(tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # no temporary file left behind either
    assert read(tmp_path).cells.equals(heatmaps.cells)


def test_tampering_and_missing_files_are_detected(tmp_path, heatmaps):
    heatmaps.write(tmp_path)
    cells = tmp_path / "cells.parquet"
    cells.write_bytes(cells.read_bytes()[:-1] + b"\0")
    with pytest.raises(StoreError, match=r"cells\.parquet does not match its manifest hash"):
        read(tmp_path)
    cells.unlink()
    with pytest.raises(StoreError, match=r"incomplete: cells\.parquet is missing"):
        read(tmp_path)
    with pytest.raises(StoreError, match="not a heatengine store"):
        read(tmp_path / "nowhere")


def test_a_run_with_nothing_published_round_trips(tmp_path):
    empty = aggregate(taps_frame([{}]), small_config(), key=KEY)
    assert empty.layers.height == 0
    empty.write(tmp_path)
    again = read(tmp_path)
    assert again.layers.height == 0
    assert again.grids.shape == (0, 4, 4)


def test_quarantine_file_has_reasons_and_no_user_column(tmp_path):
    import polars as pl

    result = aggregate(taps_frame([{"x": None}, {"screen": None}, {}]), small_config(k=1), key=KEY)
    assert write_quarantine(result, tmp_path / "q.csv") == 2
    frame = pl.read_csv(tmp_path / "q.csv")
    assert sorted(frame["reason"].to_list()) == ["missing_coordinate", "missing_screen"]
    assert "user_id" not in frame.columns
