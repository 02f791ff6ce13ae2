"""UI elements, route cleaning and the PII scan through aggregate, the store, the CLI and nightly.

Element figures are checked against a Polars reference built from the raw taps and the
published cells only (cells with at least k users after suppression).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image
from polars.testing import assert_frame_equal

from heatengine import aggregate
from heatengine.cli import main
from heatengine.config import AggregateConfig, GridSpec, PrivacyPolicy
from heatengine.dp import DPPolicy
from heatengine.elements import demo_elements
from heatengine.legend import layer_caption
from heatengine.nightly import run_nightly
from heatengine.pii import leaked_values
from heatengine.pseudonym import PseudonymKey
from heatengine.schema import MISSING_SEGMENT
from heatengine.smooth import TRUNCATE, smooth_grids
from heatengine.store import read
from heatengine.synthetic import generate_taps
from tests import reference
from tests.factory import KEY, taps_frame

K = 5
CAP = 5  # PrivacyPolicy's default max_taps_per_user_cell
GRID = GridSpec(4, 4)
LAYER_COLUMNS = ["screen", "platform"]
KEY_TEXT = "elements pipeline test key: more than thirty-two bytes"

# On a 4 x 4 grid, cell centres lie at 0.125, 0.375, 0.625 and 0.875.
HOME_ELEMENTS = (
    ("home", "header", 0.0, 0.0, 1.0, 0.25),  # row 0
    ("home", "card", 0.5, 0.25, 1.0, 0.75),  # (2, 1), (3, 1), (2, 2), (3, 2)
    ("home", "buy", 0.0, 0.5, 0.5, 0.75),  # (0, 2), (1, 2)
    ("home", "footer", 0.0, 0.75, 1.0, 1.0),  # row 3
    ("home", "fab", 0.75, 0.75, 1.0, 1.0),  # (3, 3), inside the footer
    ("ghost", "menu", 0.0, 0.0, 0.5, 0.5),  # a screen nobody tapped
)
# Dead cells of home: (0, 1) and (1, 1).


def config(**options) -> AggregateConfig:
    defaults = {
        "grid": GRID,
        "privacy": PrivacyPolicy(k=K),
        "sigma": 0.0,
        "segments": ("platform",),
        "elements": HOME_ELEMENTS,
        "as_of": datetime(2026, 11, 30, tzinfo=UTC),
    }
    return AggregateConfig(**{**defaults, **options})


def cell(cx: int, cy: int, users, *, taps: int = 1, screen="home", platform="ios") -> list[dict]:
    """``taps`` taps at the centre of cell (cx, cy) of a 4 x 4 grid for each user."""
    point = {"x": (cx + 0.5) / 4, "y": (cy + 0.5) / 4, "screen": screen, "platform": platform}
    return [{**point, "user_id": user} for user in users for _ in range(taps)]


def ids(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i}" for i in range(start, start + n)]


@pytest.fixture(scope="module")
def taps() -> pl.DataFrame:
    rows = [
        # home / ios: every case
        *cell(0, 0, ids("i", 6)),  # header, published
        *cell(0, 0, ["i0"], taps=7),  # i0 has 8 taps there: capped at 5
        *cell(1, 0, ids("i", 5, 3)),  # header, published, users overlap (0, 0)
        *cell(0, 2, [*ids("i", 5), "i8"]),  # buy, published
        *cell(1, 2, ids("s", 3), taps=2),  # buy, suppressed: must not count
        *cell(2, 1, ids("i", 4)),  # card's only cell, suppressed: card never appears
        *cell(3, 3, ids("i", 5, 5)),  # footer and fab, published
        *cell(0, 3, ids("j", 5)),  # footer only, published
        *cell(0, 1, [*ids("i", 5), "d0"], taps=2),  # dead, published
        *cell(1, 1, ["d1", "d2"], taps=3),  # dead, suppressed: must not count
        # home / android: one published header cell, a suppressed buy cell, no dead taps
        *cell(0, 0, ids("a", 5), platform="android"),
        *cell(1, 2, ids("a", 3), platform="android"),
        # home / no platform (a layer of its own): dead taps only, every element suppressed
        *cell(1, 1, ids("n", 5), platform=None),
        # home / web: below k, never published
        *cell(0, 0, ids("w", 3), platform="web"),
        # settings / ios: published, but its screen has no elements
        *cell(2, 2, ids("i", 5), screen="settings"),
    ]
    return taps_frame(rows)


@pytest.fixture(scope="module")
def heatmaps(taps):
    return aggregate(taps, config(), key=KEY)


# --- The slow twin ------------------------------------------------------------------


def covered_cells(elements, grid: GridSpec) -> pl.DataFrame:
    """(screen, element, cx, cy) for every cell whose centre lies in [x0, x1) x [y0, y1)."""
    rows = [
        (screen, element, cx, cy)
        for screen, element, x0, y0, x1, y1 in elements
        for cy in range(grid.rows)
        for cx in range(grid.columns)
        if x0 <= (cx + 0.5) / grid.columns < x1 and y0 <= (cy + 0.5) / grid.rows < y1
    ]
    schema = {"screen": pl.String, "element": pl.String, "cx": pl.Int64, "cy": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def published_contributions(taps: pl.DataFrame, grid: GridSpec, k: int, cap: int):
    """One row per (layer, cell, user) in cells with at least k users, taps capped."""
    per_user = (
        taps.with_columns(
            pl.col("platform").fill_null(MISSING_SEGMENT),
            cx=(pl.col("x") * grid.columns).floor().cast(pl.Int64).clip(0, grid.columns - 1),
            cy=(pl.col("y") * grid.rows).floor().cast(pl.Int64).clip(0, grid.rows - 1),
        )
        .group_by(*LAYER_COLUMNS, "cx", "cy", "user_id")
        .agg(capped=pl.len().clip(upper_bound=cap).cast(pl.Int64))
    )
    cell_users = pl.col("user_id").n_unique().over(*LAYER_COLUMNS, "cx", "cy")
    return per_user.filter(cell_users >= k)


def reference_tables(taps, elements, grid: GridSpec, k: int, cap: int):
    """Elements (layer columns, element, users, taps, layer_users, engagement) and dead
    taps per layer of a screen with elements, from published cells only."""
    published = published_contributions(taps, grid, k, cap)
    covers = covered_cells(elements, grid)
    layers = published.group_by(LAYER_COLUMNS).agg(
        layer_users=pl.col("user_id").n_unique().cast(pl.Int64),
        layer_taps=pl.col("capped").sum(),
    )
    per_element = (
        published.join(covers, on=["screen", "cx", "cy"])
        .group_by(*LAYER_COLUMNS, "element")
        .agg(users=pl.col("user_id").n_unique().cast(pl.Int64), taps=pl.col("capped").sum())
        .join(layers, on=LAYER_COLUMNS, nulls_equal=True)
        .filter(pl.col("users") >= k)
        .filter(
            (pl.col("layer_users") == pl.col("users"))
            | (pl.col("layer_users") - pl.col("users") >= k)
        )
        .with_columns(engagement=pl.col("users") / pl.col("layer_users"))
    )
    cells_of = {
        (r["screen"], r["element"]): {(x, y) for x, y in zip(r["cx"], r["cy"], strict=True)}
        for r in covers.group_by("screen", "element").agg("cx", "cy").iter_rows(named=True)
    }
    names = pl.DataFrame([e[:2] for e in elements], schema=["screen", "element"], orient="row")
    per_element = reference.drop_small_nested_differences(
        per_element, LAYER_COLUMNS, names, cells_of, k
    )
    dead = (
        published.join(covers, on=["screen", "cx", "cy"], how="anti")
        .group_by(LAYER_COLUMNS)
        .agg(dead_taps=pl.col("capped").sum())
    )
    screens = covers["screen"].unique().implode()
    per_layer = (
        layers.filter(pl.col("screen").is_in(screens))
        .join(dead, on=LAYER_COLUMNS, how="left", nulls_equal=True)
        .with_columns(pl.col("dead_taps").fill_null(0))
        .with_columns(dead_tap_share=pl.col("dead_taps") / pl.col("layer_taps"))
    )
    return per_element, per_layer, published


def by_layer(frame: pl.DataFrame, *more: str) -> pl.DataFrame:
    return frame.sort(*LAYER_COLUMNS, *more, nulls_last=True)


# --- 1. Engagement per element --------------------------------------------------------


def test_published_cells_are_those_with_k_users(taps, heatmaps):
    """The reference's premise: no dominance rule hides a cell of this input."""
    _, _, published = reference_tables(taps, HOME_ELEMENTS, GRID, K, CAP)
    expected = by_layer(published.select(*LAYER_COLUMNS, "cx", "cy").unique(), "cx", "cy")
    got = heatmaps.cells.select(*LAYER_COLUMNS, pl.col("cx", "cy").cast(pl.Int64))
    assert_frame_equal(by_layer(got, "cx", "cy"), expected)


