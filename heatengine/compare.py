"""Compare two heatmap stores layer by layer, for example two app versions.

Layers are matched by their layer column values (screen and segments), never by layer id,
and only layers published in both stores are compared. Each grid is first normalised by its
own maximum (the layer's published peak), so the comparison shows where taps *concentrate*
differently, not which store saw more traffic: ``B - A`` lies in ``[-1, 1]``, positive where
the screen is relatively hotter in B.

The difference is drawn with the diverging colour map (blue where A is hotter, red where B
is) and an opacity proportional to its magnitude, so regions that did not change stay fully
transparent and leave a screenshot untouched, byte for byte. :func:`compare_stores` writes
that overlay and a slide-ready figure with A, B and the difference side by side.

Pillow is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from heatengine.colormaps import get_colormap
from heatengine.errors import HeatengineError
from heatengine.render import (
    BACKGROUND_COLOUR,
    _background_image,
    _check_cell_pixels,
    _is_transparent,
    _resized,
    _validated_grid,
    find_background,
    layer_file_stems,
    render_grid,
    save_png,
)

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

    from heatengine.heatmaps import HeatmapSet

DIFFERENCE_MAX_ALPHA = 0.9
"""Opacity of a difference of magnitude 1; smaller differences are proportionally fainter."""

DIFFERENCE_TITLE = "B - A (each normalised to its own peak)"
"""Title of the difference panel in the side-by-side figure."""

MIN_PANEL_WIDTH = 360
"""Without a screenshot, :func:`compare_stores` uses at least 6 pixels per cell and enough
to make each panel this wide, so titles stay legible on coarse grids."""

# Figure layout in pixels for a 390-pixel-wide panel (a phone screenshot at 1x); every size
# is scaled with the actual panel width.
_REFERENCE_WIDTH = 390.0
_MARGIN = 16.0
_GUTTER = 16.0
_HEADER_FONT = 20.0
_TITLE_FONT = 15.0
_NOTE_FONT = 12.0
_LINE_GAP = 5.0
_LEGEND_WIDTH = 0.32  # share of the panel width
_MIN_FONT = 9
_PAPER = (255, 255, 255, 255)
_INK = (33, 33, 33, 255)
_MUTED = (110, 110, 110, 255)
_FRAME = (208, 208, 208, 255)
_ELLIPSIS = "..."


@dataclass(frozen=True)
class Comparison:
    """The files written for one layer published in both stores.

    Attributes
    ----------
    label : str
        The layer, for example ``"home, platform=ios"``.
    difference_path : pathlib.Path
        The difference overlay, ``<stem>.difference.png``.
    panels_path : pathlib.Path
        A, B and the difference side by side, ``<stem>.panels.png``.
    max_abs_difference : float
        Largest ``|B - A|`` of the normalised grids, from 0 (same shape) to 1.
    """

    label: str
    difference_path: Path
    panels_path: Path
    max_abs_difference: float


def difference_grid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b`` minus ``a``, each normalised by its own maximum.

    Parameters
    ----------
    a, b : numpy.ndarray
        Grids of the same shape ``(rows, columns)`` with finite, non-negative densities,
        such as two stores' published grids of one layer. An all-zero grid stays zero.

    Returns
    -------
    numpy.ndarray
        Float64 array of the same shape with values in ``[-1, 1]``: positive where ``b`` is
        relatively denser, negative where ``a`` is, exactly 0 where both agree.

    Raises
    ------
    HeatengineError
        If a grid is not a non-empty 2-D array of finite, non-negative numbers, or the
        shapes differ.

    Examples
    --------
    >>> a = np.array([[0.0, 2.0], [1.0, 0.0]])
    >>> b = np.array([[0.0, 5.0], [0.0, 5.0]])
    >>> difference_grid(a, b)
    array([[ 0. ,  0. ],
           [-0.5,  1. ]])
    """
    first, second = _validated_grid(a), _validated_grid(b)
    if first.shape != second.shape:
        msg = f"grids must have the same shape to be compared, got {first.shape} and {second.shape}"
        raise HeatengineError(msg)
    return _normalised_by_peak(second) - _normalised_by_peak(first)


