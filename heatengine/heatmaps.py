"""The result of a run: published cells, smoothed grids, layers and statistics."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from heatengine.config import AggregateConfig
from heatengine.privacy import SuppressionStats
from heatengine.schema import EXCLUSION_REASONS, QUARANTINE_REASONS

#: Every row reason, in the order they are checked.
REASON_NAMES = EXCLUSION_REASONS + QUARANTINE_REASONS

LayerRef = str | int | Mapping[str, str]
#: Exact counts of the data in a DP run's statistics: for the operator, never written.
PRIVATE_DP_STATISTICS = ("screens_considered",)
#: Exact counts a DP release does not support; its manifest leaves them out (null).
EXACT_COUNTS = (
    "rows_in",
    "rows_eligible",
    "quarantined",
    "excluded",
    "screens_renamed",
    "consent_coverage",
)


def _shares(summary: dict[str, Any]) -> dict[str, Any]:
    """Coverage without the counts behind it, per run and per layer."""
    layers = [
        {k: v for k, v in layer.items() if k not in ("seen", "consented")}
        for layer in summary["layers"]
    ]
    return {"coverage": summary["coverage"], "layers": layers}


@dataclass(frozen=True)
class RowCounts:
    """Where the rows behind a partial went, and how ids were handled."""

    rows_in: int
    rows_eligible: int
    quarantined: dict[str, int]
    excluded: dict[str, int]
    dropped_columns: list[str]
    consent_assumed: bool
    user_column: str
    key_epoch: str | None
    # Distinct screen names route cleaning changed; merged days give the larger count,
    # a lower bound, since the names themselves are not kept.
    screens_renamed: int = 0
    pii_input: dict[str, Any] | None = None  # heatengine.pii.input_summary of the input
    # heatengine.coverage.summarise for "users" and "sessions"; None when the counts of
    # several nightly days are merged, as their people cannot be matched afterwards.
    consent_coverage: dict[str, Any] | None = None

    def merged(self, other: RowCounts) -> RowCounts:
        """The counts of two sets of rows together."""

        def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            return {r: a.get(r, 0) + b.get(r, 0) for r in REASON_NAMES if a.get(r) or b.get(r)}

        return RowCounts(
            rows_in=self.rows_in + other.rows_in,
            rows_eligible=self.rows_eligible + other.rows_eligible,
            quarantined=add(self.quarantined, other.quarantined),
            excluded=add(self.excluded, other.excluded),
            dropped_columns=sorted({*self.dropped_columns, *other.dropped_columns}),
            consent_assumed=self.consent_assumed or other.consent_assumed,
            user_column=self.user_column,
            key_epoch=self.key_epoch,
            screens_renamed=max(self.screens_renamed, other.screens_renamed),
            pii_input=_union_pii(self.pii_input, other.pii_input),
            consent_coverage=None,
        )


def _union_pii(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    if a is None or b is None:
        return a or b
    columns = {c: sorted({*a["columns"].get(c, []), *b["columns"].get(c, [])})
               for c in sorted({*a["columns"], *b["columns"]})}  # fmt: skip
    return {"kinds": sorted({*a["kinds"], *b["kinds"]}), "columns": columns}


@dataclass(frozen=True, kw_only=True)
class RunStats(RowCounts):
    """Every count a run reports: its rows (see :class:`RowCounts`), window and results.

    Row counts always satisfy ``rows_in == rows_eligible + sum(quarantined.values())
    + sum(excluded.values())``. Published totals are derived from the suppressed grid.
    ``dp`` describes a differentially private release (noise, scale, 95% interval,
    epsilon and delta spent, layers selected); ``None`` for k-anonymity.
    """

    as_of: str
    window_start: str
    suppression: SuppressionStats
    published_taps: int
    dp: dict[str, Any] | None = None

    @property
    def rows_quarantined(self) -> int:
        """Rows quarantined for any reason."""
        return sum(self.quarantined.values())

    @property
    def rows_excluded(self) -> int:
        """Rows excluded by consent or retention."""
        return sum(self.excluded.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain values, all of them."""
        return asdict(self)

    def publishable(self) -> dict[str, Any]:
        """The values written to a store's manifest.

        No sums over suppressed cells; consent coverage as shares only (counts next to
        the published users would give away users seen only in hidden cells). A DP
        release keeps only what it supports: exact row counts and coverage are left out.
        """
        out = {**asdict(self), "suppression": self.suppression.publishable()}
        if self.consent_coverage is not None:
            out["consent_coverage"] = {
                what: _shares(summary) for what, summary in self.consent_coverage.items()
            }
        if self.dp is not None:
            out["dp"] = {k: v for k, v in self.dp.items() if k not in PRIVATE_DP_STATISTICS}
            out |= dict.fromkeys(EXACT_COUNTS)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunStats:
        """Rebuild statistics written by :meth:`to_dict` or :meth:`publishable`."""
        values = dict(data)
        values["suppression"] = SuppressionStats(**values["suppression"])
        return cls(**values)