@pytest.mark.parametrize("chunks", [1, 3])
def test_elements_equal_the_reference_from_published_cells(taps, chunks):
    heatmaps = aggregate(taps, config(), key=KEY, chunks=chunks)
    expected, _, _ = reference_tables(taps, HOME_ELEMENTS, GRID, K, CAP)
    expected = expected.join(
        heatmaps.layers.select("layer", *LAYER_COLUMNS), on=LAYER_COLUMNS, nulls_equal=True
    )
    columns = ["layer", *LAYER_COLUMNS, "element", "users", "taps", "engagement"]
    assert_frame_equal(
        by_layer(heatmaps.elements.select(columns), "element"),
        by_layer(expected.select(columns), "element"),
    )
    # engagement is over the layer's published users, as the layers table gives them
    joined = heatmaps.elements.join(heatmaps.layers, on="layer", suffix="_layer")
    assert (joined["screen_users"] == joined["users_layer"]).all()
    assert_frame_equal(
        joined.select("engagement"),
        joined.select(engagement=pl.col("users") / pl.col("users_layer")),
    )


def test_a_suppressed_cell_counts_for_no_element(heatmaps):
    """buy covers a published cell (6 users, 6 taps) and a suppressed one (3 other users,
    6 taps): only the published cell counts."""
    ios = heatmaps.elements.filter(pl.col("platform") == "ios")
    buy = ios.filter(pl.col("element") == "buy").row(0, named=True)
    assert (buy["users"], buy["taps"]) == (6, 6)
    header = ios.filter(pl.col("element") == "header").row(0, named=True)
    assert (header["users"], header["taps"]) == (8, 6 + 4 + 5)  # i0's 8 taps capped at 5
    footer, fab = (ios.filter(pl.col("element") == e).row(0, named=True) for e in ("footer", "fab"))
    assert (footer["users"], footer["taps"], fab["users"], fab["taps"]) == (10, 10, 5, 5)


