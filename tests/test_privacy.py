"""Privacy properties: k users per published cell, no leak from suppressed cells, no ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heatengine import aggregate, render_png
from heatengine.privacy import suppress_sparse_cells
from heatengine.pseudonym import pseudonymise_ids
from heatengine.store import write_quarantine
from tests import reference
from tests.factory import KEY, small_config, taps_frame

K = 3
SIDE = 4
SPOTS = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
USERS = [f"raw-user-{i:03d}-zq" for i in range(10)]
SCREENS = ["home", "cart"]


def config(sigma: float = 1.0):
    return small_config(k=K, sigma=sigma)


tap = st.fixed_dictionaries(
    {
        "screen": st.sampled_from(SCREENS),
        "x": st.sampled_from(SPOTS),
        "y": st.sampled_from(SPOTS),
        "user_id": st.sampled_from(USERS),
    }
)


def reference_cells(rows: list[dict]) -> pl.DataFrame:
    """Distinct users per (screen, cell) straight from the rows."""
    if not rows:
        return pl.DataFrame(schema={"screen": pl.String, "cell": pl.Int64, "users": pl.UInt32})
    frame = pl.DataFrame(rows)
    cells = reference.cell_of(frame["x"].to_numpy(), frame["y"].to_numpy(), SIDE, SIDE)
    return (
        frame.with_columns(cell=pl.Series(cells))
        .group_by("screen", "cell")
        .agg(users=pl.col("user_id").n_unique())
    )


@settings(deadline=None)
@given(st.lists(tap, max_size=150))
def test_every_published_cell_has_at_least_k_users_and_no_qualifying_cell_is_hidden(rows):
    result = aggregate(taps_frame(rows), config(), key=KEY)
    truth = reference_cells(rows)
    published = result.cells.with_columns(cell=pl.col("cy") * SIDE + pl.col("cx"))
    assert (published["users"] >= K).all()
    joined = published.join(truth, on=["screen", "cell"], suffix="_true")
    assert joined.height == published.height
    assert (joined["users"] == joined["users_true"]).all()
    assert published.height == truth.filter(pl.col("users") >= K).height


@st.composite
def suppressed_difference(draw):
    """Base rows, plus extra taps that stay inside one cell with fewer than K users."""
    rows = draw(st.lists(tap, max_size=120))
    screen = draw(st.sampled_from(SCREENS))
    x, y = draw(st.sampled_from(SPOTS)), draw(st.sampled_from(SPOTS))
    cell = int(reference.cell_of(np.array([x]), np.array([y]), SIDE, SIDE)[0])
    in_cell = {
        r["user_id"]
        for r in rows
        if r["screen"] == screen
        and int(reference.cell_of(np.array([r["x"]]), np.array([r["y"]]), SIDE, SIDE)[0]) == cell
    }
    if len(in_cell) >= K:
        # Move the target to a cell the base rows never touch, on a new screen.
        screen, in_cell = "ghost", set()
    room = K - 1 - len(in_cell)
    newcomers = [f"newcomer-{i}" for i in range(room)]
    pool = sorted(in_cell) + newcomers
    extra_users = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=8)) if pool else []
    extra = [{"screen": screen, "x": x, "y": y, "user_id": u} for u in extra_users]
    return rows, rows + extra


def written_bytes(result, directory: Path) -> tuple[dict[str, bytes], dict]:
    """Bytes of the published files, and the manifest (which also holds row counts)."""
    result.write(directory)
    for i in range(result.layers.height):
        render_png(result, i, directory / f"layer-{i}.png")
    files = {p.name: p.read_bytes() for p in sorted(directory.iterdir())}
    return files, json.loads(files.pop("manifest.json"))


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suppressed_difference())
def test_taps_inside_suppressed_cells_change_no_published_byte(tmp_path_factory, case):
    base, changed = case
    one, one_manifest = written_bytes(
        aggregate(taps_frame(base), config(), key=KEY), tmp_path_factory.mktemp("a")
    )
    two, two_manifest = written_bytes(
        aggregate(taps_frame(changed), config(), key=KEY), tmp_path_factory.mktemp("b")
    )
    assert one == two
    # The manifest's row counts may differ; everything it says about published cells not.
    manifests = (one_manifest, two_manifest)
    assert manifests[0]["layers"] == manifests[1]["layers"]
    published = ("cells_published", "layers_published")
    for name in published:
        values = {m["stats"]["suppression"][name] for m in manifests}
        assert len(values) == 1
    assert manifests[0]["stats"]["published_taps"] == manifests[1]["stats"]["published_taps"]


def test_suppressed_cells_do_not_leak_through_smoothing():
    """A halo would appear around a suppressed cell if smoothing ran before suppression."""
    crowd = [{"x": 0.1, "y": 0.1, "user_id": f"c{i}"} for i in range(K)]
    lonely = [{"x": 0.9, "y": 0.9, "user_id": "lonely"}]
    result = aggregate(taps_frame(crowd + lonely), config(sigma=1.0), key=KEY)
    grid = result.grid("home")
    assert grid[3, 3] < grid[0, 0] / 100  # only the far tail of the crowd's blur


def test_no_raw_id_or_pseudonym_in_any_written_file(tmp_path):
    rows = [{"x": (i % 4) / 4 + 0.1, "y": 0.2, "user_id": USERS[i % len(USERS)]} for i in range(80)]
    rows += [{"x": None, "user_id": USERS[0]}]  # quarantined, written separately
    result = aggregate(taps_frame(rows), config(), key=KEY)
    assert result.cells.height > 0
    files, _ = written_bytes(result, tmp_path / "store")
    files["manifest.json"] = (tmp_path / "store" / "manifest.json").read_bytes()
    write_quarantine(result, tmp_path / "quarantine.parquet")
    files["quarantine.parquet"] = (tmp_path / "quarantine.parquet").read_bytes()
    tokens = pseudonymise_ids(pl.Series(USERS), KEY)
    needles = [u.encode() for u in USERS]
    for token in tokens.tolist():
        needles += [
            token.to_bytes(8, "big"),
            token.to_bytes(8, "little"),
            str(token).encode(),
            f"{token:016x}".encode(),
        ]
    for name, data in files.items():
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {name}"


def test_suppress_sparse_cells_statistics():
    users = np.array([[12, 3, 0, 10], [2, 0, 0, 0]])
    taps = np.array([[40, 9, 0, 10], [5, 0, 0, 0]])
    u, t, layers, stats = suppress_sparse_cells(users, taps, k=10)
    assert u.tolist() == [[12, 0, 0, 10], [0, 0, 0, 0]]
    assert t.tolist() == [[40, 0, 0, 10], [0, 0, 0, 0]]
    assert layers.tolist() == [True, False]
    assert (stats.cells_nonempty, stats.cells_published, stats.cells_suppressed) == (4, 2, 2)
    assert (stats.layers_seen, stats.layers_published, stats.layers_suppressed) == (2, 1, 1)
    assert stats.suppressed_tap_share == pytest.approx(14 / 64)
    assert stats.suppressed_user_share == pytest.approx(5 / 27)
