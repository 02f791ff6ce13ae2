"""Consent coverage: the share of users (and sessions) seen whose taps may be counted.

A user is *seen* when any of their rows inside the run's window is valid (eligible, or
valid but without consent); a user is *consented* when at least one of those rows is
consented. Coverage is consented users over users seen, for the run and per layer; the
same for sessions when the input has a ``session_id`` column. Rows outside the window
or quarantined do not count.

Everything here is computed in the run and kept as counts only: no id of a user who did
not consent is stored. Figures about fewer than ``k`` users are withheld: a layer's
coverage is published when at least ``k`` users consented and the users without consent
are none or at least ``k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from heatengine.kernels import PAIR_PART_ROWS, distinct_flagged_pairs
from heatengine.partial import default_chunks

#: Coverage below this share is reported with a warning.
WARN_BELOW = 0.85


@dataclass(frozen=True)
class CoveragePairs:
    """Distinct (layer, person) pairs of one batch with whether any row was consented.

    ``person`` is a run-stable 64-bit key of a user or a session, so batches combine.
    """

    layers: pl.DataFrame
    layer: np.ndarray
    person: np.ndarray
    consented: np.ndarray


def coverage_pairs(
    layers: pl.DataFrame,
    layer: np.ndarray,
    person: np.ndarray,
    consented: np.ndarray,
) -> CoveragePairs:
    """Reduce one batch's rows to distinct (layer, person) pairs.

    Parameters
    ----------
    layers
        The batch's layer table; ``layer`` indexes it.
    layer : integer array, one per counted row
    person : uint64 array, one per counted row
        Run-stable key of the row's user or session.
    consented : bool array, one per counted row

    Raises
    ------
    ValueError
        The arrays differ in length or have other types.
    """
    if not (layer.size == person.size == consented.size):
        msg = (
            f"layer, person and consented must have one value per row: {layer.size:,}, "
            f"{person.size:,} and {consented.size:,} given"
        )
        raise ValueError(msg)
    if layer.dtype.kind not in "iu" or person.dtype != np.uint64 or consented.dtype != bool:
        msg = (
            "layer must be integers, person uint64 and consented bool: "
            f"{layer.dtype}, {person.dtype} and {consented.dtype} given"
        )
        raise ValueError(msg)
    pair_layer, pair_person, pair_consented = distinct_flagged_pairs(
        layer, person, consented, default_chunks(), PAIR_PART_ROWS
    )
    return CoveragePairs(layers, pair_layer, pair_person, pair_consented)


def summarise(batches: Sequence[CoveragePairs], layer_columns: Sequence[str], k: int) -> dict:
    """Coverage of the run and per layer, from every batch's pairs.

    Returns
    -------
    dict
        ``seen``, ``consented``, ``coverage`` (``None`` when withheld) for the run, and
        ``layers``: one entry per layer with the same fields and its layer columns.
    """
    columns = list(layer_columns)
    frames = [
        b.layers[b.layer]
        .select(columns)
        .with_columns(
            person=pl.Series(b.person, dtype=pl.UInt64),
            consented=pl.Series(b.consented, dtype=pl.Boolean),
        )
        for b in batches
    ]
    frames = [f for f in frames if f.height]
    if not frames:
        return {**_figures(0, 0, k), "layers": []}
    pairs = pl.concat(frames, how="vertical")
    if len(frames) > 1:  # a person seen in two batches counts once
        pairs = pairs.group_by([*columns, "person"]).agg(pl.col("consented").any())
    people = pairs.group_by("person").agg(pl.col("consented").any())
    per_layer = (
        pairs.group_by(columns)
        .agg(seen=pl.len(), consented=pl.col("consented").sum())
        .sort(columns)
    )
    return {
        **_figures(people.height, int(people["consented"].sum()), k),
        "layers": [
            {**{c: row[c] for c in columns}, **_figures(row["seen"], row["consented"], k)}
            for row in per_layer.iter_rows(named=True)
        ],
    }


def _figures(seen: int, consented: int, k: int) -> dict[str, Any]:
    """Counts and share, all withheld when either group is 1 to k - 1 people."""
    declined = seen - consented
    if consented < k or 0 < declined < k:
        return {"seen": None, "consented": None, "coverage": None}
    return {"seen": seen, "consented": consented, "coverage": consented / seen}


def warnings(summary: dict[str, Any], what: str) -> list[str]:
    """Warnings for coverage below :data:`WARN_BELOW`, for the run and each layer."""
    out = []
    if summary["coverage"] is not None and summary["coverage"] < WARN_BELOW:
        out.append(f"consent coverage of {what} is {summary['coverage']:.1%}, below 85%")
    low = [
        layer for layer in summary["layers"]
        if layer["coverage"] is not None and layer["coverage"] < WARN_BELOW
    ]  # fmt: skip
    if low:
        out.append(f"{len(low)} layer(s) have {what} consent coverage below 85%")
    return out