def test_elements_and_layers_below_k_never_appear(heatmaps):
    shown = set(heatmaps.elements.select(*LAYER_COLUMNS, "element").iter_rows())
    assert ("home", "ios", "card") not in shown  # its only cell had 4 users
    assert ("home", "android", "buy") not in shown  # its only cell had 3 users
    assert not any(platform == MISSING_SEGMENT for _, platform, _ in shown)  # dead taps only
    assert not any(screen == "ghost" for screen, _, _ in shown)
    assert (heatmaps.elements["users"] >= K).all()
    for frame in (heatmaps.layers, heatmaps.elements):
        assert "web" not in frame["platform"].to_list()
    assert set(heatmaps.elements["layer"]) <= set(heatmaps.layers["layer"])
    # home has 5 elements: ios hides card, android shows only the header, null shows none
    home = heatmaps.layers.filter(pl.col("screen") == "home")
    assert dict(zip(home["platform"], home["elements_suppressed"], strict=True)) == {
        "android": 4,
        "ios": 1,
        MISSING_SEGMENT: 5,
    }


# --- 2. Dead taps ---------------------------------------------------------------------


def test_dead_taps_equal_the_reference(taps, heatmaps):
    _, expected, _ = reference_tables(taps, HOME_ELEMENTS, GRID, K, CAP)
    got = heatmaps.layers.filter(pl.col("screen") == "home").select(
        *LAYER_COLUMNS, "dead_taps", "dead_tap_share"
    )
    assert_frame_equal(
        by_layer(got), by_layer(expected.select(*LAYER_COLUMNS, "dead_taps", "dead_tap_share"))
    )
    ios = got.filter(pl.col("platform") == "ios").row(0, named=True)
    assert ios["dead_taps"] == 12  # (1, 1) was suppressed: its 6 taps do not count
    layer_taps = heatmaps.layers.filter(pl.col("platform") == "ios", pl.col("screen") == "home")
    assert ios["dead_tap_share"] == pytest.approx(12 / layer_taps["taps"].item())


