"""A static HTML gallery of heatmap images: one card per image, viewable offline.

:func:`write_gallery` writes ``index.html`` and a ``thumbs/`` folder of PNG thumbnails into
a directory that already holds the full-size images. The page is self-contained: inline
CSS, no scripts, no fonts or URLs from elsewhere, and only relative links, so the directory
can be zipped, mailed or served as it is. Every piece of text is HTML-escaped, because
titles and captions carry screen and segment names from user data.

Pillow is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from urllib.parse import quote

from heatengine.atomic import write_atomically
from heatengine.errors import HeatengineError

THUMBS = "thumbs"
"""Folder, inside the gallery directory, that holds the thumbnails."""

INDEX = "index.html"
"""File name of the gallery page."""

_CARD_PADDING = 16  # pixels around a thumbnail inside its card

_STYLE = """\
:root {
  color-scheme: light;
  --ink: #1d2433;
  --muted: #5b6475;
  --line: #e3e6eb;
  --page: #f5f6f8;
  --stage: #eceef2;
  --accent: #3553c7;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0;
  background: var(--page);
  color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    sans-serif;
}
header, main, footer { max-width: 1240px; margin: 0 auto; padding-left: 32px; padding-right: 32px; }
header { padding-top: 40px; padding-bottom: 28px; }
h1 { margin: 0; font-size: 28px; line-height: 1.2; font-weight: 650; letter-spacing: -0.01em; }
.subtitle { margin: 8px 0 0; color: var(--muted); font-size: 16px; }
.count {
  margin: 14px 0 0; color: var(--muted); font-size: 13px; font-weight: 600;
  letter-spacing: 0.06em; text-transform: uppercase;
}
main {
  display: grid;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, @CARD@px), 1fr));
  gap: 24px;
  padding-bottom: 40px;
}
.card {
  display: flex; flex-direction: column; overflow: hidden;
  background: #fff; border: 1px solid var(--line); border-radius: 12px;
  box-shadow: 0 1px 2px rgba(16, 24, 40, 0.04), 0 4px 12px rgba(16, 24, 40, 0.04);
}
.thumb {
  display: flex; justify-content: center; align-items: flex-start;
  padding: @PAD@px; background: var(--stage); border-bottom: 1px solid var(--line);
}
.thumb img {
  display: block; max-width: 100%; height: auto; border-radius: 6px;
  box-shadow: 0 1px 3px rgba(16, 24, 40, 0.18);
}
.thumb:hover img, .thumb:focus-visible img {
  outline: 2px solid var(--accent); outline-offset: 3px;
}
.thumb:focus-visible { outline: none; }
.body { display: flex; flex: 1; flex-direction: column; padding: 14px 16px 16px; }
h2 { margin: 0; font-size: 16px; line-height: 1.35; font-weight: 620; overflow-wrap: anywhere; }
.caption {
  margin: 8px 0 0; padding: 0; list-style: none; color: var(--muted); font-size: 13.5px;
  font-variant-numeric: tabular-nums; overflow-wrap: anywhere;
}
.caption li + li { margin-top: 2px; }
.links {
  display: flex; flex-wrap: wrap; gap: 6px; margin: auto 0 0; padding: 12px 0 0; list-style: none;
}
.links a {
  display: inline-block; padding: 2px 10px; border: 1px solid var(--line); border-radius: 999px;
  color: var(--accent); font-size: 13px; text-decoration: none; overflow-wrap: anywhere;
}
.links a:hover, .links a:focus-visible { background: #eef1fb; border-color: #c9d1f0; }
.empty { grid-column: 1 / -1; color: var(--muted); }
footer { padding-bottom: 32px; color: var(--muted); font-size: 12px; }
@media (max-width: 560px) {
  header, main, footer { padding-left: 16px; padding-right: 16px; }
  header { padding-top: 24px; }
  h1 { font-size: 24px; }
}
@media print {
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  body { background: #fff; font-size: 10pt; }
  header, main, footer { max-width: none; padding-left: 0; padding-right: 0; }
  header { padding-top: 0; }
  main { grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 10px; }
  .card { box-shadow: none; break-inside: avoid; }
  .thumb { padding: 8px; background: #fff; }
  .body { padding: 8px 10px 10px; }
  h2 { font-size: 10.5pt; }
  .caption, .links a { font-size: 8.5pt; }
  .thumb img { width: auto; max-height: 2.3in; box-shadow: none; border: 1px solid var(--line); }
  .links a { color: var(--ink); }
  footer { display: none; }
}
"""


@dataclass(frozen=True)
class GalleryEntry:
    """One card of a gallery.

    Parameters
    ----------
    image : Path
        The full-size image, a file inside the gallery directory.
    title : str
        Heading of the card, e.g. ``"home · platform=ios"``.
    caption : tuple of str
        Lines under the heading, e.g. ``("k = 10", "1,234 users in published cells")``.
    links : tuple of (str, Path)
        Extra ``(label, file)`` links shown under the caption, e.g. ``("panels", path)``;
        every file must lie inside the gallery directory.
    """

    image: Path
    title: str
    caption: tuple[str, ...]
    links: tuple[tuple[str, Path], ...] = ()


@dataclass(frozen=True)
class _Card:
    """A validated entry: files resolved, hrefs relative to the gallery directory."""

    image: Path
    image_href: str
    thumb_name: str
    title: str
    caption: tuple[str, ...]
    links: tuple[tuple[str, str], ...]


def write_gallery(
    directory: str | os.PathLike[str],
    entries: Sequence[GalleryEntry],
    *,
    title: str,
    subtitle: str = "",
    thumbnail_width: int = 240,
) -> Path:
    """Write thumbnails and an ``index.html`` page showing ``entries`` as a grid of cards.

    Each card shows the thumbnail (a link to the full-size image), the entry's title,
    caption lines and extra links. Thumbnails go to ``directory/thumbs/<image stem>.png``,
    resampled with Lanczos to ``thumbnail_width`` pixels wide, aspect ratio kept. The same
    inputs always give byte-identical files. Every path is checked before anything is
    written.

    Parameters
    ----------
    directory : str or os.PathLike
        The gallery directory; it must hold every image and link target.
    entries : sequence of GalleryEntry
        The cards, in page order. Relative paths are taken from the working directory,
        like any Python path, and symbolic links are followed before the check.
    title : str
        Heading and window title of the page.
    subtitle : str
        Line under the heading; omitted when empty.
    thumbnail_width : int
        Width of each thumbnail in pixels.

    Returns
    -------
    Path
        The page written, ``directory/index.html``.

    Raises
    ------
    HeatengineError
        An image or link file is missing or outside ``directory``, two different images
        share a file stem, a caption is a bare string or ``thumbnail_width`` is not a
        positive integer.

    Examples
    --------
    >>> entry = GalleryEntry(Path("out/home.png"), "home · platform=ios", ("k = 10",))
    >>> write_gallery("out", [entry], title="Taps in November")  # doctest: +SKIP
    PosixPath('out/index.html')
    """
    _check_thumbnail_width(thumbnail_width)
    width = int(thumbnail_width)
    root = Path(directory).resolve()
    cards = _cards(root, entries)
    thumbs = root / THUMBS
    thumbs.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, tuple[int, int]] = {}
    for card in cards:
        if card.thumb_name not in sizes:
            sizes[card.thumb_name] = _write_thumbnail(card.image, thumbs / card.thumb_name, width)
    page = _page(cards, sizes, title=title, subtitle=subtitle, thumbnail_width=width)
    index = Path(directory) / INDEX
    write_atomically(index, lambda temporary: temporary.write_bytes(page.encode("utf-8")))
    return index


def _check_thumbnail_width(width: object) -> None:
    if isinstance(width, bool) or not isinstance(width, Integral) or width < 1:
        msg = f"thumbnail_width must be a positive whole number of pixels, got {width!r}"
        raise HeatengineError(msg)


def _cards(root: Path, entries: Sequence[GalleryEntry]) -> list[_Card]:
    cards = []
    stems: dict[str, Path] = {}
    for entry in entries:
        if isinstance(entry.caption, str):
            msg = (
                f"the caption of gallery entry {entry.title!r} must be a tuple of lines, "
                f"got the string {entry.caption!r}"
            )
            raise HeatengineError(msg)
        image = _inside(root, entry.image, f"image of gallery entry {entry.title!r}")
        other = stems.setdefault(image.stem.casefold(), image)
        if other != image:
            msg = (
                f"gallery images {str(other)!r} and {str(image)!r} share the file stem "
                f"{image.stem!r}, so their thumbnails would overwrite each other: rename one"
            )
            raise HeatengineError(msg)
        links = tuple(
            (label, _href(root, _inside(root, file, f"link {label!r} of {entry.title!r}")))
            for label, file in entry.links
        )
        cards.append(
            _Card(
                image=image,
                image_href=_href(root, image),
                thumb_name=f"{image.stem}.png",
                title=entry.title,
                caption=tuple(entry.caption),
                links=links,
            )
        )
    return cards


def _inside(root: Path, path: str | os.PathLike[str], what: str) -> Path:
    """``path`` resolved, after checking that it is a file inside ``root`` (not in thumbs/)."""
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(root):
        msg = (
            f"the {what}, {str(path)!r}, is outside the gallery directory {str(root)!r}: "
            "copy it into the directory first"
        )
        raise HeatengineError(msg)
    if not resolved.is_file():
        msg = f"the {what}, {str(path)!r}, does not exist or is not a file"
        raise HeatengineError(msg)
    if resolved.is_relative_to(root / THUMBS):
        msg = (
            f"the {what}, {str(path)!r}, is in the {THUMBS}/ folder, which the gallery "
            "overwrites: move it elsewhere in the directory"
        )
        raise HeatengineError(msg)
    return resolved


def _href(root: Path, path: Path) -> str:
    return quote(path.relative_to(root).as_posix())


def _write_thumbnail(source: Path, target: Path, width: int) -> tuple[int, int]:
    """Save a ``width``-pixel-wide Lanczos thumbnail of ``source``; return its size."""
    from PIL import Image, ImageOps

    from heatengine.render import save_png

    try:
        with Image.open(source) as opened:
            image = ImageOps.exif_transpose(opened)
            if image.mode not in ("RGB", "RGBA"):
                image = image.convert("RGBA")
            height = max(1, round(image.height * width / image.width))
            thumbnail = image.resize((width, height), Image.Resampling.LANCZOS)
    except OSError as exc:
        msg = f"cannot read the gallery image {str(source)!r}: {exc}"
        raise HeatengineError(msg) from exc
    save_png(thumbnail, target)
    return thumbnail.size


def _page(
    cards: Sequence[_Card],
    sizes: dict[str, tuple[int, int]],
    *,
    title: str,
    subtitle: str,
    thumbnail_width: int,
) -> str:
    style = _STYLE.replace("@CARD@", str(thumbnail_width + 2 * _CARD_PADDING + 2)).replace(
        "@PAD@", str(_CARD_PADDING)
    )
    count = f"{len(cards):,} image{'' if len(cards) == 1 else 's'}"
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(title)}</title>",
        f"<style>\n{style}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_text(title)}</h1>",
    ]
    if subtitle:
        lines.append(f'<p class="subtitle">{_text(subtitle)}</p>')
    lines += [f'<p class="count">{count}</p>', "</header>", "<main>"]
    for card in cards:
        lines += _card(card, sizes[card.thumb_name])
    if not cards:
        lines.append('<p class="empty">No images in this gallery.</p>')
    lines += [
        "</main>",
        "<footer>Made with heatengine. Thumbnails link to the full-size images.</footer>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(lines)


def _card(card: _Card, size: tuple[int, int]) -> list[str]:
    width, height = size
    thumb_href = f"{THUMBS}/{quote(card.thumb_name)}"
    lines = [
        '<article class="card">',
        f'<a class="thumb" href="{_text(card.image_href)}">'
        f'<img src="{_text(thumb_href)}" width="{width}" height="{height}" '
        f'alt="Heatmap: {_text(card.title)}" loading="lazy"></a>',
        '<div class="body">',
        f"<h2>{_text(card.title)}</h2>",
    ]
    if card.caption:
        lines.append('<ul class="caption">')
        lines += [f"<li>{_text(line)}</li>" for line in card.caption]
        lines.append("</ul>")
    if card.links:
        lines.append('<ul class="links">')
        lines += [
            f'<li><a href="{_text(href)}">{_text(label)}</a></li>' for label, href in card.links
        ]
        lines.append("</ul>")
    lines += ["</div>", "</article>"]
    return lines


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)
