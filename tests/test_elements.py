"""Engagement per UI element against a Polars reference built from the raw taps."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from polars.testing import assert_frame_equal

from heatengine.config import GridSpec
from heatengine.elements import (
    demo_elements,
    element_cells,
    element_engagement,
    load_elements,
    validate_elements,
)
from heatengine.errors import HeatengineError, SchemaError
from heatengine.partial import merge_partials, partial_from_taps
from tests import reference

SCREENS = ("a", "b", "c")  # "c" never has elements
PLATFORMS = ("android", "ios")


# --- The slow twin ------------------------------------------------------------------


def reference_cells(elements: pl.DataFrame, columns: int, rows: int) -> pl.DataFrame:
    """(screen, element, cell) by the definition: cell centres inside ``[x0, x1)`` x
    ``[y0, y1)``; on an axis with no centre inside, the cell holding the middle."""

    def axis(low: float, high: float, n: int) -> list[int]:
        inside = [i for i in range(n) if low <= (i + 0.5) / n < high]
        return inside or [min(int((low + high) / 2 * n), n - 1)]

    out = [
        (e["screen"], e["element"], cy * columns + cx)
        for e in elements.iter_rows(named=True)
        for cy in axis(e["y0"], e["y1"], rows)
        for cx in axis(e["x0"], e["x1"], columns)
    ]
    schema = {"screen": pl.String, "element": pl.String, "cell": pl.Int64}
    return pl.DataFrame(out, schema=schema, orient="row")


def reference_engagement(taps, layers, elements, grid, cap, k):
    """Element and screen tables from one row per tap (layer, x, y, user)."""
    cells = reference.cell_of(taps["x"].to_numpy(), taps["y"].to_numpy(), grid.columns, grid.rows)
    per_user_cell = (
        taps.with_columns(cell=pl.Series(cells, dtype=pl.Int64))
        .group_by("layer", "cell", "user")
        .agg(capped=pl.len().clip(upper_bound=cap).cast(pl.Int64))
        .join(layers.with_row_index("layer").with_columns(pl.col("layer").cast(pl.Int64)), "layer")
    )
    covers = reference_cells(elements, grid.columns, grid.rows)
    chosen = layers.with_row_index("layer").filter(pl.col("screen").is_in(elements["screen"]))
    screen_totals = per_user_cell.group_by("layer").agg(
        screen_users=pl.col("user").n_unique().cast(pl.Int64), layer_taps=pl.col("capped").sum()
    )
    per_element = (
        per_user_cell.join(covers, on=["screen", "cell"])
        .group_by("layer", "element")
        .agg(users=pl.col("user").n_unique().cast(pl.Int64), taps=pl.col("capped").sum())
        .join(screen_totals, on="layer")
        .filter((pl.col("users") >= k) & (pl.col("screen_users") >= k))
        .filter((pl.col("screen_users") - pl.col("users")).is_in([0]) | (
            pl.col("screen_users") - pl.col("users") >= k))
        .join(layers.with_row_index("layer").cast({"layer": pl.Int64}), on="layer")
    )  # fmt: skip
    cells_of = {
        (r["screen"], r["element"]): set(r["cell"])
        for r in covers.group_by("screen", "element").agg("cell").iter_rows(named=True)
    }
    per_element = reference.drop_small_nested_differences(
        per_element, ["layer", "screen"], elements, cells_of, k
    ).select("layer", "element", "users", "taps", "screen_users", "layer_taps")
    dead = (
        per_user_cell.join(covers, on=["screen", "cell"], how="anti")
        .group_by("layer")
        .agg(dead_users=pl.col("user").n_unique().cast(pl.Int64), dead_taps=pl.col("capped").sum())
    )
    n_elements = elements.group_by("screen").agg(n=pl.len().cast(pl.Int64))
    published = per_element.group_by("layer").agg(shown=pl.len().cast(pl.Int64))
    dead_users = pl.col("dead_users").fill_null(0)
    show_dead = (pl.col("screen_users") >= k) & ((dead_users >= k) | (dead_users == 0))
    screens = (
        chosen.with_columns(pl.col("layer").cast(pl.Int64))
        .join(screen_totals, on="layer", how="left")
        .join(dead, on="layer", how="left")
        .join(n_elements, on="screen")
        .join(published, on="layer", how="left")
        .sort("layer")
        .select(
            *layers.columns,
            screen_users=pl.when(pl.col("screen_users") >= k).then("screen_users"),
            dead_users=pl.when(show_dead).then(dead_users),
            dead_taps=pl.when(show_dead).then(pl.col("dead_taps").fill_null(0)),
            dead_tap_share=pl.when(show_dead).then(
                pl.col("dead_taps").fill_null(0) / pl.col("layer_taps")
            ),
            elements_suppressed=pl.col("n") - pl.col("shown").fill_null(0),
        )
    )
    order = elements.with_row_index("order").select("screen", "element", "order")
    element_rows = (
        per_element.join(layers.with_row_index("layer").cast({"layer": pl.Int64}), on="layer")
        .join(order, on=["screen", "element"])
        .sort("layer", "order")
        .select(
            *layers.columns,
            "element",
            "users",
            "taps",
            "screen_users",
            engagement=pl.col("users") / pl.col("screen_users"),
        )
    )
    return element_rows, screens


# --- Strategies ---------------------------------------------------------------------

# Edges on a 1/12 lattice hit cell centres and edges of the small grids exactly.
edge = st.one_of(st.sampled_from([i / 12 for i in range(13)]), st.floats(0.0, 1.0))
coordinate = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0))


@st.composite
def rectangles(draw):
    xs = sorted(draw(st.lists(edge, min_size=2, max_size=2, unique=True)))
    ys = sorted(draw(st.lists(edge, min_size=2, max_size=2, unique=True)))
    return xs[0], ys[0], xs[1], ys[1]


@st.composite
def cases(draw):
    grid = GridSpec(draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    rows = []
    for screen in ("a", "b"):
        for i in range(draw(st.integers(0, 4))):
            rows.append((screen, f"e{i}", *draw(rectangles())))
    if not rows:
        rows.append(("a", "only", *draw(rectangles())))
    elements = pl.DataFrame(
        rows,
        schema=["screen", "element", "x0", "y0", "x1", "y1"],
        orient="row",
    )
    pairs = draw(
        st.lists(st.tuples(st.sampled_from(SCREENS), st.sampled_from(PLATFORMS)), min_size=1)
    )
    layers = pl.DataFrame(sorted(set(pairs)), schema=["screen", "platform"], orient="row")
    n = draw(st.integers(0, 150))
    taps = pl.DataFrame(
        {
            "layer": draw(hnp.arrays(np.int64, n, elements=st.integers(0, layers.height - 1))),
            "x": draw(hnp.arrays(np.float64, n, elements=coordinate)),
            "y": draw(hnp.arrays(np.float64, n, elements=coordinate)),
            "user": draw(hnp.arrays(np.uint64, n, elements=st.integers(0, 7))),
        }
    )
    return grid, layers, elements, taps


def partial_of(grid, layers, taps):
    return partial_from_taps(
        grid,
        layers,
        taps["layer"].to_numpy(),
        taps["x"].to_numpy(),
        taps["y"].to_numpy(),
        taps["user"].to_numpy(),
    )


def one_screen(grid, rows, elements):
    """A single-layer partial of screen "s" from (x, y, user) rows."""
    x, y, user = (np.array(v) for v in zip(*rows, strict=True))
    layers = pl.DataFrame({"screen": ["s"]})
    partial = partial_from_taps(
        grid, layers, np.zeros(x.size, np.int64), x, y, user.astype(np.uint64)
    )
    table = pl.DataFrame(elements, schema=["element", "x0", "y0", "x1", "y1"], orient="row")
    return partial, table.with_columns(screen=pl.lit("s"))


# --- Engagement against the reference -----------------------------------------------


@given(cases(), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4))
def test_engagement_matches_polars_reference(case, cap, k, chunks):
    grid, layers, elements, taps = case
    result = element_engagement(partial_of(grid, layers, taps), elements, cap, k, chunks)
    expected_elements, expected_screens = reference_engagement(taps, layers, elements, grid, cap, k)
    assert_frame_equal(result.elements, expected_elements)
    assert_frame_equal(result.screens, expected_screens)
    assert result.elements_suppressed == expected_screens["elements_suppressed"].sum()
    # Nothing below k is ever shown.
    assert (result.elements["users"] >= k).all()
    assert (result.elements["screen_users"] >= k).all()
    assert result.screens["screen_users"].drop_nulls().ge(k).all()
    assert result.screens["dead_users"].drop_nulls().is_in([0, *range(k, 9)]).all()


@given(cases())
def test_element_cells_match_the_centre_rule(case):
    grid, _, elements, _ = case
    cells = element_cells(elements, grid)
    expected = reference_cells(elements, grid.columns, grid.rows)
    assert_frame_equal(cells.select("screen", "element", "cell"), expected)
    assert (cells["cell"] == cells["cy"] * grid.columns + cells["cx"]).all()


@given(cases(), st.integers(1, 3))
def test_dead_cells_and_dead_taps_agree_with_the_cell_totals(case, cap):
    grid, layers, elements, taps = case
    partial = partial_of(grid, layers, taps)
    result = element_engagement(partial, elements, cap, k=1)
    covered = reference_cells(elements, grid.columns, grid.rows)
    for i, screen in enumerate(layers["screen"]):
        expected = np.zeros(grid.cells, bool)
        if screen in elements["screen"]:
            expected[:] = True
            expected[covered.filter(pl.col("screen") == screen)["cell"].to_numpy()] = False
        np.testing.assert_array_equal(result.dead_cells[i], expected)
    _, cell_taps = partial.cell_totals(cap)
    dead_taps = (cell_taps * result.dead_cells).sum(axis=1)
    chosen = layers["screen"].is_in(elements["screen"]).to_numpy()
    shown = result.screens["dead_taps"].fill_null(0).to_numpy()
    np.testing.assert_array_equal(shown, dead_taps[chosen])


def test_merged_partials_give_the_engagement_of_all_taps():
    rng = np.random.default_rng(7)
    grid = GridSpec(8, 16)
    layers = pl.DataFrame({"screen": ["home", "search"], "platform": ["ios", "ios"]})
    n = 4000
    taps = pl.DataFrame(
        {
            "layer": rng.integers(0, 2, n),
            "x": rng.random(n),
            "y": rng.random(n),
            "user": rng.integers(0, 300, n).astype(np.uint64),
        }
    )
    elements = pl.DataFrame(
        {
            "screen": ["home", "home", "search"],
            "element": ["card", "button", "field"],
            "x0": [0.0, 0.1, 0.2],
            "y0": [0.0, 0.1, 0.0],
            "x1": [0.5, 0.3, 0.9],
            "y1": [0.5, 0.2, 0.1],
        }
    )
    whole = element_engagement(partial_of(grid, layers, taps), elements, cap=3, k=5)
    parts = [partial_of(grid, layers, taps[i::3]) for i in range(3)]
    merged = element_engagement(merge_partials(parts), elements, cap=3, k=5)
    assert_frame_equal(merged.elements, whole.elements)
    assert_frame_equal(merged.screens, whole.screens)
    expected_elements, expected_screens = reference_engagement(taps, layers, elements, grid, 3, 5)
    assert_frame_equal(whole.elements, expected_elements)
    assert_frame_equal(whole.screens, expected_screens)


# --- Hand-built cases ---------------------------------------------------------------


def test_overlapping_elements_share_cells_and_count_each_user_once():
    # 2 x 2 grid: the card is the top half, the button its top-left cell.
    rows = [
        (0.1, 0.1, 1),  # button (and card)
        (0.1, 0.1, 1),
        (0.9, 0.1, 1),  # card only: user 1 again, still one card user
        (0.9, 0.1, 2),  # card only
        (0.1, 0.9, 3),  # dead
    ]
    elements = [("card", 0.0, 0.0, 1.0, 0.5), ("button", 0.0, 0.0, 0.5, 0.5)]
    partial, table = one_screen(GridSpec(2, 2), rows, elements)
    result = element_engagement(partial, table, cap=5, k=1)
    assert result.elements.select("element", "users", "taps", "screen_users").rows() == [
        ("card", 2, 4, 3),
        ("button", 1, 2, 3),
    ]
    assert result.screens.select("dead_users", "dead_taps", "dead_tap_share").row(0) == (
        1,
        1,
        0.2,
    )


def test_an_element_smaller_than_a_cell_gets_the_cell_holding_its_centre():
    grid = GridSpec(4, 4)
    rows = [(0.26, 0.26, u) for u in range(3)] + [(0.9, 0.9, 9)]
    partial, table = one_screen(grid, rows, [("dot", 0.30, 0.30, 0.31, 0.31)])
    assert element_cells(table, grid)["cell"].to_list() == [5]
    result = element_engagement(partial, table, cap=5, k=1)
    assert result.elements.select("element", "users", "taps").rows() == [("dot", 3, 3)]
    assert result.dead_cells[0].sum() == 15


def test_thin_element_spans_the_cells_along_its_long_side():
    table = pl.DataFrame(
        {"screen": ["s"], "element": ["bar"], "x0": [0.0], "y0": [0.6], "x1": [1.0], "y1": [0.61]}
    )
    assert element_cells(table, GridSpec(4, 4))["cell"].to_list() == [8, 9, 10, 11]


def test_cells_on_an_element_edge_follow_the_centre():
    # Centres of a 4-column grid lie at 1/8, 3/8, 5/8, 7/8; [0.125, 0.625) holds two.
    table = pl.DataFrame(
        {"screen": ["s"], "element": ["e"], "x0": [0.125], "y0": [0.0], "x1": [0.625], "y1": [0.2]}
    )
    assert element_cells(table, GridSpec(4, 1))["cx"].to_list() == [0, 1]


def test_a_suppressed_element_never_appears_and_is_counted():
    rows = [(0.1, 0.5, u) for u in range(5)] + [(0.5, 0.5, 7), (0.5, 0.5, 8), (0.9, 0.5, 9)]
    elements = [("popular", 0.0, 0.0, 1 / 3, 1.0), ("rare", 1 / 3, 0.0, 2 / 3, 1.0)]
    partial, table = one_screen(GridSpec(3, 1), rows, elements)
    result = element_engagement(partial, table, cap=5, k=3)
    assert result.elements["element"].to_list() == ["popular"]
    assert result.elements_suppressed == 1
    assert result.screens.select("screen_users", "elements_suppressed").row(0) == (8, 1)


def test_an_element_almost_everyone_tapped_is_withheld():
    """The users who did not tap it are a group of fewer than k: 5 of 7 is withheld."""
    rows = [(0.1, 0.5, u) for u in range(5)] + [(0.9, 0.5, 7), (0.9, 0.5, 8)]
    elements = [("popular", 0.0, 0.0, 0.5, 1.0)]
    partial, table = one_screen(GridSpec(2, 1), rows, elements)
    assert element_engagement(partial, table, cap=5, k=3).elements.height == 0
    assert element_engagement(partial, table, cap=5, k=2).elements["users"].to_list() == [5]


def test_a_nested_element_with_a_small_difference_is_withheld():
    """A button inside a card: card users minus button users must be 0 or at least k."""
    rows = [(0.1, 0.5, u) for u in range(6)] + [(0.4, 0.5, 6), (0.4, 0.5, 7)]
    rows += [(0.9, 0.5, u) for u in range(10, 16)]
    elements = [("card", 0.0, 0.0, 0.5, 1.0), ("button", 0.0, 0.0, 0.25, 1.0)]
    partial, table = one_screen(GridSpec(4, 1), rows, elements)
    result = element_engagement(partial, table, cap=5, k=3)
    assert result.elements["element"].to_list() == ["card"]  # 8 - 6 = 2 < 3


def test_an_element_nobody_tapped_is_suppressed_too():
    rows = [(0.1, 0.5, u) for u in range(5)]
    elements = [("tapped", 0.0, 0.0, 0.5, 1.0), ("ignored", 0.5, 0.0, 1.0, 1.0)]
    partial, table = one_screen(GridSpec(2, 1), rows, elements)
    result = element_engagement(partial, table, cap=5, k=2)
    assert result.elements["element"].to_list() == ["tapped"]
    assert result.elements_suppressed == 1


def test_a_screen_below_k_shows_no_elements_and_no_total():
    # Both elements reach k = 2 only through the same two users: the screen has 2 < 3.
    rows = [(0.1, 0.5, 1), (0.1, 0.5, 2), (0.9, 0.5, 1), (0.9, 0.5, 2)]
    elements = [("left", 0.0, 0.0, 0.5, 1.0), ("right", 0.5, 0.0, 1.0, 1.0)]
    partial, table = one_screen(GridSpec(2, 1), rows, elements)
    result = element_engagement(partial, table, cap=5, k=3)
    assert result.elements.height == 0
    assert result.screens.row(0) == ("s", None, None, None, None, 2)
    assert result.elements_suppressed == 2


def test_dead_taps_below_k_are_null_but_the_screen_is_shown():
    rows = [(0.1, 0.5, u) for u in range(4)] + [(0.9, 0.5, 0)]
    partial, table = one_screen(GridSpec(2, 1), rows, [("left", 0.0, 0.0, 0.5, 1.0)])
    result = element_engagement(partial, table, cap=5, k=2)
    assert result.screens.row(0) == ("s", 4, None, None, None, 0)
    assert result.elements.select("users", "taps", "engagement").row(0) == (4, 4, 1.0)


def test_a_screen_without_dead_cells_shows_a_zero_dead_share():
    rows = [(0.1, 0.5, u) for u in range(3)]
    partial, table = one_screen(GridSpec(2, 1), rows, [("all", 0.0, 0.0, 1.0, 1.0)])
    result = element_engagement(partial, table, cap=5, k=2)
    assert result.screens.row(0) == ("s", 3, 0, 0, 0.0, 0)
    assert not result.dead_cells.any()


def test_taps_are_capped_per_user_and_cell():
    rows = [(0.1, 0.5, 1)] * 9 + [(0.3, 0.5, 1)] * 9 + [(0.1, 0.5, 2)]
    partial, table = one_screen(GridSpec(4, 1), rows, [("wide", 0.0, 0.0, 0.5, 1.0)])
    result = element_engagement(partial, table, cap=3, k=1)
    # User 1: min(9, 3) in each of two cells; user 2: 1.
    assert result.elements.select("users", "taps").row(0) == (2, 7)


def test_layers_without_elements_are_left_out():
    grid = GridSpec(2, 2)
    layers = pl.DataFrame({"screen": ["a", "z"]})
    partial = partial_from_taps(
        grid,
        layers,
        np.array([0, 1, 1]),
        np.array([0.1, 0.1, 0.9]),
        np.array([0.1, 0.1, 0.9]),
        np.array([1, 2, 3], np.uint64),
    )
    table = pl.DataFrame(
        {"screen": ["a"], "element": ["e"], "x0": [0.0], "y0": [0.0], "x1": [1.0], "y1": [1.0]}
    )
    result = element_engagement(partial, table, cap=5, k=1)
    assert result.screens["screen"].to_list() == ["a"]
    assert result.elements["screen"].to_list() == ["a"]
    assert not result.dead_cells[1].any()


def test_an_empty_partial_gives_empty_tables():
    grid = GridSpec(2, 2)
    empty = np.zeros(0)
    partial = partial_from_taps(
        grid,
        pl.DataFrame({"screen": ["a"]}),
        np.zeros(0, np.int64),
        empty,
        empty,
        np.zeros(0, np.uint64),
    )
    table = pl.DataFrame(
        {"screen": ["a"], "element": ["e"], "x0": [0.0], "y0": [0.0], "x1": [1.0], "y1": [1.0]}
    )
    result = element_engagement(partial, table, cap=5, k=1)
    assert result.elements.height == 0
    assert result.screens.row(0) == ("a", None, None, None, None, 1)


def test_engagement_checks_its_options():
    partial, table = one_screen(GridSpec(2, 1), [(0.1, 0.5, 1)], [("e", 0.0, 0.0, 1.0, 1.0)])
    with pytest.raises(ValueError, match="k must be at least 1, got 0"):
        element_engagement(partial, table, cap=5, k=0)
    with pytest.raises(TypeError, match=r"cap must be an integer, got 2\.5"):
        element_engagement(partial, table, cap=2.5, k=1)
    with pytest.raises(TypeError, match="partial must be a Partial"):
        element_engagement(table, table, cap=5, k=1)
    clashing = partial_from_taps(
        GridSpec(2, 1),
        pl.DataFrame({"screen": ["s"], "element": ["x"]}),
        np.zeros(1, np.int64),
        np.array([0.1]),
        np.array([0.5]),
        np.array([1], np.uint64),
    )
    with pytest.raises(SchemaError, match=r"layer column\(s\) \['element'\] clash"):
        element_engagement(clashing, table, cap=5, k=1)


# --- Demo screens -------------------------------------------------------------------


def test_demo_elements_cover_the_synthetic_screens():
    from heatengine.synthetic import SCREEN_LAYOUTS

    table = demo_elements()
    assert table["screen"].unique(maintain_order=True).to_list() == list(SCREEN_LAYOUTS)
    assert "title" not in table["element"].to_list()  # decorative: weight 0
    everything = demo_elements(interactive_only=False)
    assert everything.height == sum(len(v) for v in SCREEN_LAYOUTS.values())
    cells = element_cells(table, GridSpec())
    assert cells.select("screen", "element").n_unique() == table.height


# --- Loading ------------------------------------------------------------------------

NORMALISED_CSV = "screen,element,x0,y0,x1,y1\nhome,buy,0.1,0.5,0.6,0.75\nhome,card,0,0,1,0.5\n"
PIXELS_CSV = (
    "screen,element,left,top,width,height,viewport_width,viewport_height,label\n"
    "home,buy,39,422,195,211,390,844,Buy now\n"
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def json_file(tmp_path, records, name="elements.json"):
    return write(tmp_path, name, json.dumps(records))


def test_load_normalised_csv(tmp_path):
    table = load_elements(write(tmp_path, "e.csv", NORMALISED_CSV))
    assert table.schema == pl.Schema(
        {"screen": pl.String, "element": pl.String}
        | dict.fromkeys(["x0", "y0", "x1", "y1"], pl.Float64)
    )
    assert table.rows() == [("home", "buy", 0.1, 0.5, 0.6, 0.75), ("home", "card", 0, 0, 1, 0.5)]


def test_load_pixel_csv_and_json_agree(tmp_path):
    from_csv = load_elements(write(tmp_path, "e.csv", PIXELS_CSV))
    record = {
        "screen": "home",
        "element": "buy",
        "left": 39,
        "top": 422.0,
        "width": 195,
        "height": 211,
        "viewport_width": 390,
        "viewport_height": 844,
    }
    from_json = load_elements(json_file(tmp_path, [record]))
    assert_frame_equal(from_csv, from_json)
    assert from_csv.row(0) == ("home", "buy", 0.1, 0.5, 0.6, 0.75)


def test_load_normalised_json_with_numbers_as_text(tmp_path):
    records = [
        {"screen": "home", "element": "a", "x0": 0, "y0": "0.25", "x1": 0.5, "y1": 1},
        {"screen": "home", "element": "b", "x0": 0.5, "y0": 0, "x1": 1, "y1": 1},
    ]
    table = load_elements(json_file(tmp_path, records))
    assert table.rows() == [("home", "a", 0.0, 0.25, 0.5, 1.0), ("home", "b", 0.5, 0.0, 1.0, 1.0)]


def norm(element="e", screen="home", x0=0.0, y0=0.0, x1=0.5, y1=0.5):
    return {"screen": screen, "element": element, "x0": x0, "y0": y0, "x1": x1, "y1": y1}


def pixels(element="e", left=0, top=0, width=10, height=10, vw=100, vh=200):
    return {
        "screen": "home",
        "element": element,
        "left": left,
        "top": top,
        "width": width,
        "height": height,
        "viewport_width": vw,
        "viewport_height": vh,
    }


def as_csv(records):
    columns = list(records[0])
    lines = [",".join(columns)] + [
        ",".join("" if r.get(c) is None else str(r[c]) for c in columns) for r in records
    ]
    return "\n".join(lines) + "\n"


BAD_TABLES = [
    pytest.param(
        [{"screen": "home", "element": "e", "x0": 0.1, "y0": 0.1, "x1": 0.2}],
        r"missing column 'y1'; each row needs screen, element and a rectangle",
        id="missing-normalised-column",
    ),
    pytest.param(
        [{k: v for k, v in pixels().items() if k != "viewport_height"}],
        r"missing column 'viewport_height'",
        id="missing-pixel-column",
    ),
    pytest.param(
        [{"element": "e", "x0": 0, "y0": 0, "x1": 1, "y1": 1}],
        r"missing column 'screen'",
        id="missing-screen",
    ),
    pytest.param(
        [norm("a"), norm("b", x0=0.5, x1=0.5), norm("c", x0=0.7, x1=0.2)],
        r"column 'x1' is not greater than x0 in 2 rows \(first: row 2, element 'b' of "
        r"screen 'home'\)",
        id="empty-rectangle",
    ),
    pytest.param(
        [norm("a", y1=1.5)],
        r"column 'y1' lies outside the screen \(0 to 1\) in 1 row \(first: row 1",
        id="outside-normalised",
    ),
    pytest.param(
        [norm("a"), norm("b"), norm("a")],
        r"column 'element' repeats a name within its screen in 2 rows \(first: row 1, "
        r"element 'a' of screen 'home'\)",
        id="duplicate",
    ),
    pytest.param(
        [norm("a"), norm("b", x0="left")],
        r"column 'x0' is missing or not a number in 1 row \(first: row 2",
        id="not-a-number",
    ),
    pytest.param(
        [norm("a"), norm("")],
        r"column 'element' is missing or blank in 1 row \(first: row 2\)",
        id="blank-element",
    ),
    pytest.param(
        [pixels("a", left=95, width=10)],
        r"column 'width' reaches outside the screen \(left \+ width > viewport_width\) "
        r"in 1 row",
        id="outside-pixels",
    ),
    pytest.param(
        [pixels("a", top=-1)],
        r"column 'top' lies outside the screen \(below 0\) in 1 row",
        id="negative-pixels",
    ),
    pytest.param(
        [pixels("a"), pixels("b", height=0), pixels("c", height=-3)],
        r"column 'height' is not positive in 2 rows \(first: row 2",
        id="zero-height",
    ),
    pytest.param(
        [pixels("a", vw=0)],
        r"column 'viewport_width' is not positive in 1 row",
        id="zero-viewport",
    ),
    pytest.param(
        [
            {
                **norm("a"),
                "left": 0,
                "top": 0,
                "width": 1,
                "height": 1,
                "viewport_width": 2,
                "viewport_height": 2,
            }
        ],
        r"give the rectangle as x0, y0, x1, y1 or as left, .* not both",
        id="both-forms",
    ),
]


@pytest.mark.parametrize(("records", "message"), BAD_TABLES)
@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_loader_errors_name_file_column_and_rows(tmp_path, records, message, suffix):
    text = as_csv(records) if suffix == ".csv" else json.dumps(records)
    path = write(tmp_path, f"layout{suffix}", text)
    with pytest.raises(SchemaError, match=re.escape(f"{path}: ") + message):
        load_elements(path)


def test_json_non_finite_and_nested_values_are_reported(tmp_path):
    path = write(
        tmp_path, "e.json", json.dumps([norm("a", x1=float("inf"))]).replace("Infinity", "1e999")
    )
    with pytest.raises(SchemaError, match=r"column 'x1' is not finite in 1 row"):
        load_elements(path)
    path = json_file(tmp_path, [norm("a", y0=[0.1])], name="nested.json")
    with pytest.raises(SchemaError, match=r"column 'y0' is missing or not a number in 1 row"):
        load_elements(path)


@pytest.mark.parametrize(
    ("name", "text", "error", "message"),
    [
        ("e.json", "[{", SchemaError, r"e\.json: not valid JSON"),
        (
            "e.json",
            '{"screen": "home"}',
            SchemaError,
            r"must be a JSON list of objects, got a dict",
        ),
        ("e.json", '[["home"]]', SchemaError, r"item 1 is a list"),
        ("e.json", "[]", SchemaError, r"e\.json: no elements"),
        ("e.csv", "", SchemaError, r"e\.csv: no elements"),
        ("e.csv", "screen,element,x0,y0,x1,y1\n", SchemaError, r"e\.csv: no elements"),
        ("e.txt", "", SchemaError, r"must be a \.csv or \.json file, got '\.txt'"),
    ],
)
def test_loader_file_errors(tmp_path, name, text, error, message):
    with pytest.raises(error, match=message):
        load_elements(write(tmp_path, name, text))


def test_a_missing_file_is_reported(tmp_path):
    with pytest.raises(HeatengineError, match=r"absent\.csv: cannot read the elements file"):
        load_elements(tmp_path / "absent.csv")


def test_validate_elements_names_its_source_and_passes_clean_tables():
    table = pl.DataFrame([norm("a")])
    assert_frame_equal(validate_elements(validate_elements(table)), validate_elements(table))
    with pytest.raises(SchemaError, match=r"^my table: column 'x1'"):
        validate_elements(pl.DataFrame([norm("a", x1=0.0)]), source="my table")
    with pytest.raises(SchemaError, match=r"column 'screen' must hold text, got List\(String\)"):
        validate_elements(table.with_columns(screen=pl.lit(["a"])))
