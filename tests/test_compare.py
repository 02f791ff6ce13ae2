"""Comparing two stores: difference grids, difference overlays and side-by-side panels."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import heatengine
from heatengine import aggregate
from heatengine.colormaps import get_colormap
from heatengine.compare import (
    DIFFERENCE_MAX_ALPHA,
    MIN_PANEL_WIDTH,
    Comparison,
    compare_stores,
    difference_grid,
    render_difference,
)
from heatengine.config import GridSpec
from heatengine.errors import HeatengineError
from heatengine.heatmaps import HeatmapSet
from heatengine.render import BACKGROUND_COLOUR, render_grid
from tests.factory import KEY, small_config, taps_frame

CELL = 5  # odd, so one pixel sits exactly on each cell centre
K = 5
DIVERGING = get_colormap("diverging")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGBA"))


def centre(row: int, column: int, cell: int = CELL) -> tuple[int, int]:
    """Pixel (y, x) at (or, for even ``cell``, next to) the centre of a grid cell."""
    return row * cell + cell // 2, column * cell + cell // 2


def store(spots: dict[tuple[str, ...], list[tuple[int, int]]], **options) -> HeatmapSet:
    """Aggregate ``K`` distinct users tapping the centre of each (row, column) on a 4 x 4 grid.

    Keys are ``(screen,)`` or ``(screen, platform)``; with a platform the store is segmented.
    """
    rows = []
    for layer, cells in spots.items():
        extra = {"platform": layer[1]} if len(layer) > 1 else {}
        for row, column in cells:
            rows += [
                {
                    "screen": layer[0],
                    "x": (column + 0.5) / 4,
                    "y": (row + 0.5) / 4,
                    "user_id": f"{layer}-{row}-{column}-{n}",
                    **extra,
                }
                for n in range(K)
            ]
    segments = ("platform",) if any(len(layer) > 1 for layer in spots) else ()
    config = small_config(k=K, **{"segments": segments, **options})
    return aggregate(taps_frame(rows), config, key=KEY)


def files(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def locate(haystack: np.ndarray, needle: np.ndarray) -> list[tuple[int, int]]:
    """Every (y, x) where ``needle`` appears exactly in ``haystack``.

    Candidates are first narrowed down on a lattice of sample pixels, then compared whole.
    """
    height, width = needle.shape[:2]
    ys, xs = np.mgrid[: haystack.shape[0] - height + 1, : haystack.shape[1] - width + 1]
    ys, xs = ys.ravel(), xs.ravel()
    for dy in np.linspace(0, height - 1, 9).astype(int):
        for dx in np.linspace(0, width - 1, 9).astype(int):
            keep = np.all(haystack[ys + dy, xs + dx] == needle[dy, dx], axis=-1)
            ys, xs = ys[keep], xs[keep]
    return [
        (int(y), int(x))
        for y, x in zip(ys, xs, strict=True)
        if np.array_equal(haystack[y : y + height, x : x + width], needle)
    ]


def read_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return pixels(image)


# -- difference_grid -----------------------------------------------------------------------


def test_difference_of_a_grid_with_itself_or_a_multiple_is_zero():
    grid = np.arange(12.0).reshape(3, 4)
    assert not difference_grid(grid, grid).any()
    assert not difference_grid(grid, 3.5 * grid).any()
    zeros = np.zeros((3, 4))
    assert not difference_grid(zeros, zeros).any()


def test_each_grid_is_normalised_by_its_own_peak():
    a = np.array([[0.0, 2.0], [1.0, 0.0]])
    b = np.array([[0.0, 5.0], [0.0, 5.0]])
    expected = np.array([[0.0, 0.0], [-0.5, 1.0]])
    np.testing.assert_array_equal(difference_grid(a, b), expected)
    np.testing.assert_array_equal(difference_grid(np.zeros((2, 2)), b), b / 5.0)
    np.testing.assert_array_equal(difference_grid(b, np.zeros((2, 2))), -b / 5.0)


@given(
    hnp.arrays(np.float64, (3, 5), elements=st.floats(0, 1e6)),
    hnp.arrays(np.float64, (3, 5), elements=st.floats(0, 1e6)),
)
def test_difference_is_bounded_and_antisymmetric(a, b):
    difference = difference_grid(a, b)
    assert difference.dtype == np.float64
    assert np.all(np.abs(difference) <= 1.0)
    np.testing.assert_array_equal(difference_grid(b, a), -difference)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (np.ones((2, 3)), np.ones((3, 2)), "same shape to be compared, got (2, 3) and (3, 2)"),
        (np.ones((2, 2)), -np.ones((2, 2)), "must be non-negative, but grid[0, 0] is -1.0"),
        (np.full((2, 2), np.nan), np.ones((2, 2)), "must be finite, but grid[0, 0] is nan"),
        (np.ones(4), np.ones(4), "non-empty 2-D array (rows, columns), got shape (4,)"),
    ],
)
def test_invalid_grids_are_refused(a, b, message):
    with pytest.raises(HeatengineError, match=re.escape(message)):
        difference_grid(a, b)


# -- render_difference ---------------------------------------------------------------------


def test_zero_difference_is_fully_transparent_or_the_background(tmp_path):
    zeros = np.zeros((4, 3))
    transparent = pixels(render_difference(zeros, background="transparent", cell_pixels=CELL))
    assert transparent.shape == (4 * CELL, 3 * CELL, 4)
    assert not transparent.any()
    grey = pixels(render_difference(zeros, cell_pixels=CELL))
    assert np.all(grey == BACKGROUND_COLOUR)
    noise = np.random.default_rng(3).integers(0, 256, (50, 30, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "shot.png")
    drawn = pixels(render_difference(zeros, background=tmp_path / "shot.png"))
    np.testing.assert_array_equal(drawn[..., :3], noise)


def test_colours_run_from_blue_through_white_to_red_with_opacity_by_magnitude():
    difference = np.array([[-1.0, -0.5, 0.0, 0.5, 1.0]])
    image = pixels(render_difference(difference, background="transparent", cell_pixels=CELL))
    at = [tuple(image[centre(0, column)]) for column in range(5)]
    full = round(DIFFERENCE_MAX_ALPHA * 255)
    half = round(DIFFERENCE_MAX_ALPHA * 255 / 2)
    assert at[0] == (*DIVERGING[0], full)
    assert at[1] == (*DIVERGING[64], half)
    assert at[2] == (0, 0, 0, 0)
    assert at[3] == (*DIVERGING[192], half)
    assert at[4] == (*DIVERGING[255], full)
    assert at[0][2] > at[0][0]  # blue side
    assert at[4][0] > at[4][2]  # red side


def test_difference_is_resampled_smoothly_and_symmetrically():
    difference = np.zeros((3, 3))
    difference[1, 1] = 1.0
    alpha = pixels(render_difference(difference, background="transparent", cell_pixels=CELL))[
        ..., 3
    ]
    middle = centre(1, 1)
    assert alpha[middle] == alpha.max()
    row = alpha[middle[0]].astype(int)
    assert np.all(np.diff(row[: middle[1] + 1]) >= 0)  # rises towards the centre
    assert np.all(np.diff(row[middle[1] :]) <= 0)  # and falls away from it
    assert len(np.unique(row)) > 4  # a gradient, not a block
    np.testing.assert_array_equal(alpha, alpha[::-1, ::-1])


def test_difference_size_follows_the_background():
    image = render_difference(np.zeros((2, 2)), background=Image.new("RGB", (17, 31), "white"))
    assert image.size == (17, 31)
    assert render_difference(np.zeros((2, 3)), cell_pixels=4).size == (12, 8)


@pytest.mark.parametrize(
    ("difference", "options", "message"),
    [
        (np.array([[0.0, 1.5]]), {}, "within [-1, 1], but difference[0, 1] is 1.5"),
        (np.array([[np.nan]]), {}, "within [-1, 1], but difference[0, 0] is nan"),
        (np.array([[-np.inf]]), {}, "within [-1, 1], but difference[0, 0] is -inf"),
        (np.zeros((0, 3)), {}, "non-empty 2-D array (rows, columns), got shape (0, 3)"),
        (np.array([["a"]]), {}, "must hold real numbers, got dtype <U1"),
        (np.zeros((2, 2)), {"cell_pixels": 0}, "cell_pixels must be a positive integer, got 0"),
    ],
)
def test_invalid_difference_is_refused(difference, options, message):
    with pytest.raises(HeatengineError, match=re.escape(message)):
        render_difference(difference, **options)


# -- compare_stores ------------------------------------------------------------------------


def test_store_compared_with_itself_is_neutral_everywhere(tmp_path):
    heatmaps = store({("home",): [(0, 0), (2, 3)], ("search",): [(1, 1)]})
    comparisons = compare_stores(heatmaps, heatmaps, tmp_path)
    assert [c.label for c in comparisons] == ["home", "search"]
    for comparison in comparisons:
        assert comparison.max_abs_difference == 0.0
        with Image.open(comparison.difference_path) as image:
            assert np.all(pixels(image) == BACKGROUND_COLOUR)


def test_hot_spot_only_in_b_is_red_and_only_in_a_is_blue(tmp_path):
    a = store({("home",): [(0, 0), (3, 3)]})
    b = store({("home",): [(0, 0), (1, 2)]})
    (comparison,) = compare_stores(a, b, tmp_path)
    difference = difference_grid(a.grids[0], b.grids[0])
    assert difference[1, 2] == 1.0
    assert difference[3, 3] == -1.0
    assert comparison.max_abs_difference == 1.0
    drawn = read_pixels(comparison.difference_path).astype(int)
    cell = drawn.shape[1] // 4
    red, blue = drawn[centre(1, 2, cell)], drawn[centre(3, 3, cell)]
    same = drawn[centre(0, 0, cell)]
    assert red[0] > red[2] + 50
    assert red[0] > red[1]
    assert blue[2] > blue[0] + 50
    assert blue[2] > blue[1]
    assert tuple(same) == BACKGROUND_COLOUR


def test_layers_are_matched_by_values_and_unshared_layers_are_skipped(tmp_path):
    a = store({("home",): [(0, 0)], ("search",): [(2, 2)]})
    b = store({("search",): [(2, 2)], ("settings",): [(1, 1)]})
    assert a.layers["layer"][1] == "layer_0001"
    assert b.layers["layer"][0] == "layer_0000"  # the same screen under another id
    comparisons = compare_stores(a, b, tmp_path)
    assert comparisons == [
        Comparison(
            label="search",
            difference_path=tmp_path / "search.difference.png",
            panels_path=tmp_path / "search.panels.png",
            max_abs_difference=0.0,
        )
    ]
    assert files(tmp_path) == ["search.difference.png", "search.panels.png"]


def test_segmented_layers_are_compared_in_the_layer_order_of_a(tmp_path):
    a = store({("home", "ios"): [(0, 0)], ("home", "android"): [(1, 1)], ("cart", "ios"): [(2, 2)]})
    b = store({("home", "android"): [(1, 1)], ("home", "ios"): [(0, 1)]})
    comparisons = compare_stores(a, b, tmp_path)
    assert [c.label for c in comparisons] == ["home, platform=android", "home, platform=ios"]
    assert [c.panels_path.name for c in comparisons] == [
        "home_platform-android.panels.png",
        "home_platform-ios.panels.png",
    ]
    assert [c.max_abs_difference for c in comparisons] == [0.0, 1.0]


def test_different_grids_are_refused_naming_both(tmp_path):
    a = store({("home",): [(0, 0)]})
    b = store({("home",): [(0, 0)]}, grid=GridSpec(8, 4))
    expected = "cannot compare heatmaps on different grids: 'v5.2' has 4x4 cells, 'v5.3' has 8x4"
    with pytest.raises(HeatengineError, match=re.escape(expected)):
        compare_stores(a, b, tmp_path / "out", labels=("v5.2", "v5.3"))
    assert not (tmp_path / "out").exists()


def test_different_segments_are_refused_naming_both(tmp_path):
    a = store({("home", "ios"): [(0, 0)]})
    b = store({("home",): [(0, 0)]})
    expected = (
        "cannot compare heatmaps split into different layers: 'A' has layer columns "
        "(screen, platform), 'B' has (screen); aggregate both with the same segments"
    )
    with pytest.raises(HeatengineError, match=f"^{re.escape(expected)}$"):
        compare_stores(a, b, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_different_measures_are_refused_naming_both(tmp_path):
    a = store({("home",): [(0, 0)]})
    b = store({("home",): [(0, 0)]}, measure="taps")
    expected = "cannot compare heatmaps of different measures: 'A' counts users, 'B' counts taps"
    with pytest.raises(HeatengineError, match=f"^{re.escape(expected)}$"):
        compare_stores(a, b, tmp_path / "out")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"labels": ("only one",)}, "labels must be two non-empty strings, one per store"),
        ({"labels": "AB"}, "labels must be two non-empty strings, one per store, got 'AB'"),
        ({"labels": ("A", " ")}, "labels must be two non-empty strings, one per store"),
        ({"colormap": "jet"}, "unknown colormap 'jet'"),
        ({"backgrounds": "no/such/folder"}, "the backgrounds directory 'no/such/folder'"),
    ],
)
def test_invalid_options_are_refused_before_writing(tmp_path, options, message):
    heatmaps = store({("home",): [(0, 0)]})
    with pytest.raises(HeatengineError, match=re.escape(message)):
        compare_stores(heatmaps, heatmaps, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_hostile_screen_names_stay_inside_the_directory(tmp_path):
    out = tmp_path / "a" / "b"
    heatmaps = store({("../../etc/passwd",): [(0, 0)], ("/tmp/x",): [(1, 1)]})
    comparisons = compare_stores(heatmaps, heatmaps, out)
    assert [c.label for c in comparisons] == ["../../etc/passwd", "/tmp/x"]
    assert files(tmp_path) == [
        "a/b/etc_passwd.difference.png",
        "a/b/etc_passwd.panels.png",
        "a/b/tmp_x.difference.png",
        "a/b/tmp_x.panels.png",
    ]
    for comparison in comparisons:
        for path in (comparison.difference_path, comparison.panels_path):
            assert path.resolve().parent == out.resolve()


def test_panels_show_a_b_and_the_difference_side_by_side(tmp_path):
    a = store({("home",): [(0, 0), (3, 3)]})
    b = store({("home",): [(0, 0), (1, 2)]})
    (comparison,) = compare_stores(a, b, tmp_path, labels=("v5.2", "v5.3"), colormap="viridis")
    figure = read_pixels(comparison.panels_path)
    cell = MIN_PANEL_WIDTH // 4
    panels = [
        render_grid(a.grids[0], colormap="viridis", cell_pixels=cell),
        render_grid(b.grids[0], colormap="viridis", cell_pixels=cell),
        render_difference(difference_grid(a.grids[0], b.grids[0]), cell_pixels=cell),
    ]
    np.testing.assert_array_equal(read_pixels(comparison.difference_path), pixels(panels[2]))
    found = [locate(figure, pixels(panel)) for panel in panels]
    assert all(len(places) == 1 for places in found)
    (top_a, left_a), (top_b, left_b), (top_d, left_d) = (places[0] for places in found)
    assert top_a == top_b == top_d > 0  # a title strip above, all in one row
    assert left_a < left_b < left_d
    assert left_b - left_a == left_d - left_b  # same size, evenly spaced
    assert figure.shape[1] >= 3 * panels[0].width


def test_screenshots_are_found_per_screen_and_drawn_under_every_panel(tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    noise = np.random.default_rng(5).integers(0, 256, (48, 30, 3), dtype=np.uint8)
    Image.fromarray(noise).save(shots / "home.png")
    heatmaps = store({("home",): [(0, 0)], ("search",): [(1, 1)]})
    home, search = compare_stores(heatmaps, heatmaps, tmp_path / "out", backgrounds=shots)
    np.testing.assert_array_equal(read_pixels(home.difference_path)[..., :3], noise)
    overlay = render_grid(heatmaps.grids[0], background=shots / "home.png")
    assert len(locate(read_pixels(home.panels_path), pixels(overlay))) == 2  # A and B
    grey = read_pixels(search.difference_path)
    assert grey.shape == (MIN_PANEL_WIDTH, MIN_PANEL_WIDTH, 4)  # no screenshot: grey
    assert np.all(grey == BACKGROUND_COLOUR)


@pytest.mark.parametrize(("columns", "width"), [(4, 360), (7, 7 * 52), (64, 64 * 6), (90, 90 * 6)])
def test_panels_are_at_least_min_width_with_six_pixels_per_cell(tmp_path, columns, width):
    heatmaps = store({("home",): [(0, 0)]}, grid=GridSpec(columns, 2))
    (comparison,) = compare_stores(heatmaps, heatmaps, tmp_path)
    cell = width // columns
    assert read_pixels(comparison.difference_path).shape == (2 * cell, width, 4)


def test_same_inputs_give_identical_bytes(tmp_path):
    a = store({("home",): [(0, 0), (3, 3)], ("search",): [(1, 1)]})
    b = store({("home",): [(0, 0), (1, 2)], ("search",): [(1, 1), (2, 2)]})
    first = compare_stores(a, b, tmp_path / "first", labels=("v5.2", "v5.3"))
    second = compare_stores(a, b, tmp_path / "second", labels=("v5.2", "v5.3"))
    assert files(tmp_path / "first") == files(tmp_path / "second")
    for one, two in zip(first, second, strict=True):
        assert one.difference_path.read_bytes() == two.difference_path.read_bytes()
        assert one.panels_path.read_bytes() == two.panels_path.read_bytes()


def test_importing_compare_does_not_load_pillow():
    code = (
        "import sys, heatengine.compare; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'PIL', 'matplotlib'}))"
    )
    root = str(Path(heatengine.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "[]"