@dataclass(frozen=True)
class HeatmapSet:
    """Published heatmaps of one run, one layer per screen and segment values.

    Attributes
    ----------
    config
        The configuration that produced it.
    layers
        One row per published layer: ``layer`` (its id), the layer columns, ``users``
        (distinct users over published cells), ``taps`` and ``cells`` (published),
        ``peak`` (largest smoothed density).
    cells
        One row per published cell: layer columns, ``cx``, ``cy``, ``users``, ``taps``,
        ``density`` (smoothed value of the chosen measure).
    grids
        Smoothed grids, shape ``(layers, rows, columns)``, in the order of ``layers``.
    stats
        Row counts by reason, suppression statistics and published totals.
    quarantine
        Quarantined rows with their ``reason`` and no user column; kept apart from the
        published outputs and not written by :meth:`write`.
    elements
        With ``config.elements``: one row per published layer and element with at least
        ``k`` users: ``layer``, layer columns, ``element``, ``users``, ``taps``,
        ``screen_users`` and ``engagement`` (its users over the screen's), all from
        published cells; ``layers`` then also has ``dead_taps``, ``dead_tap_share`` and
        ``elements_suppressed``.
    dead_cells
        With ``config.elements``: boolean ``(layers, cells)``, the cells no element of the
        layer's screen covers; the dead-tap heatmap is the grid there.
    """

    config: AggregateConfig
    layers: pl.DataFrame
    cells: pl.DataFrame
    grids: np.ndarray
    stats: RunStats
    quarantine: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False)
    elements: pl.DataFrame | None = field(default=None, repr=False)
    dead_cells: np.ndarray | None = field(default=None, repr=False)
    view: str = ""  # "" for the heatmaps, "dead taps" for :meth:`dead_taps_view`

    def __repr__(self) -> str:
        return (
            f"HeatmapSet(layers={self.layers.height}, cells={self.cells.height}, "
            f"grid={self.config.grid.columns}x{self.config.grid.rows}, "
            f"k={self.config.privacy.k}, measure={self.config.measure!r})"
        )

    def layer_index(self, layer: LayerRef) -> int:
        """Position of a layer given by id (``"layer_0003"``), position, screen name (when
        no segments are configured) or a mapping of layer column values.

        Raises
        ------
        KeyError
            Naming the layer and listing the published ones.
        """
        if isinstance(layer, int) and not isinstance(layer, bool):
            if 0 <= layer < self.layers.height:
                return layer
        elif isinstance(layer, str):
            ids = self.layers["layer"].to_list()
            if layer in ids:
                return ids.index(layer)
            if not self.config.segments:
                return self.layer_index({"screen": layer})
        elif isinstance(layer, Mapping):
            wanted = {str(k): str(v) for k, v in layer.items()}
            columns = self.config.layer_columns
            if set(wanted) == set(columns):
                for i, row in enumerate(self.layers.select(columns).iter_rows(named=True)):
                    if row == wanted:
                        return i
        msg = f"no published layer {layer!r}; published layers: {self.describe_layers()}"
        raise KeyError(msg)

    def dead_taps_view(self) -> HeatmapSet:
        """The same layers with each grid kept only where no UI element is: the dead taps.

        Raises
        ------
        ValueError
            The run had no elements (``config.elements``).
        """
        if self.dead_cells is None:
            msg = "dead taps need UI elements: aggregate with elements (CLI: --elements FILE)"
            raise ValueError(msg)
        from heatengine.smooth import smooth_grids

        # Smoothed from the dead cells' published counts only: blurring the full grid and
        # masking it would spread busy buttons into the empty space around them.
        columns = list(self.config.layer_columns)
        positions = self.layers.select(columns).with_row_index("position")
        cells = self.cells.join(positions, on=columns, how="left", nulls_equal=True)
        grid = self.config.grid
        counts = np.zeros((self.layers.height, grid.cells))
        flat = cells["cy"].to_numpy().astype(np.int64) * grid.columns + cells["cx"].to_numpy()
        counts[cells["position"].to_numpy(), flat] = cells[self.config.measure].to_numpy()
        counts *= self.dead_cells
        grids = smooth_grids(counts.reshape(self.grids.shape), self.config.sigma)
        peaks = grids.reshape(len(grids), -1).max(axis=1, initial=0.0)
        layers = self.layers.with_columns(peak=pl.Series(peaks, dtype=pl.Float64))
        return replace(self, grids=grids, layers=layers, view="dead taps")

    def describe_layers(self) -> str:
        """The published layers as ``id (screen, segment=value)``, comma separated."""
        if self.layers.height == 0:
            return "(none)"
        return ", ".join(
            f"{row['layer']} ({self.layer_label(i)})"
            for i, row in enumerate(self.layers.iter_rows(named=True))
        )

    def layer_label(self, layer: LayerRef) -> str:
        """A readable name, for example ``home, platform=ios``."""
        row = self.layers.row(self.layer_index(layer), named=True)
        parts = [row["screen"], *(f"{s}={row[s]}" for s in self.config.segments)]
        return ", ".join(parts)

    def grid(self, screen: str, **segments: str) -> np.ndarray:
        """The smoothed grid of one layer, shape ``(rows, columns)``.

        Examples
        --------
        ``heatmaps.grid("home", platform="ios")`` with ``segments=("platform",)``.
        """
        return self.grids[self.layer_index({"screen": screen, **segments})]

    def write(self, directory: str | os.PathLike[str]) -> None:
        """Write ``cells.parquet``, ``grids.npz`` and ``manifest.json`` atomically."""
        from heatengine.store import write_store

        write_store(self, directory)
