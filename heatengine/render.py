"""Render one heat grid to an RGBA image and save it as a deterministic PNG.

The grid (row 0 at the top of the screen) is normalised to ``[0, 1]``, resampled smoothly
to the output size, coloured with a colour map and made more opaque where it is denser.
Wherever the resampled density is exactly zero the overlay is fully transparent, so pixels
of a screenshot under empty or suppressed regions come out unchanged, byte for byte.

Resampling treats values and outline separately. Values are interpolated bilinearly: exact
at cell centres, never negative and never above the neighbouring cells, so tiny smoothing
tails cannot flicker between zero and non-zero. The outline of the heat is the half-level
contour of an occupancy map: the 0/1 map of non-zero cells is blurred with a 3x3 binomial
kernel, divided by its 3x3 local maximum (so lone cells and thin lines survive) and upscaled
bicubically. Every non-zero cell centre lies inside the outline and every zero cell centre
outside it, but the outline is a smooth curve instead of a staircase of cells, and the
overlay stays exactly zero more than a cell away from any non-zero cell.

Opacity defaults to ``0.9 * sqrt(density)``: cold regions are faint but visible and the
overlay fades out continuously, so smoothing tails never show up as hard-edged veils. A
``min_alpha`` above 0 instead marks every non-zero pixel with at least that opacity.

Pillow is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import os
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from heatengine.atomic import write_atomically
from heatengine.colormaps import get_colormap
from heatengine.errors import HeatengineError
from heatengine.names import safe_stem, unique_stems

if TYPE_CHECKING:
    from PIL import Image

    from heatengine.heatmaps import HeatmapSet, LayerRef

MAX_BACKGROUND_PIXELS = 40_000_000
#: Without a screenshot, images of large grids are kept near this many pixels.
MAX_OUTPUT_PIXELS = 4_000_000
"""Screenshots with more pixels than this are refused before their pixels are decoded."""

BACKGROUND_COLOUR = (237, 237, 237, 255)
"""Opaque light grey (#EDEDED) used when no background is given."""

PNG_COMPRESS_LEVEL = 6
"""Fixed zlib level for :func:`save_png`, so equal images give equal bytes."""

# Occupancy at non-zero cells is raised to at least this, and at zero cells lowered to at
# most 1 - this, so the 0.5 outline always separates the two kinds of cell centre.
_OCCUPIED_FLOOR = 0.55


def render_grid(
    grid: np.ndarray,
    *,
    colormap: str = "inferno",
    vmax: float | None = None,
    background: Image.Image | str | os.PathLike[str] | None = None,
    cell_pixels: int = 6,
    min_alpha: float = 0.0,
    max_alpha: float = 0.9,
    scale: str = "linear",
) -> Image.Image:
    """Render a 2-D density grid as an RGBA heat overlay.

    Parameters
    ----------
    grid : numpy.ndarray
        Shape ``(rows, columns)``; row 0 is the top of the screen. Finite, non-negative
        densities (already smoothed and privacy-suppressed).
    colormap : str
        One of :data:`heatengine.colormaps.COLORMAP_NAMES`.
    vmax : float or None
        Density shown with the hottest colour; larger values saturate. ``None`` uses the
        grid's maximum. An all-zero grid, or ``vmax=0``, draws no heat at all.
    background : PIL.Image.Image, str, os.PathLike or None
        ``None`` draws on an opaque light grey (:data:`BACKGROUND_COLOUR`); the string
        ``"transparent"`` returns the heat layer alone; any other string or path is a
        screenshot file; an image is used as is. Screenshots and images set the output size.
    cell_pixels : int
        Pixels per grid cell along each axis when no screenshot or image is given.
    scale : str
        How values between 0 and ``vmax`` map onto the colour map: ``"linear"``,
        ``"sqrt"`` or ``"log"`` (see :func:`apply_scale`).
    min_alpha, max_alpha : float
        Opacity of the faintest and of the densest heat, ``0 <= min_alpha <= max_alpha
        <= 1``; in between, opacity rises with the square root of the normalised density.
        Opacity is exactly 0 wherever that density is 0, whatever ``min_alpha`` is.

    Returns
    -------
    PIL.Image.Image
        An RGBA image of the background's size, or ``(columns * cell_pixels,
        rows * cell_pixels)`` without one.

    Raises
    ------
    HeatengineError
        (a ``ValueError``) for an invalid grid, colour map, ``vmax``, ``cell_pixels`` or
        alpha, or a screenshot that is not a readable image or has more than
        :data:`MAX_BACKGROUND_PIXELS` pixels.
    TypeError
        If ``background`` is of an unsupported type.
    """
    from PIL import Image

    table = get_colormap(colormap)
    values = _validated_grid(grid)
    _check_cell_pixels(cell_pixels)
    _check_alphas(min_alpha, max_alpha)
    density = apply_scale(_normalised(values, vmax), scale)
    base = _background_image(background)
    rows, columns = values.shape
    size = base.size if base is not None else (columns * cell_pixels, rows * cell_pixels)
    heat = _heat_layer(_resampled(density, size), table, min_alpha, max_alpha)
    if _is_transparent(background):
        return heat
    if base is None:
        base = Image.new("RGBA", size, BACKGROUND_COLOUR)
    return Image.alpha_composite(base, heat)


def save_png(image: Image.Image, path: str | os.PathLike[str]) -> None:
    """Write ``image`` to ``path`` as a PNG, atomically and reproducibly.

    The PNG holds pixels only (no time, text or colour-profile chunks) and is compressed at
    the fixed :data:`PNG_COMPRESS_LEVEL`, so the same image always gives the same bytes. It
    is written to a temporary file in the same directory and then renamed over ``path``, so
    readers never see a partial file.

    Parameters
    ----------
    image : PIL.Image.Image
        The image to save, e.g. from :func:`render_grid`.
    path : str or os.PathLike
        Destination file; its directory must exist.
    """
    write_atomically(
        path,
        lambda temporary: image.save(
            temporary, format="PNG", compress_level=PNG_COMPRESS_LEVEL, icc_profile=None
        ),
    )


SCALES = ("linear", "sqrt", "log")
#: The log scale spans this many decades below the maximum.
LOG_DECADES = 3


def apply_scale(normalised: np.ndarray, scale: str) -> np.ndarray:
    """Map values in [0, 1] (value / vmax) to colour-map positions in [0, 1].

    ``linear`` keeps them; ``sqrt`` takes the square root; ``log`` is
    ``log10(1 + (10**LOG_DECADES - 1) * v) / LOG_DECADES``, so each of the last three
    decades below the maximum gets a third of the colour map. 0 stays 0, 1 stays 1.

    Examples
    --------
    >>> apply_scale(np.array([0.0, 0.25, 1.0]), "sqrt").tolist()
    [0.0, 0.5, 1.0]
    """
    if scale == "sqrt":
        return np.sqrt(normalised)
    if scale == "log":
        return np.log10(1.0 + (10.0**LOG_DECADES - 1.0) * normalised) / LOG_DECADES
    check_scale(scale)
    return normalised


def check_scale(scale: str) -> None:
    """Raise for a scale name that is not one of :data:`SCALES`."""
    if scale not in SCALES:
        msg = f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}"
        raise HeatengineError(msg)


