"""Small, explicit tap frames for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from heatengine.config import AggregateConfig, DominanceRule, GridSpec, PrivacyPolicy
from heatengine.pseudonym import PseudonymKey

AS_OF = datetime(2026, 11, 30, tzinfo=UTC)
RECENT = AS_OF - timedelta(days=1)
KEY = PseudonymKey(b"heatengine test key, at least 32 bytes long")


def taps_frame(rows: list[dict], **columns) -> pl.DataFrame:
    """A canonical frame from row dicts; missing fields get valid defaults."""
    defaults = {
        "screen": "home",
        "x": 0.5,
        "y": 0.5,
        "user_id": "u1",
        "ts": RECENT,
        "consent": True,
    }
    filled = [{**defaults, **columns, **row} for row in rows]
    schema = {
        "screen": pl.String,
        "x": pl.Float64,
        "y": pl.Float64,
        "user_id": pl.String,
        "ts": pl.Datetime("us", "UTC"),
        "consent": pl.Boolean,
    }
    extra = {k: pl.String for row in filled for k in row if k not in schema}
    return pl.DataFrame(filled, schema={**schema, **extra}, orient="row")


def small_config(k: int = 5, **options) -> AggregateConfig:
    """A 4 x 4 grid, small k and no smoothing unless asked.

    Below k = 3 the p% rule is switched off: it hides every cell of one or two users,
    which would hide everything these small hand-built inputs are about.
    """
    dominance = DominanceRule() if k >= 3 else DominanceRule(p=None)
    privacy = PrivacyPolicy(k=k, allow_small_k=k < 5, dominance=dominance)
    defaults = {"grid": GridSpec(4, 4), "privacy": privacy, "sigma": 0.0, "as_of": AS_OF}
    return AggregateConfig(**{**defaults, **options})