def test_dead_cells_are_the_cells_no_element_covers(heatmaps):
    dead = np.zeros((4, 4), bool)
    dead[1, 0] = dead[1, 1] = True  # [cy, cx]
    for i, screen in enumerate(heatmaps.layers["screen"]):
        expected = dead.ravel() if screen == "home" else np.zeros(16, bool)
        np.testing.assert_array_equal(heatmaps.dead_cells[i], expected)
    assert heatmaps.dead_cells.shape == (heatmaps.layers.height, GRID.cells)


def test_caption_of_a_screen_without_elements_does_not_claim_k_suppression(heatmaps):
    """settings has 5 users (k = 5) in its one cell, but no element is defined for it.

    Its dead_tap_share is null because the screen has no elements, not because fewer
    than k users tapped dead cells; the caption should not say the latter.
    """
    index = heatmaps.layers["screen"].to_list().index("settings")
    caption = layer_caption(heatmaps, index)[-1]
    assert "fewer than k users" not in caption, caption


# --- 3. The store ---------------------------------------------------------------------


def test_store_round_trip_keeps_elements_dead_cells_and_layers(heatmaps, tmp_path):
    heatmaps.write(tmp_path)
    back = read(tmp_path)
    assert (tmp_path / "elements.parquet").is_file()
    assert back.config == heatmaps.config
    assert back.config.elements == heatmaps.config.elements
    assert_frame_equal(back.elements, heatmaps.elements)
    assert back.dead_cells.dtype == np.bool_
    np.testing.assert_array_equal(back.dead_cells, heatmaps.dead_cells)
    assert {"dead_taps", "dead_tap_share", "elements_suppressed"} <= set(back.layers.columns)
    assert_frame_equal(back.layers, heatmaps.layers)
    assert_frame_equal(back.cells, heatmaps.cells)
    np.testing.assert_array_equal(back.grids, heatmaps.grids)
    np.testing.assert_array_equal(back.dead_taps_view().grids, heatmaps.dead_taps_view().grids)


def test_store_round_trip_with_no_published_layer(tmp_path):
    few = taps_frame(cell(0, 0, ids("i", 3)))
    heatmaps = aggregate(few, config(), key=KEY)
    assert heatmaps.layers.height == 0
    assert heatmaps.elements.height == 0
    assert heatmaps.dead_cells.shape == (0, GRID.cells)
    heatmaps.write(tmp_path)
    back = read(tmp_path)
    assert back.elements.height == 0
    assert back.dead_cells.shape == (0, GRID.cells)
    assert_frame_equal(back.layers, heatmaps.layers)


def test_config_elements_survive_to_dict_and_from_dict():
    original = config()
    data = json.loads(json.dumps(original.to_dict()))
    assert data["elements"] == [list(e) for e in original.elements]
    back = AggregateConfig.from_dict(data)
    assert back == original
    assert back.elements == original.elements
    assert AggregateConfig.from_dict(config(elements=()).to_dict()).elements == ()