def render_difference(
    difference: np.ndarray,
    *,
    cell_pixels: int = 6,
    background: Image.Image | str | os.PathLike[str] | None = None,
) -> Image.Image:
    """Render a signed difference grid as an RGBA overlay with a diverging colour map.

    Values are resampled bilinearly to the output size (exact at cell centres). ``0`` is
    drawn with the middle entry of the ``"diverging"`` map (near white), ``-1`` with its
    first entry (blue) and ``+1`` with its last (red). Opacity is
    :data:`DIFFERENCE_MAX_ALPHA` times ``|difference|``, so wherever the difference is 0
    the overlay is fully transparent and the background shows unchanged.

    Parameters
    ----------
    difference : numpy.ndarray
        Shape ``(rows, columns)``, finite values in ``[-1, 1]``, e.g. from
        :func:`difference_grid`; row 0 is the top of the screen.
    cell_pixels : int
        Pixels per grid cell along each axis when no screenshot or image is given.
    background : PIL.Image.Image, str, os.PathLike or None
        As for :func:`heatengine.render.render_grid`: ``None`` draws on opaque light grey,
        ``"transparent"`` returns the overlay alone, a path or image is a screenshot that
        also sets the output size.

    Returns
    -------
    PIL.Image.Image
        An RGBA image of the background's size, or ``(columns * cell_pixels,
        rows * cell_pixels)`` without one.

    Raises
    ------
    HeatengineError
        For an invalid difference grid or ``cell_pixels``, or an unreadable screenshot.
    TypeError
        If ``background`` is of an unsupported type.

    Examples
    --------
    >>> grid = np.array([[-1.0, -0.5, 0.0, 1.0]])
    >>> image = render_difference(grid, cell_pixels=1, background="transparent")
    >>> [image.getpixel((x, 0)) for x in range(4)]
    [(5, 48, 97, 230), (107, 172, 209, 115), (0, 0, 0, 0), (103, 0, 31, 230)]
    """
    from PIL import Image

    values = _validated_difference(difference)
    _check_cell_pixels(cell_pixels)
    base = _background_image(background)
    rows, columns = values.shape
    size = base.size if base is not None else (columns * cell_pixels, rows * cell_pixels)
    resampled = np.clip(_resized(values, size, Image.Resampling.BILINEAR), -1.0, 1.0)
    overlay = _difference_layer(resampled, get_colormap("diverging"))
    if _is_transparent(background):
        return overlay
    if base is None:
        base = Image.new("RGBA", size, BACKGROUND_COLOUR)
    return Image.alpha_composite(base, overlay)


def compare_stores(
    a: HeatmapSet,
    b: HeatmapSet,
    directory: str | os.PathLike[str],
    *,
    labels: Sequence[str] = ("A", "B"),
    colormap: str = "inferno",
    backgrounds: str | os.PathLike[str] | None = None,
) -> list[Comparison]:
    """Write a difference overlay and a side-by-side figure for every shared layer.

    For each layer published in both stores (matched by screen and segment values), two
    PNGs are written to ``directory``, named by the layer's file stem in ``a`` (see
    :func:`heatengine.render.layer_file_stems`): ``<stem>.difference.png``, the output of
    :func:`render_difference`, and ``<stem>.panels.png``, with A, B (each drawn with
    ``colormap`` up to its own peak) and the difference side by side under short titles.
    Layers published in only one store are skipped. Without a screenshot, panels are
    drawn at least :data:`MIN_PANEL_WIDTH` pixels wide.

    Parameters
    ----------
    a, b : HeatmapSet
        The stores to compare, e.g. from :func:`heatengine.read`; ``B - A`` is shown.
    directory : str or os.PathLike
        Output folder, created if needed; nothing is written outside it.
    labels : sequence of two str
        Names of the stores in the figure titles, e.g. ``("v5.2", "v5.3")``.
    colormap : str
        Colour map of the A and B panels, see :data:`heatengine.colormaps.COLORMAP_NAMES`.
    backgrounds : str, os.PathLike or None
        Folder of screenshots, looked up per screen with
        :func:`heatengine.render.find_background`; layers without one, and every layer
        when ``None``, are drawn on light grey.

    Returns
    -------
    list of Comparison
        One per shared layer, in the layer order of ``a``.

    Raises
    ------
    HeatengineError
        Before anything is written, if the stores use different grids, layer columns or
        measures, the labels are not two non-empty strings, the colour map is unknown or
        the backgrounds folder does not exist.
    """
    names = _checked_labels(labels)
    get_colormap(colormap)
    _check_comparable(a, b, names)
    stems = layer_file_stems(a)
    jobs = [
        (i, j, stems[i], find_background(backgrounds, a.layers["screen"][i]))
        for i, j in _shared_layers(a, b)
    ]
    cell_pixels = max(6, math.ceil(MIN_PANEL_WIDTH / a.config.grid.columns))
    style = _Style(names, colormap, cell_pixels)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        _compare_layer(a, b, (i, j), folder / stem, style, screenshot)
        for i, j, stem, screenshot in jobs
    ]


