"""heatengine: private, fast per-screen tap heatmaps.

Bins anonymised tap coordinates into per-screen grids with Numba, publishes only cells
that at least ``k`` distinct users tapped, smooths the suppressed grids and renders PNG
overlays. Heavy modules load on first use, so ``import heatengine`` stays fast.

Examples
--------
>>> import heatengine
>>> config = heatengine.AggregateConfig(grid=heatengine.GridSpec(32, 64), segments=("platform",))
>>> config.layer_columns
('screen', 'platform')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from heatengine._version import __version__
from heatengine.config import AggregateConfig, DominanceRule, GridSpec, PrivacyPolicy
from heatengine.errors import HeatengineError, QuarantineError, SchemaError, StoreError

if TYPE_CHECKING:
    from heatengine.budget import BudgetExceededError, BudgetPolicy
    from heatengine.dp import DPPolicy
    from heatengine.heatmaps import HeatmapSet, RunStats
    from heatengine.partial import Partial, merge_partials
    from heatengine.pipeline import aggregate
    from heatengine.privacy import SuppressionStats, suppress_sparse_cells
    from heatengine.pseudonym import PseudonymKey
    from heatengine.render import render_png
    from heatengine.smooth import smooth_grids
    from heatengine.store import read

_LAZY = {
    "BudgetExceededError": "heatengine.budget",
    "BudgetPolicy": "heatengine.budget",
    "DPPolicy": "heatengine.dp",
    "aggregate": "heatengine.pipeline",
    "HeatmapSet": "heatengine.heatmaps",
    "RunStats": "heatengine.heatmaps",
    "Partial": "heatengine.partial",
    "merge_partials": "heatengine.partial",
    "SuppressionStats": "heatengine.privacy",
    "suppress_sparse_cells": "heatengine.privacy",
    "PseudonymKey": "heatengine.pseudonym",
    "render_png": "heatengine.render",
    "smooth_grids": "heatengine.smooth",
    "read": "heatengine.store",
}

__all__ = [
    "AggregateConfig",
    "BudgetExceededError",
    "BudgetPolicy",
    "DPPolicy",
    "DominanceRule",
    "GridSpec",
    "HeatengineError",
    "HeatmapSet",
    "Partial",
    "PrivacyPolicy",
    "PseudonymKey",
    "QuarantineError",
    "RunStats",
    "SchemaError",
    "StoreError",
    "SuppressionStats",
    "__version__",
    "aggregate",
    "merge_partials",
    "read",
    "render_png",
    "smooth_grids",
    "suppress_sparse_cells",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'heatengine' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