# --- 4. Configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("elements", "message"),
    [
        ((("home", "b", 0.5, 0.0, 0.4, 1.0),), "column 'x1' is not greater than x0 in 1 row"),
        ((("home", "b", 0.5, 0.0, 0.5, 1.0),), "column 'x1' is not greater than x0"),
        ((("home", "b", 0.0, 0.6, 1.0, 0.5),), "column 'y1' is not greater than y0"),
        ((("home", "b", -0.1, 0.0, 0.5, 1.0),), "column 'x0' lies outside the screen (0 to 1)"),
        ((("home", "b", 0.0, 0.0, 1.5, 1.0),), "column 'x1' lies outside the screen (0 to 1)"),
        ((("home", "b", 0.0, 0.0, 0.5, 1.01),), "column 'y1' lies outside the screen (0 to 1)"),
        (
            (("home", "b", 0.0, 0.0, 0.5, 0.5), ("home", "b", 0.5, 0.5, 1.0, 1.0)),
            "column 'element' repeats a name within its screen in 2 rows",
        ),
        ((("", "b", 0.0, 0.0, 0.5, 0.5),), "column 'screen' is missing or blank"),
        ((("home", "b", float("nan"), 0.0, 0.5, 0.5),), "column 'x0' is not finite"),
        ((("home", "b", 0.0, 0.0, 0.5),), "elements must be (screen, element, x0, y0, x1, y1)"),
    ],
)
def test_bad_element_rows_are_refused_with_the_problem_named(elements, message):
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        config(elements=elements)
    assert "elements" in str(caught.value)


def test_the_same_element_name_on_two_screens_is_fine():
    both = (("home", "b", 0.0, 0.0, 0.5, 0.5), ("settings", "b", 0.0, 0.0, 0.5, 0.5))
    assert len(config(elements=both).elements) == 2


def test_elements_with_dp_are_refused():
    dp = DPPolicy(epsilon=1.0, delta=1e-6, max_cells_per_user=8, max_taps_per_cell=3)
    with pytest.raises(ValueError, match="element engagement is published under k-anonymity"):
        config(dp=dp)
    assert config(dp=dp, elements=()).dp == dp  # dp alone is fine


# --- 5. The dead-tap view -------------------------------------------------------------


@pytest.mark.parametrize("measure", ["users", "taps"])
def test_dead_taps_view_is_smoothed_from_dead_published_cells_only(measure):
    grid, sigma = GridSpec(16, 16), 1.0

    def at(cx, cy, users, taps=1):
        point = {"x": (cx + 0.5) / 16, "y": (cy + 0.5) / 16, "screen": "home"}
        return [{**point, "user_id": u} for u in users for _ in range(taps)]

    frame = taps_frame(
        [
            *at(1, 1, ids("u", 40), taps=3),  # a busy button
            *at(2, 1, ids("u", 30)),
            *at(14, 13, ids("u", 6), taps=2),  # dead, published
            *at(8, 2, ids("v", 3)),  # dead, suppressed
        ]
    )
    elements = (("home", "button", 0.0, 0.0, 0.25, 0.25),)  # cells 0..3 x 0..3
    heatmaps = aggregate(
        frame,
        config(grid=grid, sigma=sigma, measure=measure, segments=(), elements=elements),
        key=KEY,
    )
    view = heatmaps.dead_taps_view()
    assert view.view == "dead taps"
    assert view.grids.shape == heatmaps.grids.shape

    dead = heatmaps.dead_cells.reshape(-1, 16, 16)
    counts = np.zeros((1, 16, 16))
    for row in heatmaps.cells.iter_rows(named=True):
        counts[0, row["cy"], row["cx"]] = row[measure]
    np.testing.assert_allclose(view.grids, smooth_grids(counts * dead, sigma))

    # Zero beyond the kernel's reach (TRUNCATE sigma) of every dead published cell.
    radius = int(TRUNCATE * sigma + 0.5)
    sources = np.argwhere((counts * dead)[0] > 0)
    assert sources.tolist() == [[13, 14]]
    cy, cx = np.indices((16, 16))
    reach = np.zeros((16, 16), bool)
    for y, x in sources:
        reach |= (np.abs(cy - y) <= radius) & (np.abs(cx - x) <= radius)
    assert (view.grids[0][~reach] == 0).all()
    assert view.grids[0][1, 1] == 0  # the busy button does not leak into the dead view
    assert view.grids[0][13, 14] > 0
    assert view.layers["peak"].item() == pytest.approx(view.grids[0].max())