def _validated_grid(grid: np.ndarray) -> np.ndarray:
    values = np.asarray(grid)
    if values.ndim != 2 or values.size == 0:
        msg = f"grid must be a non-empty 2-D array (rows, columns), got shape {values.shape}"
        raise HeatengineError(msg)
    if values.dtype.kind not in "biuf":
        msg = f"grid must hold real numbers, got dtype {values.dtype}"
        raise HeatengineError(msg)
    values = values.astype(np.float64)
    for bad, rule in ((~np.isfinite(values), "finite"), (values < 0, "non-negative")):
        if bad.any():
            row, column = np.argwhere(bad)[0]
            msg = f"grid values must be {rule}, but grid[{row}, {column}] is {values[row, column]}"
            raise HeatengineError(msg)
    return values


def _check_cell_pixels(cell_pixels: int) -> None:
    if not isinstance(cell_pixels, Integral) or cell_pixels < 1:
        msg = f"cell_pixels must be a positive integer, got {cell_pixels!r}"
        raise HeatengineError(msg)


def _check_alphas(min_alpha: float, max_alpha: float) -> None:
    if not 0.0 <= min_alpha <= max_alpha <= 1.0:
        msg = (
            "alphas must satisfy 0 <= min_alpha <= max_alpha <= 1, "
            f"got min_alpha={min_alpha!r}, max_alpha={max_alpha!r}"
        )
        raise HeatengineError(msg)