@dataclass(frozen=True)
class _Style:
    names: tuple[str, str]
    colormap: str
    cell_pixels: int


def _normalised_by_peak(values: np.ndarray) -> np.ndarray:
    peak = values.max()
    return values / peak if peak > 0 else np.zeros_like(values)


def _validated_difference(difference: np.ndarray) -> np.ndarray:
    values = np.asarray(difference)
    if values.ndim != 2 or values.size == 0:
        msg = f"difference must be a non-empty 2-D array (rows, columns), got shape {values.shape}"
        raise HeatengineError(msg)
    if values.dtype.kind not in "biuf":
        msg = f"difference must hold real numbers, got dtype {values.dtype}"
        raise HeatengineError(msg)
    values = values.astype(np.float64)
    bad = ~(np.abs(values) <= 1.0)  # NaN compares false, so it is caught too
    if bad.any():
        row, column = np.argwhere(bad)[0]
        msg = (
            "difference values must be finite and within [-1, 1], "
            f"but difference[{row}, {column}] is {values[row, column]}"
        )
        raise HeatengineError(msg)
    return values


def _difference_layer(difference: np.ndarray, table: np.ndarray) -> Image.Image:
    from PIL import Image

    values = difference.astype(np.float64)
    alpha = np.rint(np.abs(values) * (DIFFERENCE_MAX_ALPHA * 255.0)).astype(np.uint8)
    index = np.rint(np.where(values < 0, 128.0 + 128.0 * values, 128.0 + 127.0 * values))
    colours = table[index.astype(np.uint8)]
    rgb = np.where(alpha[..., np.newaxis] > 0, colours, np.uint8(0))
    return Image.fromarray(np.dstack([rgb, alpha]))


def _checked_labels(labels: Sequence[str]) -> tuple[str, str]:
    names = tuple(labels) if isinstance(labels, Sequence) and not isinstance(labels, str) else ()
    if len(names) != 2 or not all(isinstance(n, str) and n.strip() for n in names):
        msg = f"labels must be two non-empty strings, one per store, got {labels!r}"
        raise HeatengineError(msg)
    return names[0].strip(), names[1].strip()


def _check_comparable(a: HeatmapSet, b: HeatmapSet, names: tuple[str, str]) -> None:
    first, second = a.config, b.config
    if first.grid != second.grid:
        msg = (
            f"cannot compare heatmaps on different grids: {names[0]!r} has "
            f"{first.grid.columns}x{first.grid.rows} cells, {names[1]!r} has "
            f"{second.grid.columns}x{second.grid.rows} (columns x rows); "
            "aggregate both with the same grid"
        )
        raise HeatengineError(msg)
    if first.layer_columns != second.layer_columns:
        msg = (
            "cannot compare heatmaps split into different layers: "
            f"{names[0]!r} has layer columns ({', '.join(first.layer_columns)}), "
            f"{names[1]!r} has ({', '.join(second.layer_columns)}); "
            "aggregate both with the same segments"
        )
        raise HeatengineError(msg)
    if first.measure != second.measure:
        msg = (
            f"cannot compare heatmaps of different measures: {names[0]!r} counts "
            f"{first.measure}, {names[1]!r} counts {second.measure}"
        )
        raise HeatengineError(msg)


def _shared_layers(a: HeatmapSet, b: HeatmapSet) -> list[tuple[int, int]]:
    columns = a.config.layer_columns
    in_b = {key: j for j, key in enumerate(b.layers.select(columns).rows())}
    keys = a.layers.select(columns).rows()
    return [(i, in_b[key]) for i, key in enumerate(keys) if key in in_b]