def test_dead_taps_view_needs_elements(taps):
    plain = aggregate(taps, config(elements=()), key=KEY)
    assert plain.elements is None
    assert plain.dead_cells is None
    with pytest.raises(ValueError, match="dead taps need UI elements"):
        plain.dead_taps_view()


# --- 6 and 7. The command line --------------------------------------------------------


def write_key(folder: Path) -> Path:
    key = folder / "key"
    key.write_text(KEY_TEXT)
    return key


def cli_taps(folder: Path) -> Path:
    rows = [
        *cell(0, 0, ids("h", 8), platform=None),  # logo
        *cell(3, 3, ids("h", 6), platform=None),  # dead
        *cell(0, 0, ids("s", 6), screen="settings", platform=None),
    ]
    path = folder / "taps.parquet"
    taps_frame(rows).drop("platform").write_parquet(path)
    return path


PIXEL_ELEMENTS = [  # a 400 x 800 viewport: cells of 100 x 200 pixels
    {"screen": "home", "element": "logo", "left": 0, "top": 0, "width": 200, "height": 200,
     "viewport_width": 400, "viewport_height": 800},
    {"screen": "home", "element": "menu", "left": 200, "top": 200, "width": 200,
     "height": 200, "viewport_width": 400, "viewport_height": 800},
]  # fmt: skip


