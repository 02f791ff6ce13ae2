"""Render every layer of a result: screenshots, shared scales, legends, in parallel.

Screenshots come from a folder (``home.png`` for screen ``home``) or a mapping file
(JSON ``{"screen": "file"}`` or CSV ``screen,file``, paths relative to the file); one
whose aspect ratio differs from the grid's by more than 2% is reported, since the
heatmap is stretched to fit it.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from heatengine.colormaps import get_colormap
from heatengine.errors import HeatengineError
from heatengine.heatmaps import HeatmapSet
from heatengine.legend import layer_caption, layer_title
from heatengine.render import (
    check_scale,
    find_background,
    layer_file_stems,
    open_screenshot,
    render_png,
)
from heatengine.schema import RAGE_SUFFIX

ASPECT_TOLERANCE = 0.02
ScaleMax = float | str  # "layer", "shared" or a fixed number

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RenderedLayer:
    """One rendered layer: where it went, what it shows, what to know about it."""

    path: Path
    title: str
    caption: tuple[str, ...]
    background: Path | None
    warnings: tuple[str, ...]


DEAD_TAPS_SUFFIX = "_dead-taps"


def load_background_map(path: str | os.PathLike[str]) -> dict[str, Path]:
    """Screen name to screenshot, from JSON (an object) or CSV (``screen,file``).

    Relative file names are taken from the mapping file's folder.
    """
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        msg = f"cannot read the screenshot mapping {str(file)!r}: {exc.strerror}"
        raise HeatengineError(msg) from None
    if file.suffix.lower() == ".json":
        try:
            pairs = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"the screenshot mapping {str(file)!r} is not valid JSON: {exc.msg}"
            raise HeatengineError(msg) from None
        if not isinstance(pairs, dict) or not all(isinstance(v, str) for v in pairs.values()):
            msg = f"the screenshot mapping {str(file)!r} must be an object of screen: file"
            raise HeatengineError(msg)
        items = list(pairs.items())
    else:
        rows = [row for row in csv.reader(text.splitlines()) if row]
        if rows and [c.strip().lower() for c in rows[0]] == ["screen", "file"]:
            rows = rows[1:]
        if any(len(row) != 2 for row in rows):
            msg = f"the screenshot mapping {str(file)!r} must have two columns: screen,file"
            raise HeatengineError(msg)
        items = [(screen.strip(), name.strip()) for screen, name in rows]
    return {screen: file.parent / name for screen, name in items}


def aspect_warning(image_size: tuple[int, int], grid_shape: tuple[int, int]) -> str | None:
    """A message when a screenshot's aspect ratio is more than 2% off the grid's."""
    width, height = image_size
    rows, columns = grid_shape
    image_ratio, grid_ratio = width / height, columns / rows
    off = abs(image_ratio / grid_ratio - 1.0)
    if off <= ASPECT_TOLERANCE:
        return None
    return (
        f"screenshot is {width}x{height} (aspect {image_ratio:.3f}) but the grid is "
        f"{columns}x{rows} (aspect {grid_ratio:.3f}): the heatmap is stretched by {off:.1%}"
    )


def _vmax_for(heatmaps: HeatmapSet, scale_max: ScaleMax) -> Callable[[int], float | None]:
    if scale_max == "layer":
        return lambda index: None
    if scale_max == "shared":
        shared = float(heatmaps.layers["peak"].max() or 0.0)
        return lambda index: shared
    if isinstance(scale_max, int | float) and not isinstance(scale_max, bool):
        if not scale_max > 0:
            msg = f"a fixed scale maximum must be positive, got {scale_max}"
            raise HeatengineError(msg)
        return lambda index: float(scale_max)
    msg = f"scale maximum must be 'layer', 'shared' or a number, got {scale_max!r}"
    raise HeatengineError(msg)


def render_layers(
    heatmaps: HeatmapSet,
    directory: str | os.PathLike[str],
    *,
    colormap: str = "inferno",
    scale: str = "linear",
    scale_max: ScaleMax = "layer",
    backgrounds: str | os.PathLike[str] | None = None,
    background_map: Mapping[str, Path] | None = None,
    legend: bool = True,
    min_alpha: float = 0.0,
    workers: int | None = None,
    progress: Progress | None = None,
) -> list[RenderedLayer]:
    """Render every published layer to ``directory/<safe layer name>.png``.

    Parameters
    ----------
    colormap, scale
        Colour map name and ``"linear"``, ``"sqrt"`` or ``"log"``.
    scale_max
        ``"layer"``: each layer's own published peak; ``"shared"``: the largest peak of
        all layers, so screens compare; a number: that value. Larger values saturate.
    backgrounds, background_map
        Screenshots by screen name: a folder, or a mapping (see
        :func:`load_background_map`), which wins where both name a screen.
    legend
        Add the footer with title, caption and colour bar.
    workers
        Threads (default: 2); Pillow and numpy release the GIL for the heavy parts.
    progress
        Called with ``(done, total)`` after each layer.
    """
    get_colormap(colormap)  # fail before writing anything
    check_scale(scale)
    vmax_for = _vmax_for(heatmaps, scale_max)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    stems = layer_file_stems(heatmaps)
    mapping = dict(background_map or {})

    # A rage-tap layer is drawn on its screen's screenshot.
    screens = [s.removesuffix(RAGE_SUFFIX) for s in heatmaps.layers["screen"].to_list()]
    chosen = [mapping.get(screen) or find_background(backgrounds, screen) for screen in screens]
    outputs = [folder / f"{stem}.png" for stem in stems]
    # With UI elements, each layer also gets its dead-tap image beside it.
    views = [(heatmaps, i, outputs[i], chosen[i]) for i in range(len(stems))]
    if heatmaps.dead_cells is not None:
        dead = heatmaps.dead_taps_view()
        laid_out = heatmaps.layers["elements_suppressed"].is_not_null().to_list()
        views += [
            (dead, i, folder / f"{stem}{DEAD_TAPS_SUFFIX}.png", chosen[i])
            for i, stem in enumerate(stems)
            if laid_out[i]  # screens with no elements have no dead taps to show
        ]
    clobbered = {v[2].resolve() for v in views} & {b.resolve() for b in chosen if b is not None}
    if clobbered:
        msg = (
            f"rendering would overwrite the screenshot {str(sorted(clobbered)[0])!r}; "
            "write the images to another folder"
        )
        raise HeatengineError(msg)

    def render_one(job: int) -> RenderedLayer:
        view, index, output, path = views[job]
        warnings, image = [], None
        if path is not None:
            image = open_screenshot(path)  # loaded once, upright, size checked
            warning = aspect_warning(image.size, heatmaps.config.grid.shape)
            warnings += [f"{path.name}: {warning}"] if warning else []
        render_png(
            view,
            index,
            output,
            colormap,
            image,
            vmax=vmax_for(index) if view is heatmaps else None,
            scale=scale,
            legend=legend,
            min_alpha=min_alpha,
        )
        title, caption = layer_title(view, index), layer_caption(view, index)
        return RenderedLayer(output, title, caption, path, tuple(warnings))

    total = len(views)
    results: list[RenderedLayer] = []
    with ThreadPoolExecutor(max_workers=workers or 2) as pool:
        for done, result in enumerate(pool.map(render_one, range(total)), 1):
            results.append(result)
            if progress is not None:
                progress(done, total)
    return results


def write_layer_gallery(
    heatmaps: HeatmapSet, directory: str | os.PathLike[str], rendered: list[RenderedLayer]
) -> Path:
    """``index.html`` with a thumbnail, the caption numbers and a link per rendered layer."""
    from heatengine.gallery import GalleryEntry, write_gallery
    from heatengine.legend import MEASURE_UNITS, privacy_summary

    stats, config = heatmaps.stats, heatmaps.config
    protection = (
        privacy_summary(heatmaps)
        if stats.dp is not None
        else f"cells with fewer than {config.privacy.k} users are suppressed"
    )
    subtitle = (
        f"{MEASURE_UNITS[config.measure]} · window {stats.window_start[:10]} to "
        f"{stats.as_of[:10]} · {protection}"
    )
    users = (stats.consent_coverage or {}).get("users") or {}
    if users.get("coverage") is not None:
        subtitle += f" · consent coverage {users['coverage']:.1%} of users"
    entries = [GalleryEntry(r.path, r.title, r.caption + r.warnings) for r in rendered]
    return write_gallery(directory, entries, title="Tap heatmaps", subtitle=subtitle)