def _normalised(values: np.ndarray, vmax: float | None) -> np.ndarray:
    top = values.max() if vmax is None else vmax
    if not isinstance(top, Real) or not 0.0 <= top < np.inf:
        msg = f"vmax must be a finite number >= 0, got {vmax!r}"
        raise HeatengineError(msg)
    if top == 0:
        return np.zeros_like(values)
    return np.clip(values / top, 0.0, 1.0)


def _is_transparent(background: object) -> bool:
    return isinstance(background, str) and background == "transparent"


def _background_image(background: object) -> Image.Image | None:
    from PIL import Image

    if background is None or _is_transparent(background):
        return None
    if isinstance(background, Image.Image):
        return background.convert("RGBA")
    if isinstance(background, str | os.PathLike):
        return open_screenshot(os.fspath(background))
    msg = (
        "background must be None, 'transparent', a file path or a PIL image, "
        f"got {type(background).__name__}"
    )
    raise TypeError(msg)


def open_screenshot(name: str | bytes | os.PathLike[str]) -> Image.Image:
    """A screenshot as upright 8-bit RGBA; oversized or unreadable files are refused."""
    from PIL import Image, ImageOps

    try:
        with Image.open(name) as image:
            _check_pixel_count(name, image.size)
            upright = ImageOps.exif_transpose(image)  # as viewers show a rotated JPEG
            return _eight_bit(upright).convert("RGBA")
    except Image.DecompressionBombError as error:
        msg = f"background {name!r} is too large to load safely: {error}"
        raise HeatengineError(msg) from error
    except OSError as error:
        msg = f"background {name!r} is not a readable image: {error}"
        raise HeatengineError(msg) from error