def _compare_layer(
    a: HeatmapSet,
    b: HeatmapSet,
    positions: tuple[int, int],
    stem: Path,
    style: _Style,
    screenshot: Path | None,
) -> Comparison:
    i, j = positions
    background = None if screenshot is None else _background_image(screenshot)
    difference = difference_grid(a.grids[i], b.grids[j])
    # Colours span the layer's own largest change, so small shifts stay visible; the
    # title says how large that is. Identical layers stay fully neutral.
    largest = float(np.abs(difference).max())
    shown = difference / largest if largest > 0 else difference
    overlay = render_difference(shown, cell_pixels=style.cell_pixels, background=background)
    panels = [
        render_grid(
            grid,
            colormap=style.colormap,
            background=background,
            cell_pixels=style.cell_pixels,
        )
        for grid in (a.grids[i], b.grids[j])
    ]
    panels.append(overlay)
    span = f"B - A, colours span ±{largest:.2f} of the peak" if largest > 0 else DIFFERENCE_TITLE
    titles = [_title("A", style.names[0]), _title("B", style.names[1]), span]
    notes = [_totals(a, i), _totals(b, j)]
    label = a.layer_label(i)
    difference_path = stem.with_name(f"{stem.name}.difference.png")
    panels_path = stem.with_name(f"{stem.name}.panels.png")
    save_png(overlay, difference_path)
    save_png(_figure(panels, label, titles, notes), panels_path)
    return Comparison(label, difference_path, panels_path, largest)


def _title(letter: str, label: str) -> str:
    return letter if label == letter else f"{letter}: {label}"


def _totals(heatmaps: HeatmapSet, index: int) -> str:
    row = heatmaps.layers.row(index, named=True)
    return f"{row['users']:,} users, {row['taps']:,} taps"


def _figure(
    panels: list[Image.Image], header: str, titles: list[str], notes: list[str]
) -> Image.Image:
    """Panels side by side under a header line and a title strip each; the last panel is
    the difference and gets a colour legend instead of a note."""
    from PIL import Image, ImageDraw

    width, height = panels[0].size
    scale = width / _REFERENCE_WIDTH
    margin, gutter, gap = (round(v * scale) for v in (_MARGIN, _GUTTER, _LINE_GAP))
    header_font, title_font, note_font = (
        _font(v * scale) for v in (_HEADER_FONT, _TITLE_FONT, _NOTE_FONT)
    )
    header_height = _line_height(header_font) + gap * 2
    strip_height = _line_height(title_font) + _line_height(note_font) + gap * 3
    top = margin + header_height + strip_height
    figure = Image.new(
        "RGBA",
        (margin * 2 + width * len(panels) + gutter * (len(panels) - 1), top + height + margin),
        _PAPER,
    )
    draw = ImageDraw.Draw(figure)
    text_width = figure.width - 2 * margin
    draw.text((margin, margin), _fitted(header, header_font, text_width), _INK, header_font)
    note_top = margin + header_height + _line_height(title_font) + gap
    for position, (panel, title) in enumerate(zip(panels, titles, strict=True)):
        left = margin + position * (width + gutter)
        title_top = margin + header_height
        draw.text((left, title_top), _fitted(title, title_font, width), _INK, title_font)
        if position < len(notes):
            draw.text(
                (left, note_top), _fitted(notes[position], note_font, width), _MUTED, note_font
            )
        else:
            _legend(figure, draw, (left, note_top), width, note_font)
        figure.paste(panel, (left, top))
        draw.rectangle((left - 1, top - 1, left + width, top + height), outline=_FRAME)
    return figure


def _legend(
    figure: Image.Image,
    draw: ImageDraw.ImageDraw,
    corner: tuple[int, int],
    width: int,
    font: ImageFont.FreeTypeFont,
) -> None:
    """``more in A [blue ... red] more in B``, the bar drawn by :func:`render_difference`."""
    from PIL import Image

    left, top = corner
    before, after = "more in A ", " more in B"
    height = _line_height(font)
    bar_width = max(
        1, min(round(width * _LEGEND_WIDTH), round(width - font.getlength(before + after)))
    )
    ramp = np.linspace(-1.0, 1.0, 256)[np.newaxis]
    bar = render_difference(ramp, background=Image.new("RGBA", (bar_width, height), _PAPER))
    draw.text((left, top), before, _MUTED, font)
    bar_left = left + round(font.getlength(before))
    figure.paste(bar, (bar_left, top))
    draw.rectangle((bar_left - 1, top - 1, bar_left + bar_width, top + height), outline=_FRAME)
    draw.text((bar_left + bar_width, top), after, _MUTED, font)


def _font(size: float) -> ImageFont.FreeTypeFont:
    from PIL import ImageFont

    return ImageFont.load_default(size=max(_MIN_FONT, round(size)))


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent


def _fitted(text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """``text`` on one line, shortened with an ellipsis to fit ``width`` pixels."""
    line = " ".join(text.split())
    if font.getlength(line) <= width:
        return line
    while line and font.getlength(line + _ELLIPSIS) > width:
        line = line[:-1]
    return line.rstrip() + _ELLIPSIS
