"""Legends and captions: a colour bar in the measure's units and the layer's facts.

Every number comes from the published result (the manifest, when read from a store):
the layer's peak, its published user count, k and the time window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from heatengine.colormaps import get_colormap
from heatengine.render import LOG_DECADES, check_scale

if TYPE_CHECKING:
    from PIL import Image

    from heatengine.heatmaps import HeatmapSet

MEASURE_UNITS = {
    "users": "distinct users per cell (smoothed)",
    "taps": "taps per cell (smoothed, capped per user)",
}
TICKS = 5
#: Narrower images are enlarged (nearest neighbour) so the footer stays readable.
MIN_LEGEND_WIDTH = 360
FOOTER_TEXT = (40, 40, 40, 255)
FOOTER_MUTED = (110, 110, 110, 255)
FOOTER_BACKGROUND = (255, 255, 255, 255)


def unscale(position: np.ndarray, scale: str) -> np.ndarray:
    """Inverse of :func:`heatengine.render.apply_scale`: colour-map position to value / vmax."""
    if scale == "sqrt":
        return position**2
    if scale == "log":
        return (10.0 ** (position * LOG_DECADES) - 1.0) / (10.0**LOG_DECADES - 1.0)
    check_scale(scale)
    return position


def legend_ticks(vmax: float, scale: str, count: int = TICKS) -> list[tuple[float, str]]:
    """``(position on the bar, label)`` pairs, evenly spaced along the bar.

    The labels are values in the measure's units; the last is ``vmax`` itself.

    Examples
    --------
    >>> legend_ticks(8.0, "linear")
    [(0.0, '0'), (0.25, '2'), (0.5, '4'), (0.75, '6'), (1.0, '8')]
    >>> [label for _, label in legend_ticks(100.0, "sqrt")]
    ['0', '6.25', '25', '56.2', '100']
    """
    positions = np.linspace(0.0, 1.0, count)
    values = unscale(positions, scale) * vmax
    return [(float(p), _number(float(v))) for p, v in zip(positions, values, strict=True)]


def _number(value: float) -> str:
    if value == 0:
        return "0"
    digits = max(0, 2 - int(np.floor(np.log10(abs(value)))))  # three significant digits
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def layer_title(heatmaps: HeatmapSet, index: int) -> str:
    """``home · platform=ios`` (``· dead taps`` added for the dead-tap view)."""
    title = heatmaps.layer_label(index).replace(", ", " · ")
    return f"{title} · {heatmaps.view}" if heatmaps.view else title


def layer_caption(heatmaps: HeatmapSet, index: int) -> tuple[str, ...]:
    """Caption lines for one layer, from the published numbers only."""
    row = heatmaps.layers.row(index, named=True)
    stats = heatmaps.stats
    window = f"{stats.window_start[:10]} to {stats.as_of[:10]}"
    if stats.dp is not None:
        return (
            f"{privacy_summary(heatmaps)} · {row['cells']:,} noisy cells",
            f"window {window}",
        )
    lines = (
        f"{row['users']:,} users in published cells · {row['cells']:,} cells",
        f"k = {heatmaps.config.privacy.k} · window {window}",
    )
    return lines + element_caption(heatmaps, index) + metric_caption(heatmaps, index)


def metric_caption(heatmaps: HeatmapSet, index: int) -> tuple[str, ...]:
    """``rage taps 0.5% · consent coverage 88.4%`` where the run measured them."""
    row = heatmaps.layers.row(index, named=True)
    parts = []
    if row.get("rage_tap_share") is not None:
        parts.append(f"rage taps {row['rage_tap_share']:.1%}")
    users = (heatmaps.stats.consent_coverage or {}).get("users") or {}
    columns = heatmaps.config.layer_columns
    for layer in users.get("layers", []):
        if all(layer[c] == row[c] for c in columns) and layer["coverage"] is not None:
            parts.append(f"consent coverage {layer['coverage']:.1%}")
    return (" · ".join(parts),) if parts and heatmaps.view == "" else ()


def element_caption(heatmaps: HeatmapSet, index: int) -> tuple[str, ...]:
    """``dead taps 4.4% · pay_button 85% of users, ...`` when the run had UI elements."""
    if heatmaps.elements is None:
        return ()
    row = heatmaps.layers.row(index, named=True)
    if row["elements_suppressed"] is None:  # no elements are defined for this screen
        return ()
    share = row["dead_tap_share"]
    dead = "dead taps: withheld (fewer than k users)" if share is None else f"dead taps {share:.1%}"
    top = (
        heatmaps.elements.filter(pl.col("layer") == row["layer"])
        .sort("engagement", descending=True)
        .head(2)
    )
    engaged = ", ".join(f"{r['element']} {r['engagement']:.0%}" for r in top.iter_rows(named=True))
    return (f"{dead} · top: {engaged or 'no element with k users'}",)


def privacy_summary(heatmaps: HeatmapSet) -> str:
    """``k = 10`` or ``DP epsilon 1, delta 1e-06 · noise ±12 per cell (95%)``.

    Greek letters are spelled out: the legend's built-in font has no glyphs for them.
    """
    dp = heatmaps.stats.dp
    if dp is None:
        return f"k = {heatmaps.config.privacy.k}"
    return (
        f"DP epsilon {dp['epsilon_spent']:.3g}, delta {dp['delta_spent']:.2g} · "
        f"noise ±{dp['interval_95']:.0f} per cell (95%)"
    )


def add_legend(
    image: Image.Image,
    *,
    title: str,
    caption: tuple[str, ...],
    colormap: str,
    scale: str,
    vmax: float,
    unit: str,
    saturated: bool = False,
) -> Image.Image:
    """The image with a footer: title, caption lines, a colour bar and its ticks.

    ``saturated`` marks the top tick ``≥`` (some published values exceed ``vmax``).
    """
    from PIL import Image, ImageDraw, ImageFont

    if image.width < MIN_LEGEND_WIDTH:
        factor = -(-MIN_LEGEND_WIDTH // image.width)
        image = image.resize(
            (image.width * factor, image.height * factor), Image.Resampling.NEAREST
        )
    width, height = image.size
    unit_px = max(width / 390.0, 0.6)
    fonts = {
        "title": ImageFont.load_default(size=round(17 * unit_px)),
        "text": ImageFont.load_default(size=round(12 * unit_px)),
    }
    margin, line = round(14 * unit_px), round(17 * unit_px)
    bar_height = round(12 * unit_px)
    footer_height = margin + round(24 * unit_px) + line * len(caption) + bar_height + 3 * line
    canvas = Image.new("RGBA", (width, height + footer_height), FOOTER_BACKGROUND)
    canvas.alpha_composite(image.convert("RGBA"))
    draw = ImageDraw.Draw(canvas)
    y = height + margin
    draw.text((margin, y), title, font=fonts["title"], fill=FOOTER_TEXT)
    y += round(24 * unit_px)
    for text in caption:
        draw.text((margin, y), text, font=fonts["text"], fill=FOOTER_MUTED)
        y += line
    y += line // 3
    bar_width = width - 2 * margin
    table = get_colormap(colormap)
    ramp = table[np.linspace(0, 255, max(bar_width, 1)).round().astype(int)]
    bar = Image.fromarray(np.repeat(ramp[np.newaxis], bar_height, axis=0).astype(np.uint8))
    canvas.paste(bar, (margin, y))
    draw.rectangle((margin, y, margin + bar_width - 1, y + bar_height - 1), outline=FOOTER_MUTED)
    y += bar_height + 2
    for position, label in legend_ticks(vmax, scale):
        label = f"≥ {label}" if saturated and position == 1 else label
        x = margin + position * (bar_width - 1)
        draw.line((x, y - 2, x, y + 2), fill=FOOTER_MUTED)
        anchor = "la" if position == 0 else "ra" if position == 1 else "ma"
        draw.text((x, y + 3), label, font=fonts["text"], fill=FOOTER_TEXT, anchor=anchor)
    y += line + 2
    draw.text((margin, y), f"{unit} · {scale} scale", font=fonts["text"], fill=FOOTER_MUTED)
    return canvas