def _eight_bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit greyscale scaled to 8 bits (Pillow's convert would clip to white)."""
    from PIL import Image

    if image.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return image
    values = np.asarray(image, dtype=np.float64)
    top = values.max()
    scaled = values / (65535.0 if top > 255 else 255.0) * 255.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _check_pixel_count(name: str | bytes, size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_BACKGROUND_PIXELS:
        msg = (
            f"background {name!r} is {width}x{height} = {width * height:,} pixels, "
            f"more than the {MAX_BACKGROUND_PIXELS:,} allowed"
        )
        raise HeatengineError(msg)


def _resampled(density: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    values = np.clip(_resized(density, size, Image.Resampling.BILINEAR), 0.0, 1.0)
    occupancy = _resized(_occupancy(density > 0), size, Image.Resampling.BICUBIC)
    return np.where(occupancy > 0.5, values, np.float32(0.0))


def _resized(field: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(field.astype(np.float32))
    return np.asarray(image.resize(size, resample))


def _occupancy(occupied: np.ndarray) -> np.ndarray:
    smoothed = _binomial_blur(occupied.astype(np.float64))
    local_max = _local_max(smoothed)
    relative = np.divide(smoothed, local_max, out=np.zeros_like(smoothed), where=local_max > 0)
    return np.where(
        occupied,
        np.maximum(relative, _OCCUPIED_FLOOR),
        np.minimum(relative, 1.0 - _OCCUPIED_FLOOR),
    )


def _binomial_blur(field: np.ndarray) -> np.ndarray:
    padded = np.pad(field, ((1, 1), (0, 0)), mode="edge")
    field = (padded[:-2] + 2.0 * padded[1:-1] + padded[2:]) / 4.0
    padded = np.pad(field, ((0, 0), (1, 1)), mode="edge")
    return (padded[:, :-2] + 2.0 * padded[:, 1:-1] + padded[:, 2:]) / 4.0


def _local_max(field: np.ndarray) -> np.ndarray:
    padded = np.pad(field, 1, mode="edge")
    return np.lib.stride_tricks.sliding_window_view(padded, (3, 3)).max(axis=(2, 3))


def _heat_layer(
    density: np.ndarray, table: np.ndarray, min_alpha: float, max_alpha: float
) -> Image.Image:
    from PIL import Image

    weight = np.sqrt(density.astype(np.float64))
    opacity = (1.0 - weight) * min_alpha + weight * max_alpha
    alpha = np.where(density > 0, np.rint(opacity * 255.0), 0.0).astype(np.uint8)
    colours = table[np.rint(density * 255.0).astype(np.uint8)]
    rgb = np.where(alpha[..., np.newaxis] > 0, colours, np.uint8(0))
    return Image.fromarray(np.dstack([rgb, alpha]))


BACKGROUND_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def render_png(
    heatmaps: HeatmapSet,
    layer: LayerRef,
    path: str | os.PathLike[str],
    colormap: str = "inferno",
    background: Image.Image | str | os.PathLike[str] | None = None,
    *,
    vmax: float | None = None,
    scale: str = "linear",
    legend: bool = False,
    cell_pixels: int = 6,
    min_alpha: float = 0.0,
) -> Path:
    """Render one published layer to a PNG file.

    Parameters
    ----------
    heatmaps
        The result of :func:`heatengine.aggregate` or :func:`heatengine.read`.
    layer
        Layer id (``"layer_0003"``), position, screen name (without segments) or a
        mapping such as ``{"screen": "home", "platform": "ios"}``.
    path
        Destination PNG, written atomically.
    colormap
        A colour map, see :data:`heatengine.colormaps.COLORMAP_NAMES`.
    background
        A screenshot (path or image) to draw on, resampling the heatmap to its size;
        ``None`` for a neutral grey, ``"transparent"`` for the heat layer alone.
    vmax
        Density drawn with the hottest colour (larger values saturate); default the
        layer's published peak.
    scale
        ``"linear"``, ``"sqrt"`` or ``"log"``.
    legend
        Add a footer with the layer's name, caption numbers and a colour bar in the
        measure's units.
    cell_pixels
        Pixels per cell without a screenshot.
    min_alpha
        Opacity of the faintest non-zero heat (empty cells stay fully transparent).

    Returns
    -------
    Path
        The PNG written.
    """
    index = heatmaps.layer_index(layer)
    grid = heatmaps.grids[index]
    top = float(grid.max()) if vmax is None else vmax
    # Large grids get fewer pixels per cell, so an image stays near MAX_OUTPUT_PIXELS.
    affordable = int(np.sqrt(MAX_OUTPUT_PIXELS / grid.size))
    cell_pixels = max(1, min(cell_pixels, affordable))
    image = render_grid(
        grid,
        colormap=colormap,
        vmax=top,
        background=background,
        cell_pixels=cell_pixels,
        min_alpha=min_alpha,
        scale=scale,
    )
    if legend:
        from heatengine.legend import MEASURE_UNITS, add_legend, layer_caption, layer_title

        image = add_legend(
            image,
            saturated=float(grid.max()) > top,
            title=layer_title(heatmaps, index),
            caption=layer_caption(heatmaps, index),
            colormap=colormap,
            scale=scale,
            vmax=top,
            unit=MEASURE_UNITS[heatmaps.config.measure],
        )
    save_png(image, path)
    return Path(path)


def find_background(directory: str | os.PathLike[str] | None, screen: str) -> Path | None:
    """The screenshot for ``screen`` in ``directory``: ``<screen>.png`` (or .jpg, .jpeg,
    .webp), by the exact name or by its safe file name; ``None`` when there is none."""
    if directory is None:
        return None
    folder = Path(directory)
    if not folder.is_dir():
        msg = f"the backgrounds directory {str(folder)!r} does not exist"
        raise HeatengineError(msg)
    stems = [safe_stem(screen)]
    if screen == Path(screen).name and screen not in (".", ".."):
        stems.insert(0, screen)  # the exact name, only when it cannot leave the folder
    for stem in stems:
        for suffix in BACKGROUND_SUFFIXES:
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def layer_file_stems(heatmaps: HeatmapSet) -> list[str]:
    """Unique, safe file stems per layer, e.g. ``home_platform-ios``."""
    segments = heatmaps.config.segments
    texts = [
        "_".join([row["screen"], *(f"{s}-{row[s]}" for s in segments)])
        for row in heatmaps.layers.iter_rows(named=True)
    ]
    return unique_stems(texts)
