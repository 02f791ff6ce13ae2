"""Rendering every layer: scales, legends from the manifest, screenshots, hostile names."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from heatengine import aggregate, read
from heatengine.batch import aspect_warning, load_background_map, render_layers
from heatengine.colormaps import get_colormap
from heatengine.config import GridSpec
from heatengine.errors import HeatengineError
from heatengine.legend import layer_caption, legend_ticks, unscale
from heatengine.render import apply_scale, render_grid
from tests.factory import KEY, small_config, taps_frame


def crowd(screen: str, n: int, x: float = 0.5, y: float = 0.5) -> list[dict]:
    return [{"screen": screen, "x": x, "y": y, "user_id": f"{screen}-{i}"} for i in range(n)]


@pytest.mark.parametrize(
    ("scale", "value", "entry"),
    [("linear", 0.5, 128), ("sqrt", 0.25, 128), ("log", 9 / 999, 85), ("linear", 3.0, 255)],
)
def test_scales_map_known_values_to_known_entries(scale, value, entry):
    grid = np.zeros((3, 3))
    grid[1, 1] = value
    grid[0, 0] = 1.0
    image = render_grid(grid, vmax=1.0, scale=scale, background="transparent", cell_pixels=9)
    pixel = np.asarray(image)[13, 13, :3]  # centre of the middle cell
    assert tuple(pixel) == tuple(get_colormap("inferno")[entry])


def test_unscale_inverts_apply_scale():
    positions = np.linspace(0, 1, 11)
    for scale in ("linear", "sqrt", "log"):
        np.testing.assert_allclose(apply_scale(unscale(positions, scale), scale), positions)


def test_legend_ticks_and_caption_come_from_the_manifest(tmp_path):
    rows = crowd("home", 12) + crowd("home", 6, x=0.1, y=0.1) + crowd("cart", 7)
    result = aggregate(taps_frame(rows), small_config(k=5, sigma=1.0), key=KEY)
    result.write(tmp_path / "store")
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    stored = read(tmp_path / "store")
    for index, layer in enumerate(manifest["layers"]):
        ticks = legend_ticks(layer["peak"], "linear")
        assert ticks[-1] == (1.0, legend_ticks(layer["peak"], "linear")[-1][1])
        # two significant digits
        assert float(ticks[-1][1].replace(",", "")) == pytest.approx(layer["peak"], rel=0.05)
        caption = " ".join(layer_caption(stored, index))
        assert f"{layer['users']:,} users in published cells" in caption
        assert f"k = {manifest['config']['privacy']['k']}" in caption
        assert manifest["window"]["start"][:10] in caption


def test_shared_scale_uses_the_largest_peak(tmp_path):
    rows = crowd("busy", 20, x=0.01, y=0.01) + crowd("quiet", 5, x=0.01, y=0.01)
    result = aggregate(taps_frame(rows), small_config(k=5), key=KEY)

    def hot_spot(scale_max: str) -> np.ndarray:
        rendered = render_layers(result, tmp_path / scale_max, scale_max=scale_max, legend=False)
        quiet = next(r for r in rendered if r.title == "quiet")
        with Image.open(quiet.path) as image:
            return np.asarray(image)[1, 1, :3].astype(int)  # inside corner cell (0, 0)

    # On its own scale the quiet screen's peak takes the top colour (pale yellow, blended
    # over grey); on the shared scale it sits at a quarter of the busy screen's peak.
    top = get_colormap("inferno")[255].astype(int)
    own, shared = (np.abs(hot_spot(mode) - top).sum() for mode in ("layer", "shared"))
    assert own < 30
    assert shared > 150


HOSTILE = [
    "../../etc/passwd",
    "a/b",
    "a_b",
    "A/B",
    "a?b",
    "x" * 500,
    "écran d\u2019accueil",
    "..",
    "CON",
]


def test_hostile_screen_names_stay_inside_and_never_collide(tmp_path):
    rows = [r for i, name in enumerate(HOSTILE) for r in crowd(name, 5, x=0.1 * (i % 9))]
    result = aggregate(taps_frame(rows), small_config(k=5), key=KEY)
    assert result.layers.height == len(HOSTILE)
    out = tmp_path / "out"
    rendered = render_layers(result, out, legend=False)
    paths = [r.path.resolve() for r in rendered]
    assert len(set(paths)) == len(HOSTILE)
    assert {p.name.lower() for p in paths} == {p.name.lower() for p in out.iterdir()}
    for path in paths:
        assert path.parent == out.resolve()
        assert len(path.name) <= 90
        assert all(ch.isprintable() and ch not in "/\\\\" for ch in path.name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_screenshots_by_folder_and_by_mapping_file(tmp_path):
    result = aggregate(taps_frame(crowd("home", 5) + crowd("cart", 5)), small_config(k=5), key=KEY)
    shots = tmp_path / "shots"
    shots.mkdir()
    Image.new("RGB", (200, 200), "white").save(shots / "home.png")
    Image.new("RGB", (100, 300), "white").save(shots / "basket.png")
    (tmp_path / "map.csv").write_text("screen,file\ncart,shots/basket.png\n")
    mapping = load_background_map(tmp_path / "map.csv")
    rendered = render_layers(
        result, tmp_path / "out", backgrounds=shots, background_map=mapping, legend=False
    )
    by_title = {r.title: r for r in rendered}
    assert by_title["home"].background == shots / "home.png"
    with Image.open(by_title["home"].path) as image:
        assert image.size == (200, 200)
    assert by_title["cart"].background == tmp_path / "shots" / "basket.png"
    assert by_title["home"].warnings == ()  # 4 x 4 grid, square screenshot
    assert "stretched by" in by_title["cart"].warnings[0]


def test_mapping_file_errors(tmp_path):
    (tmp_path / "m.json").write_text("[1, 2]")
    with pytest.raises(HeatengineError, match="must be an object of screen: file"):
        load_background_map(tmp_path / "m.json")
    (tmp_path / "m.csv").write_text("home,a.png,extra\n")
    with pytest.raises(HeatengineError, match="two columns"):
        load_background_map(tmp_path / "m.csv")
    with pytest.raises(HeatengineError, match="cannot read"):
        load_background_map(tmp_path / "absent.json")


def test_aspect_warning_threshold():
    assert aspect_warning((400, 800), GridSpec(64, 128).shape) is None
    assert aspect_warning((400, 808), GridSpec(64, 128).shape) is None  # 1% off
    assert "stretched by 7.6%" in aspect_warning((390, 844), GridSpec(64, 128).shape)


def test_legend_on_a_tiny_grid_is_enlarged_and_readable(tmp_path):
    result = aggregate(
        taps_frame(crowd("home", 6)), small_config(k=5, grid=GridSpec(1, 1)), key=KEY
    )
    framed = render_layers(result, tmp_path, legend=True)[0]
    with Image.open(framed.path) as image:
        assert image.width >= 360


def test_legend_footer_is_added_below_the_image(tmp_path):
    config = small_config(k=5, grid=GridSpec(64, 64))
    result = aggregate(taps_frame(crowd("home", 6)), config, key=KEY)
    plain = render_layers(result, tmp_path / "a", legend=False)[0]
    framed = render_layers(result, tmp_path / "b", legend=True)[0]
    with Image.open(plain.path) as a_image, Image.open(framed.path) as b_image:
        a, b = np.asarray(a_image), np.asarray(b_image)
    assert a.shape[1] == b.shape[1]
    assert b.shape[0] > a.shape[0] + 60
    np.testing.assert_array_equal(b[: a.shape[0]], a)


def test_bad_render_options_are_refused(tmp_path):
    result = aggregate(taps_frame(crowd("home", 6)), small_config(k=5), key=KEY)
    with pytest.raises(HeatengineError, match="unknown scale 'cubic'"):
        render_layers(result, tmp_path, scale="cubic")
    with pytest.raises(HeatengineError, match="must be positive"):
        render_layers(result, tmp_path, scale_max=0.0)


def test_screenshot_edge_cases(tmp_path, monkeypatch):
    result = aggregate(taps_frame(crowd("home", 6)), small_config(k=5), key=KEY)
    shots = tmp_path / "shots"
    shots.mkdir()
    # A JPEG stored sideways with EXIF orientation 6 is used upright, as viewers show it.
    sideways = Image.new("RGB", (300, 200), "white")
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(shots / "home.jpg", exif=exif)
    rendered = render_layers(result, tmp_path / "out", backgrounds=shots, legend=False)[0]
    with Image.open(rendered.path) as image:
        assert image.size == (200, 300)
    # 16-bit greyscale is scaled, not clipped to white.
    grey = Image.fromarray(np.full((200, 200), 30000, dtype=np.uint16))
    (shots / "home.jpg").unlink()
    grey.save(shots / "home.png")
    rendered = render_layers(result, tmp_path / "out16", backgrounds=shots, legend=False)[0]
    with Image.open(rendered.path) as image:
        assert np.asarray(image)[0, 0, 0] == round(30000 / 65535 * 255)
    # Oversized screenshots are refused with a clear error, not a traceback.
    monkeypatch.setattr("heatengine.render.MAX_BACKGROUND_PIXELS", 100)
    with pytest.raises(HeatengineError, match="more than the 100 allowed"):
        render_layers(result, tmp_path / "big", backgrounds=shots)


def test_rendering_never_overwrites_a_screenshot(tmp_path):
    result = aggregate(taps_frame(crowd("home", 6)), small_config(k=5), key=KEY)
    Image.new("RGB", (40, 40), "white").save(tmp_path / "home.png")
    before = (tmp_path / "home.png").read_bytes()
    with pytest.raises(HeatengineError, match="would overwrite the screenshot"):
        render_layers(result, tmp_path, backgrounds=tmp_path)
    assert (tmp_path / "home.png").read_bytes() == before


def test_names_without_ascii_get_stable_distinct_files(tmp_path):
    rows = crowd("画面", 5) + crowd("設定", 5, x=0.9)
    result = aggregate(taps_frame(rows), small_config(k=5), key=KEY)
    names = sorted(r.path.name for r in render_layers(result, tmp_path, legend=False))
    again = sorted(r.path.name for r in render_layers(result, tmp_path / "b", legend=False))
    assert names == again
    assert len(set(names)) == 2
    assert all(name.startswith("layer-") for name in names)


def test_large_grids_get_fewer_pixels_per_cell(tmp_path):
    config = small_config(k=5, grid=GridSpec(1024, 2048))
    result = aggregate(taps_frame(crowd("home", 6)), config, key=KEY)
    rendered = render_layers(result, tmp_path, legend=False)[0]
    with Image.open(rendered.path) as image:
        assert image.width * image.height <= 4_000_000
        assert image.size == (1024, 2048)


def test_a_fixed_maximum_below_the_peak_marks_the_top_tick():
    from heatengine.legend import add_legend

    image = Image.new("RGBA", (400, 100))
    common = {"title": "t", "caption": (), "colormap": "inferno", "scale": "linear", "unit": "u"}
    plain = add_legend(image, vmax=10.0, **common)
    marked = add_legend(image, vmax=10.0, saturated=True, **common)
    assert np.asarray(plain).tobytes() != np.asarray(marked).tobytes()
