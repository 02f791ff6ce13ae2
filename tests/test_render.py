"""Colour maps, heat rendering and deterministic PNG output."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import heatengine
from heatengine import render
from heatengine.colormaps import COLORMAP_NAMES, PERCEPTUAL_NAMES, get_colormap
from heatengine.errors import HeatengineError
from heatengine.render import render_grid, save_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# First and last entries of matplotlib's tables, rounded to 8 bits.
ENDPOINTS = {
    "cividis": ((0, 34, 78), (254, 232, 56)),
    "inferno": ((0, 0, 4), (252, 255, 164)),
    "magma": ((0, 0, 4), (252, 253, 191)),
    "turbo": ((48, 18, 59), (122, 4, 3)),
    "viridis": ((68, 1, 84), (253, 231, 37)),
}
CELL = 5  # odd, so one pixel sits exactly on each cell centre


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGBA"))


def centre(row: int, column: int) -> tuple[int, int]:
    """Pixel (y, x) at the centre of a grid cell when ``cell_pixels=CELL``."""
    return row * CELL + CELL // 2, column * CELL + CELL // 2


def one_hot(shape: tuple[int, int], row: int, column: int, value: float = 2.0) -> np.ndarray:
    grid = np.zeros(shape)
    grid[row, column] = value
    return grid


def screenshot(path: Path, size: tuple[int, int] = (40, 60)) -> Path:
    """A busy RGB image, so an unchanged pixel cannot match by accident."""
    noise = np.random.default_rng(7).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    return path


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width x height`` pixels but holds none: cheap to write."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(PNG_SIGNATURE + body)
    return path


def chunk_types(data: bytes) -> list[bytes]:
    kinds, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kinds.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return kinds


# -- colour maps ---------------------------------------------------------------------------


def test_colormap_names_are_sorted_and_complete():
    assert PERCEPTUAL_NAMES == ("cividis", "inferno", "magma", "turbo", "viridis")
    assert tuple(sorted((*PERCEPTUAL_NAMES, "heat", "diverging"))) == COLORMAP_NAMES


def test_perceptual_maps_grow_lighter():
    """Lightness (CIE L*, from sRGB) rises monotonically, turbo excepted (a rainbow)."""
    for name in ("cividis", "inferno", "magma", "viridis"):
        rgb = get_colormap(name) / 255.0
        linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        luminance = linear @ np.array([0.2126, 0.7152, 0.0722])
        lightness = np.where(
            luminance > 216 / 24389, 116 * np.cbrt(luminance) - 16, luminance * 24389 / 27
        )
        assert np.all(np.diff(lightness) > -0.5), name


def test_heat_ramp_and_diverging_map():
    heat = get_colormap("heat")
    assert tuple(heat[0]) == (0, 0, 255)
    assert tuple(heat[255]) == (255, 0, 0)
    diverging = get_colormap("diverging").astype(int)
    assert diverging[128].min() > 240  # near white in the middle
    assert diverging[0, 2] > diverging[0, 0]  # blue end
    assert diverging[255, 0] > diverging[255, 2]  # red end


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_colormap_tables_match_matplotlib_endpoints(name):
    table = get_colormap(name)
    assert table.shape == (256, 3)
    assert table.dtype == np.uint8
    assert tuple(table[0]) == ENDPOINTS[name][0]
    assert tuple(table[255]) == ENDPOINTS[name][1]


def test_colormap_tables_are_distinct_and_vary_smoothly():
    tables = [get_colormap(name).astype(int) for name in PERCEPTUAL_NAMES]
    for table in tables:
        assert np.abs(np.diff(table, axis=0)).max() <= 12
    assert len({table.tobytes() for table in map(np.ascontiguousarray, tables)}) == len(tables)


def test_colormap_is_cached_and_read_only():
    table = get_colormap("viridis")
    assert get_colormap("viridis") is table
    with pytest.raises(ValueError, match="read-only"):
        table[0, 0] = 1


def test_unknown_colormap_lists_the_valid_names():
    names = "cividis, diverging, heat, inferno, magma, turbo, viridis"
    expected = f"unknown colormap 'jet'; choose one of: {names}"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        get_colormap("jet")
    with pytest.raises(HeatengineError, match="unknown colormap 'jet'"):
        render_grid(np.ones((2, 2)), colormap="jet")


def test_importing_render_loads_neither_pillow_nor_matplotlib():
    code = (
        "import sys, heatengine.render; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'PIL', 'matplotlib'}))"
    )
    root = str(Path(heatengine.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.strip() == "[]"


# -- rendering -----------------------------------------------------------------------------


def test_all_zero_grid_is_fully_transparent():
    image = render_grid(np.zeros((4, 3)), background="transparent", cell_pixels=CELL)
    assert image.mode == "RGBA"
    assert not pixels(image).any()


def test_vmax_zero_draws_no_heat():
    image = render_grid(np.ones((4, 3)), vmax=0, background="transparent")
    assert not pixels(image)[..., 3].any()


def test_all_zero_grid_leaves_screenshot_unchanged(tmp_path):
    shot = screenshot(tmp_path / "shot.png")
    image = render_grid(np.zeros((12, 8)), background=shot)
    assert np.array_equal(pixels(image), pixels(Image.open(shot)))


def test_screenshot_far_from_heat_is_unchanged(tmp_path):
    shot = screenshot(tmp_path / "shot.png", size=(7 * CELL, 9 * CELL))
    image = pixels(render_grid(one_hot((9, 7), 1, 1), background=shot))
    original = pixels(Image.open(shot))
    assert np.array_equal(image[3 * CELL :], original[3 * CELL :])
    assert np.array_equal(image[:, 3 * CELL :], original[:, 3 * CELL :])
    assert not np.array_equal(image[: 2 * CELL, : 2 * CELL], original[: 2 * CELL, : 2 * CELL])


def test_single_hot_cell_is_drawn_only_around_that_cell():
    image = pixels(render_grid(one_hot((9, 7), 2, 3), background="transparent", cell_pixels=CELL))
    ys, xs = np.nonzero(image[..., 3])
    # Heat stays within one cell of the hot cell (pixel rows 10..14, columns 15..19) ...
    assert ys.min() >= 1 * CELL
    assert ys.max() < 4 * CELL
    assert xs.min() >= 2 * CELL
    assert xs.max() < 5 * CELL
    # ... covers the whole cell, and is hottest at its centre.
    assert image[2 * CELL : 3 * CELL, 3 * CELL : 4 * CELL, 3].all()
    y, x = centre(2, 3)
    assert tuple(image[y, x, :3]) == tuple(get_colormap("inferno")[255])
    assert image[y, x, 3] == round(0.9 * 255)
    assert image[..., 3].max() == image[y, x, 3]


def test_lone_cell_is_drawn_as_a_round_dot_not_a_square():
    image = render_grid(one_hot((5, 5), 2, 2), background="transparent", cell_pixels=CELL)
    alpha = pixels(image)[..., 3]
    y, x = centre(2, 2)
    reach = CELL - 1  # 0.8 cells
    assert alpha[y, x - reach] > 0
    assert alpha[y + reach, x] > 0
    assert alpha[y - reach, x - reach] == 0
    assert alpha[y + reach, x + reach] == 0


def test_faint_tail_beside_a_peak_has_no_holes():
    grid = np.array([[100.0, 0.001, 0.001, 0.001, 0.0, 0.0]])
    image = render_grid(grid, background="transparent", cell_pixels=CELL, min_alpha=0.3)
    alpha = pixels(image)[CELL // 2, :, 3]
    lit = alpha[: 3 * CELL + CELL // 2 + 1]
    assert (lit >= round(0.3 * 255)).all()
    assert not alpha[4 * CELL + CELL // 2 :].any()


def test_heat_is_exactly_zero_where_screen_has_no_data():
    grid = np.zeros((20, 10))
    grid[2:6, 2:5] = [[1.0, 2.0, 1.0]] * 4
    image = pixels(render_grid(grid, background="transparent", cell_pixels=CELL, min_alpha=0.5))
    assert not image[7 * CELL :].any()
    assert not image[:, 6 * CELL :].any()


@given(
    grid=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=7),
        elements=st.one_of(st.just(0.0), st.floats(0.01, 100.0)),
    )
)
def test_heat_covers_every_nonzero_cell_and_nothing_a_cell_away(grid):
    image = render_grid(grid, background="transparent", cell_pixels=CELL, min_alpha=0.2)
    alpha = pixels(image)[..., 3]
    rows, columns = np.nonzero(grid)
    for row, column in zip(rows, columns, strict=True):
        assert alpha[centre(row, column)] > 0
    # Pixel centres in cell units; a lit pixel must be less than one cell from a non-zero
    # cell centre along both axes.
    ys, xs = np.nonzero(alpha)
    y_cells = (ys + 0.5) / CELL - 0.5
    x_cells = (xs + 0.5) / CELL - 0.5
    near = (np.abs(y_cells[:, None] - rows) < 1) & (np.abs(x_cells[:, None] - columns) < 1)
    assert near.any(axis=1).all()


def test_values_above_vmax_saturate():
    def draw(grid):
        return pixels(render_grid(grid, vmax=2.0, background="transparent", cell_pixels=CELL))

    table = get_colormap("inferno")
    at_vmax = draw(one_hot((5, 5), 2, 2, value=2.0))
    assert tuple(at_vmax[centre(2, 2)][:3]) == tuple(table[255])
    assert np.array_equal(draw(one_hot((5, 5), 2, 2, value=50.0)), at_vmax)
    half = draw(one_hot((5, 5), 2, 2, value=1.0))
    assert tuple(half[centre(2, 2)][:3]) == tuple(table[128])


def test_opacity_follows_min_alpha_max_alpha_and_sqrt():
    grid = np.zeros((3, 5))
    grid[1, 1], grid[1, 3] = 1.0, 4.0
    image = pixels(
        render_grid(grid, background="transparent", cell_pixels=CELL, min_alpha=0.4, max_alpha=1)
    )
    # Density 1/4 has weight sqrt(1/4) = 1/2 between min_alpha and max_alpha.
    assert image[centre(1, 1)][3] == round(255 * (0.5 * 0.4 + 0.5 * 1.0))
    assert image[centre(1, 3)][3] == 255


def test_default_background_is_opaque_light_grey():
    image = pixels(render_grid(one_hot((8, 8), 1, 1), cell_pixels=4))
    assert (image[..., 3] == 255).all()
    assert tuple(image[-1, -1]) == render.BACKGROUND_COLOUR
    assert tuple(image[centre(1, 1)]) != render.BACKGROUND_COLOUR


@pytest.mark.parametrize(("shape", "cell_pixels"), [((4, 3), 6), ((1, 1), 1), ((128, 64), 2)])
def test_size_without_background_is_cells_times_cell_pixels(shape, cell_pixels):
    image = render_grid(np.ones(shape), cell_pixels=cell_pixels)
    assert image.size == (shape[1] * cell_pixels, shape[0] * cell_pixels)


def test_size_follows_background_image_and_file(tmp_path):
    shot = screenshot(tmp_path / "shot.png", size=(123, 457))
    grid = one_hot((16, 8), 3, 3)
    assert render_grid(grid, background=shot).size == (123, 457)
    assert render_grid(grid, background=str(shot)).size == (123, 457)
    assert render_grid(grid, background=Image.new("L", (31, 17))).size == (31, 17)


def test_background_image_is_not_modified():
    base = Image.new("RGBA", (20, 40), (10, 20, 30, 255))
    render_grid(np.ones((8, 4)), background=base)
    assert (pixels(base) == (10, 20, 30, 255)).all()


# -- invalid input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (np.ones((2, 2, 2)), "must be a non-empty 2-D array (rows, columns), got shape (2, 2, 2)"),
        (np.ones(4), "got shape (4,)"),
        (np.ones((0, 3)), "got shape (0, 3)"),
        (np.array([[0.0, 1.0], [np.nan, 2.0]]), "values must be finite, but grid[1, 0] is nan"),
        (np.array([[0.0, np.inf]]), "grid values must be finite, but grid[0, 1] is inf"),
        (np.array([[0.0, 1.0], [2.0, -0.5]]), "must be non-negative, but grid[1, 1] is -0.5"),
        (np.array([["a", "b"]]), "grid must hold real numbers, got dtype <U1"),
    ],
)
def test_invalid_grid_is_refused(grid, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        render_grid(grid)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"vmax": -1.0}, "vmax must be a finite number >= 0, got -1.0"),
        ({"vmax": float("nan")}, "vmax must be a finite number >= 0, got nan"),
        ({"vmax": "10"}, "vmax must be a finite number >= 0, got '10'"),
        ({"cell_pixels": 0}, "cell_pixels must be a positive integer, got 0"),
        ({"cell_pixels": 2.5}, "cell_pixels must be a positive integer, got 2.5"),
        ({"min_alpha": 0.6, "max_alpha": 0.5}, "got min_alpha=0.6, max_alpha=0.5"),
        ({"max_alpha": 1.5}, "0 <= min_alpha <= max_alpha <= 1"),
        ({"min_alpha": float("nan")}, "got min_alpha=nan"),
    ],
)
def test_invalid_option_is_refused(options, message):
    with pytest.raises(HeatengineError, match=re.escape(message)):
        render_grid(np.ones((2, 2)), **options)


def test_unsupported_background_type_is_refused():
    with pytest.raises(TypeError, match="background must be None, 'transparent', a file path"):
        render_grid(np.ones((2, 2)), background=np.zeros((4, 4, 3)))


@pytest.mark.parametrize(
    "content", [b"", b"this is not an image", PNG_SIGNATURE + b"\x00\x00\x00\x0dIHDR"]
)
def test_unreadable_background_is_refused(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(HeatengineError, match=f"background '{re.escape(str(path))}' is not a"):
        render_grid(np.ones((2, 2)), background=path)


def test_truncated_background_is_refused(tmp_path):
    path = screenshot(tmp_path / "shot.png", size=(64, 64))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(HeatengineError, match="is not a readable image"):
        render_grid(np.ones((2, 2)), background=path)


def test_missing_background_is_refused(tmp_path):
    with pytest.raises(HeatengineError, match=re.escape("missing.png' is not a readable image")):
        render_grid(np.ones((2, 2)), background=tmp_path / "missing.png")


def test_oversized_background_is_refused_before_decoding(tmp_path):
    path = png_header_only(tmp_path / "huge.png", 8000, 6000)
    message = f"background '{path}' is 8000x6000 = 48,000,000 pixels, more than the 40,000,000"
    with pytest.raises(HeatengineError, match=re.escape(message)):
        render_grid(np.ones((2, 2)), background=path)


def test_pixel_limit_is_read_at_call_time(tmp_path, monkeypatch):
    path = screenshot(tmp_path / "shot.png", size=(20, 10))
    monkeypatch.setattr(render, "MAX_BACKGROUND_PIXELS", 199)
    with pytest.raises(HeatengineError, match=re.escape("20x10 = 200 pixels, more than the 199")):
        render_grid(np.ones((2, 2)), background=path)
    monkeypatch.setattr(render, "MAX_BACKGROUND_PIXELS", 200)
    assert render_grid(np.ones((2, 2)), background=path).size == (20, 10)


def test_decompression_bomb_is_refused(tmp_path):
    path = png_header_only(tmp_path / "bomb.png", 20_000, 20_000)
    with pytest.raises(HeatengineError, match=re.escape("bomb.png' is too large")):
        render_grid(np.ones((2, 2)), background=path)


# -- saving --------------------------------------------------------------------------------


def test_same_input_saves_identical_bytes(tmp_path):
    shot = screenshot(tmp_path / "shot.png")
    grid = np.random.default_rng(3).gamma(1.0, size=(12, 8)) * (np.arange(8) % 3 > 0)
    for name in ("a.png", "b.png"):
        save_png(render_grid(grid, background=shot, colormap="magma"), tmp_path / name)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_saved_png_holds_pixels_only(tmp_path):
    shot = tmp_path / "shot.png"
    Image.new("RGB", (16, 32), "white").save(shot, icc_profile=b"fake profile", dpi=(144, 144))
    save_png(render_grid(np.ones((4, 2)), background=shot), tmp_path / "out.png")
    data = (tmp_path / "out.png").read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert set(chunk_types(data)) == {b"IHDR", b"IDAT", b"IEND"}


def test_save_round_trips_and_replaces_atomically(tmp_path):
    target = tmp_path / "heat.png"
    target.write_bytes(b"old")
    image = render_grid(one_hot((6, 4), 2, 2), cell_pixels=CELL)
    save_png(image, str(target))
    assert np.array_equal(pixels(Image.open(target)), pixels(image))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heat.png"]


def test_failed_save_leaves_nothing_behind(tmp_path):
    with pytest.raises(OSError, match="cannot write mode CMYK as PNG"):
        save_png(Image.new("CMYK", (4, 4)), tmp_path / "heat.png")
    assert list(tmp_path.iterdir()) == []
