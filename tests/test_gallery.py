"""The static HTML gallery: valid, self-contained, escaped, deterministic pages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

import heatengine
from heatengine.errors import HeatengineError
from heatengine.gallery import GalleryEntry, write_gallery

RED = (220, 40, 40)
BLUE = (30, 60, 200)
HOSTILE = (
    "<script>alert(1)</script>",
    "\"quotes\" & ampersands 'single'",
    "écran · 画面 · 🔥",
)


class PageParser(HTMLParser):
    """Collect start tags with their attributes, and the text of the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(page: Path) -> PageParser:
    parser = PageParser()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return parser


def two_colour_png(path: Path, size: tuple[int, int] = (390, 844)) -> Path:
    """Red top half, blue bottom half."""
    width, height = size
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[: height // 2] = RED
    pixels[height // 2 :] = BLUE
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def gallery(tmp_path: Path) -> tuple[Path, list[GalleryEntry]]:
    directory = tmp_path / "gallery"
    panels = directory / "panels" / "home panels.png"
    two_colour_png(panels, (200, 100))
    notes = directory / "notes & more.txt"
    notes.write_text("notes", encoding="utf-8")
    entries = [
        GalleryEntry(
            image=two_colour_png(directory / "png" / "home_platform-ios.png"),
            title="home · platform=ios",
            caption=("k = 10", "1,234 users in published cells"),
            links=(("panels", panels), ("notes", notes)),
        ),
        GalleryEntry(
            image=two_colour_png(directory / "png" / "écran #2?.png"),
            title="écran · platform=android",
            caption=("window 2026-10-31 \u2013 2026-11-30",),
        ),
        GalleryEntry(
            image=two_colour_png(directory / "settings.png", (844, 390)),
            title="settings",
            caption=(),
        ),
    ]
    return directory, entries


# -- page structure and links --------------------------------------------------------------


def test_page_parses_with_one_card_per_entry(gallery):
    directory, entries = gallery
    index = write_gallery(directory, entries, title="Taps", subtitle="November")
    assert index == directory / "index.html"
    parser = parse(index)
    html_tags = parser.named("html")
    assert len(html_tags) == 1
    assert html_tags[0]["lang"] == "en"
    assert {"charset": "utf-8"} in parser.named("meta")
    assert len(parser.named("title")) == 1
    assert len(parser.named("style")) == 1
    cards = [attrs for attrs in parser.named("article") if attrs.get("class") == "card"]
    assert len(cards) == len(entries)
    images = parser.named("img")
    assert len(images) == len(entries)
    assert all(attrs.get("alt") for attrs in images)
    text = " ".join(parser.text)
    for expected in ("Taps", "November", "home · platform=ios", "k = 10", "panels", "notes"):
        assert expected in text


def test_page_has_no_scripts_or_external_resources(gallery):
    directory, entries = gallery
    parser = parse(write_gallery(directory, entries, title="Taps"))
    names = {name for name, _ in parser.tags}
    assert not names & {"script", "link", "iframe", "object", "embed"}
    assert not any(name.startswith("on") for _, attrs in parser.tags for name in attrs)


def test_every_href_and_src_resolves_to_a_file_in_the_directory(gallery):
    directory, entries = gallery
    index = write_gallery(directory, entries, title="Taps")
    parser = parse(index)
    urls = [
        attrs[name]
        for _, attrs in parser.tags
        for name in ("href", "src")
        if attrs.get(name) is not None
    ]
    # Per card: thumbnail link, thumbnail source, plus the extra links.
    assert len(urls) == 2 * len(entries) + sum(len(entry.links) for entry in entries)
    root = directory.resolve()
    for url in urls:
        assert not re.match(r"[a-z][a-z0-9+.-]*:|//|/", url, re.IGNORECASE), url
        target = (directory / unquote(url)).resolve()
        assert target.is_relative_to(root), url
        assert target.is_file(), url
    assert "png/%C3%A9cran%20%232%3F.png" in urls
    page = index.read_text(encoding="utf-8")
    assert not re.search(r"https?:|//|url\(|@import", page, re.IGNORECASE)


def test_thumbnail_links_to_the_full_image(gallery):
    directory, entries = gallery
    parser = parse(write_gallery(directory, entries, title="Taps"))
    pairs = [
        (attrs["href"], parser.tags[position + 1][1]["src"])
        for position, (name, attrs) in enumerate(parser.tags)
        if name == "a" and attrs.get("class") == "thumb"
    ]
    assert [(unquote(href), unquote(src)) for href, src in pairs] == [
        ("png/home_platform-ios.png", "thumbs/home_platform-ios.png"),
        ("png/écran #2?.png", "thumbs/écran #2?.png"),
        ("settings.png", "thumbs/settings.png"),
    ]


def test_empty_gallery_writes_a_page(tmp_path):
    index = write_gallery(tmp_path / "new", [], title="Nothing yet")
    parser = parse(index)
    assert parser.named("article") == []
    assert "No images in this gallery." in " ".join(parser.text)


# -- escaping ------------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_is_escaped_and_shown_verbatim(tmp_path, hostile):
    image = two_colour_png(tmp_path / "a.png")
    link = two_colour_png(tmp_path / "link.png")
    entry = GalleryEntry(
        image=image, title=hostile, caption=(hostile, "plain"), links=((hostile, link),)
    )
    index = write_gallery(tmp_path, [entry], title=hostile, subtitle=hostile)
    page = index.read_text(encoding="utf-8")
    assert "<script" not in page
    assert "alert(1)</" not in page
    parser = parse(index)
    # Title, heading, subtitle, card title, caption line and link label: six times verbatim.
    assert parser.text.count(hostile) == 6
    assert parser.named("img")[0]["alt"] == f"Heatmap: {hostile}"


def test_hostile_file_names_are_percent_encoded(tmp_path):
    image = two_colour_png(tmp_path / "a\"b'c&d<e>.png")
    page = write_gallery(tmp_path, [GalleryEntry(image, "t", ())], title="t").read_text()
    assert "%22" in page
    assert "%3C" in page
    assert 'a"b' not in page
    assert "d<e" not in page


# -- thumbnails ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "width"), [((390, 844), 240), ((390, 844), 97), ((844, 390), 240)]
)
def test_thumbnail_has_requested_width_and_aspect(tmp_path, size, width):
    image = two_colour_png(tmp_path / "screen.png", size)
    write_gallery(tmp_path, [GalleryEntry(image, "screen", ())], title="t", thumbnail_width=width)
    with Image.open(tmp_path / "thumbs" / "screen.png") as thumbnail:
        assert thumbnail.format == "PNG"
        assert thumbnail.width == width
        assert thumbnail.height == round(size[1] * width / size[0])
        pixels = np.asarray(thumbnail.convert("RGB")).astype(int)
    # Content is scaled, not cropped or flipped: red on top, blue at the bottom.
    assert np.abs(pixels[1, width // 2] - RED).max() <= 2
    assert np.abs(pixels[-2, width // 2] - BLUE).max() <= 2
    img = parse(tmp_path / "index.html").named("img")[0]
    assert (img["width"], img["height"]) == (str(width), str(pixels.shape[0]))


def test_small_image_is_scaled_up_to_the_requested_width(tmp_path):
    image = two_colour_png(tmp_path / "small.png", (60, 130))
    write_gallery(tmp_path, [GalleryEntry(image, "small", ())], title="t", thumbnail_width=240)
    with Image.open(tmp_path / "thumbs" / "small.png") as thumbnail:
        assert thumbnail.size == (240, 520)


def test_thumbnail_is_antialiased(tmp_path):
    image = tmp_path / "checkerboard.png"
    rows, columns = np.indices((400, 400))
    Image.fromarray(((rows + columns) % 2 * 255).astype(np.uint8)).save(image)
    write_gallery(tmp_path, [GalleryEntry(image, "fine", ())], title="t", thumbnail_width=100)
    with Image.open(tmp_path / "thumbs" / "checkerboard.png") as thumbnail:
        grey = np.asarray(thumbnail.convert("L")).astype(int)
    # Lanczos averages the 1-pixel pattern to mid grey; nearest-neighbour keeps 0 and 255.
    assert np.abs(grey[4:-4, 4:-4] - 127.5).max() <= 8


def test_thumbnail_of_transparent_palette_image_keeps_alpha(tmp_path):
    image = tmp_path / "palette.png"
    Image.new("P", (40, 80), 0).save(image, transparency=0)
    write_gallery(tmp_path, [GalleryEntry(image, "palette", ())], title="t", thumbnail_width=20)
    with Image.open(tmp_path / "thumbs" / "palette.png") as thumbnail:
        assert thumbnail.size == (20, 40)
        assert thumbnail.mode == "RGBA"
        assert thumbnail.getextrema()[3] == (0, 0)


@pytest.mark.parametrize("width", [0, -5, 2.5, True, "240"])
def test_bad_thumbnail_width_is_refused(tmp_path, width):
    image = two_colour_png(tmp_path / "a.png")
    with pytest.raises(HeatengineError, match="thumbnail_width must be a positive whole number"):
        write_gallery(tmp_path, [GalleryEntry(image, "a", ())], title="t", thumbnail_width=width)


def test_unreadable_image_is_refused(tmp_path):
    image = tmp_path / "broken.png"
    image.write_bytes(b"not a png")
    with pytest.raises(HeatengineError, match=r"cannot read the gallery image .*broken.png"):
        write_gallery(tmp_path, [GalleryEntry(image, "broken", ())], title="t")
    assert not (tmp_path / "index.html").exists()


# -- refusals ------------------------------------------------------------------------------


def test_image_outside_the_directory_is_refused(tmp_path):
    outside = two_colour_png(tmp_path / "outside.png")
    directory = tmp_path / "gallery"
    directory.mkdir()
    with pytest.raises(
        HeatengineError, match=r"image of gallery entry 'x'.*is outside the gallery"
    ):
        write_gallery(directory, [GalleryEntry(outside, "x", ())], title="t")
    assert list(directory.iterdir()) == []


def test_dot_dot_path_that_leaves_the_directory_is_refused(tmp_path):
    two_colour_png(tmp_path / "outside.png")
    directory = tmp_path / "gallery"
    sneaky = directory / ".." / "outside.png"
    directory.mkdir()
    with pytest.raises(HeatengineError, match="is outside the gallery directory"):
        write_gallery(directory, [GalleryEntry(sneaky, "x", ())], title="t")


def test_symlink_out_of_the_directory_is_refused(tmp_path):
    outside = two_colour_png(tmp_path / "outside.png")
    directory = tmp_path / "gallery"
    directory.mkdir()
    link = directory / "inside.png"
    link.symlink_to(outside)
    with pytest.raises(HeatengineError, match="is outside the gallery directory"):
        write_gallery(directory, [GalleryEntry(link, "x", ())], title="t")


def test_missing_image_is_refused(tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(HeatengineError, match=r"'.*missing.png', does not exist or is not a file"):
        write_gallery(tmp_path, [GalleryEntry(missing, "x", ())], title="t")
    assert not (tmp_path / "index.html").exists()


def test_directory_as_image_is_refused(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(HeatengineError, match="does not exist or is not a file"):
        write_gallery(tmp_path, [GalleryEntry(tmp_path / "folder", "x", ())], title="t")


def test_link_outside_the_directory_is_refused(tmp_path):
    directory = tmp_path / "gallery"
    image = two_colour_png(directory / "a.png")
    outside = two_colour_png(tmp_path / "panels.png")
    entry = GalleryEntry(image, "home", (), links=(("panels", outside),))
    with pytest.raises(HeatengineError, match=r"link 'panels' of 'home'.*is outside the gallery"):
        write_gallery(directory, [entry], title="t")
    assert not (directory / "thumbs").exists()


def test_missing_link_is_refused(tmp_path):
    image = two_colour_png(tmp_path / "a.png")
    entry = GalleryEntry(image, "home", (), links=(("panels", tmp_path / "gone.png"),))
    with pytest.raises(HeatengineError, match=r"link 'panels' of 'home'.*does not exist"):
        write_gallery(tmp_path, [entry], title="t")


def test_image_in_the_thumbnail_folder_is_refused(tmp_path):
    image = two_colour_png(tmp_path / "thumbs" / "a.png")
    with pytest.raises(HeatengineError, match="is in the thumbs/ folder"):
        write_gallery(tmp_path, [GalleryEntry(image, "a", ())], title="t")


def test_images_sharing_a_stem_are_refused(tmp_path):
    first = two_colour_png(tmp_path / "ios" / "home.png")
    second = two_colour_png(tmp_path / "android" / "Home.png")
    entries = [GalleryEntry(first, "ios", ()), GalleryEntry(second, "android", ())]
    with pytest.raises(HeatengineError, match=r"share the file stem 'Home'.*rename one"):
        write_gallery(tmp_path, entries, title="t")


def test_same_image_twice_is_allowed(tmp_path):
    image = two_colour_png(tmp_path / "home.png")
    entries = [GalleryEntry(image, "all", ()), GalleryEntry(image, "again", ())]
    parser = parse(write_gallery(tmp_path, entries, title="t"))
    assert len(parser.named("article")) == 2


def test_caption_given_as_a_string_is_refused(tmp_path):
    image = two_colour_png(tmp_path / "a.png")
    entry = GalleryEntry(image, "a", "k = 10")  # type: ignore[arg-type]
    with pytest.raises(HeatengineError, match="caption of gallery entry 'a' must be a tuple"):
        write_gallery(tmp_path, [entry], title="t")


# -- determinism and imports ---------------------------------------------------------------


def test_writing_twice_gives_identical_bytes(gallery):
    directory, entries = gallery

    def snapshot() -> dict[str, bytes]:
        write_gallery(directory, entries, title="Taps", subtitle="November")
        return {
            path.relative_to(directory).as_posix(): path.read_bytes()
            for path in sorted(directory.rglob("*"))
            if path.is_file()
        }

    first = snapshot()
    second = snapshot()
    assert "index.html" in first
    assert "thumbs/home_platform-ios.png" in first
    assert first == second


def test_importing_gallery_does_not_load_pillow():
    code = "import sys, heatengine.gallery; print('PIL' in sys.modules)"
    root = str(Path(heatengine.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.strip() == "False"