def write_elements(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        pl.DataFrame(rows).write_csv(path)
    return path


def aggregate_args(taps: Path, store: Path, key: Path, *more: str) -> list[str]:
    return ["aggregate", str(taps), "--out", str(store), "--key-file", str(key), "--k", "5",
            "--as-of", "2026-11-30", "--grid", "4x4", *more]  # fmt: skip


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_cli_aggregate_with_elements(suffix, tmp_path, capsys):
    elements = write_elements(tmp_path / f"elements{suffix}", PIXEL_ELEMENTS)
    store, png = tmp_path / "store", tmp_path / "png"
    args = aggregate_args(cli_taps(tmp_path), store, write_key(tmp_path))
    assert main([*args, "--elements", str(elements), "--png", str(png)]) == 0, capsys.readouterr()
    assert (store / "elements.parquet").is_file()
    back = read(store)
    assert back.elements.select("screen", "element", "users", "taps").rows() == [
        ("home", "logo", 8, 8)
    ]
    assert back.config.elements == (
        ("home", "logo", 0.0, 0.0, 0.5, 0.25),
        ("home", "menu", 0.5, 0.25, 1.0, 0.5),
    )
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["config"]["elements"][0] == ["home", "logo", 0.0, 0.0, 0.5, 0.25]
    stems = {"home", "settings"}
    assert len(manifest["layers"]) == len(stems)
    dead = sorted(p.name for p in png.glob("*_dead-taps.png"))
    assert dead == ["home_dead-taps.png"]  # settings has no elements, so no dead taps
    index = (png / "index.html").read_text()
    assert "dead taps" in index
    assert "top:" in index
    assert "dead taps 42.9%" in index  # 6 of home's 14 taps are outside its elements
    assert "logo 100%" in index


def test_cli_scans_every_published_store_file_for_personal_data(tmp_path, capsys):
    """The PII scan covers "every file they publish": elements.parquet is one of them."""
    elements = write_elements(tmp_path / "elements.csv", PIXEL_ELEMENTS)
    store, png = tmp_path / "store", tmp_path / "png"
    args = aggregate_args(cli_taps(tmp_path), store, write_key(tmp_path))
    assert main([*args, "--elements", str(elements), "--png", str(png)]) == 0
    capsys.readouterr()
    entry = json.loads((store / "audit.jsonl").read_text().splitlines()[-1])
    published = [p for p in store.iterdir() if p.name != "audit.jsonl"]
    published += [p for p in png.rglob("*") if p.is_file()]
    assert "elements.parquet" in {p.name for p in published}
    assert entry["pii_outputs"]["clean"] is True
    assert entry["pii_outputs"]["files_scanned"] == len(published)


BAD_ELEMENT_FILES = [
    ("missing.csv", None, "cannot read the elements file"),
    ("elements.txt", "screen,element\n", "elements must be a .csv or .json file"),
    ("elements.json", "[{", "not valid JSON"),
    ("elements.csv", "screen,element,left,top\nhome,logo,0,0\n", "missing columns 'width'"),
    (
        "elements.csv",
        "screen,element,left,top,width,height,viewport_width,viewport_height\n"
        "home,logo,300,0,200,100,400,800\n",
        "column 'width' reaches outside the screen (left + width > viewport_width)",
    ),
    (
        "elements.json",
        json.dumps([PIXEL_ELEMENTS[0], PIXEL_ELEMENTS[0]]),
        "column 'element' repeats a name within its screen in 2 rows",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD_ELEMENT_FILES)
def test_cli_bad_elements_file_is_one_line_naming_the_file(name, text, message, tmp_path, capsys):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    args = aggregate_args(cli_taps(tmp_path), tmp_path / "store", write_key(tmp_path))
    code = main([*args, "--elements", str(path)])
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1
    assert errors[0].startswith("heatengine: error: ")
    assert str(path) in errors[0]
    assert message in errors[0]
    assert not (tmp_path / "store" / "manifest.json").exists()


def test_cli_bad_elements_file_as_a_user_sees_it(tmp_path):
    path = write_elements(tmp_path / "bad.json", [{**PIXEL_ELEMENTS[0], "width": 0}])
    args = aggregate_args(cli_taps(tmp_path), tmp_path / "store", write_key(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "heatengine.cli", *args, "--elements", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1
    assert errors[0].startswith(f"heatengine: error: {path}: column 'width' is not positive")


def test_cli_refuses_elements_with_dp(tmp_path, capsys):
    elements = write_elements(tmp_path / "elements.csv", PIXEL_ELEMENTS)
    args = aggregate_args(cli_taps(tmp_path), tmp_path / "store", write_key(tmp_path))
    assert (
        main([*args, "--elements", str(elements), "--privacy", "dp", "--budget-epsilon", "4"]) == 2
    )
    assert "element engagement is published under k-anonymity" in capsys.readouterr().err


def text_without_css(path: Path) -> str:
    return re.sub(r"<style>.*?</style>", "", path.read_text(), flags=re.DOTALL)


def strings_in(path: Path) -> list[str]:
    """The text a published file carries, decoded."""
    if path.suffix in (".json", ".jsonl", ".html"):
        return [text_without_css(path)]
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
        texts = frame.select(pl.col(pl.String)).unpivot()["value"].drop_nulls().to_list()
        return [*frame.columns, *texts]
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return list(archive.files)
    if path.suffix == ".png":
        with Image.open(path) as image:
            return [f"{k}={v}" for k, v in image.info.items() if isinstance(v, str)]
    raise AssertionError(f"unexpected output {path}")


ROUTES = ("/u/a@b.com/orders/123", "/u/c@d.org/orders/456")


def route_taps(folder: Path, files: int) -> Path:
    """Both routes in every file (rows dealt out in turn); the folder, or the one file."""
    rows = [
        *cell(0, 0, ids("a", 5), screen=ROUTES[0]),
        *cell(0, 0, ids("c", 5), screen=ROUTES[1]),
        *cell(2, 2, ids("a", 5), screen=ROUTES[1]),
    ]
    frame = taps_frame(rows).drop("platform")
    if files == 1:
        frame.write_parquet(folder / "taps.parquet")
        return folder / "taps.parquet"
    (folder / "taps").mkdir()
    for i in range(files):
        frame.gather_every(files, offset=i).write_parquet(folder / "taps" / f"part-{i}.parquet")
    return folder / "taps"


@pytest.mark.parametrize(("files", "more"), [(1, []), (2, ["--streaming"])])
def test_cli_route_cleaning_makes_one_layer_and_leaks_no_email(files, more, tmp_path, capsys):
    """Two distinct screen names are renamed, however the input is split into batches
    (a streaming run's result is documented as identical to one without streaming).
    Elements name the cleaned route, as the layers do."""
    back = {**PIXEL_ELEMENTS[0], "screen": "/u/{email}/orders/{id}", "element": "back",
            "width": 100}  # fmt: skip
    elements = write_elements(tmp_path / "elements.csv", [back])
    store, png = tmp_path / "store", tmp_path / "png"
    args = aggregate_args(route_taps(tmp_path, files), store, write_key(tmp_path), "--png",
                          str(png), "--elements", str(elements), *more)  # fmt: skip
    assert main(args) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "@" not in out
    manifest = json.loads((store / "manifest.json").read_text())
    assert [layer["screen"] for layer in manifest["layers"]] == ["/u/{email}/orders/{id}"]
    assert manifest["layers"][0]["users"] == 10
    assert manifest["layers"][0]["dead_tap_share"] == pytest.approx(5 / 15)
    assert read(store).elements.select("element", "users", "taps").rows() == [("back", 10, 10)]
    assert manifest["stats"]["pii_input"]["columns"]["screen"] == ["email"]
    outputs = sorted(p for folder in (store, png) for p in folder.rglob("*") if p.is_file())
    assert {"elements.parquet", "u_email_orders_id_dead-taps.png"} <= {p.name for p in outputs}
    for output in outputs:
        for text in strings_in(output):
            assert "@" not in text, output
    assert leaked_values(outputs, [*ROUTES, "a@b.com", "c@d.org"]) == []
    entry = json.loads((store / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["pii_outputs"]["clean"] is True
    assert manifest["stats"]["screens_renamed"] == 2


# --- 8. Nightly -----------------------------------------------------------------------


def test_nightly_scans_what_it_published(tmp_path):
    day = date(2026, 11, 29)
    noon = datetime(2026, 11, 29, 12, tzinfo=UTC)
    folder = tmp_path / "lake" / f"date={day.isoformat()}"
    folder.mkdir(parents=True)
    taps = generate_taps(3000, seed=5, end=noon + timedelta(hours=12), days=1)
    taps.with_columns(ts=pl.lit(noon) + pl.duration(seconds=pl.int_range(3000))).write_parquet(
        folder / "part-0.parquet"
    )
    layout = demo_elements().select("screen", "element", "x0", "y0", "x1", "y1")
    nightly_config = AggregateConfig(
        grid=GridSpec(8, 16),
        privacy=PrivacyPolicy(k=5, retention_days=10),
        elements=tuple(layout.iter_rows()),
    )
    store = tmp_path / "store"
    result = run_nightly(
        tmp_path / "lake",
        store,
        day,
        config=nightly_config,
        key=PseudonymKey(KEY_TEXT.encode()),
        now=datetime(2026, 11, 30, 3, tzinfo=UTC),
    )
    assert result.pii is not None
    assert result.pii["clean"] is True
    assert result.pii["effectiveness"] == 1.0
    published = [p for p in result.window_dir.resolve().rglob("*") if p.is_file()]
    assert "elements.parquet" in {p.name for p in published}
    assert result.pii["files_scanned"] == len(published)
    entry = json.loads((store / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["kind"] == "run"
    assert entry["pii_outputs"] == result.pii
    assert result.heatmaps.stats.pii_input["columns"]["user_id"]
