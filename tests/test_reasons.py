"""The fused reason-code kernel against the Polars expression it replaced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from heatengine.config import AggregateConfig
from heatengine.reasons import reason_codes
from heatengine.schema import LAYER, REASON_CODE, REASON_CODES, ResolvedColumns
from tests.reference import reason_expression

AS_OF = datetime(2026, 11, 30, tzinfo=UTC)
HORIZON = AS_OF - timedelta(days=30)
TICK = timedelta(microseconds=1)
MOMENTS = [None, HORIZON - TICK, HORIZON, HORIZON + TICK, AS_OF - TICK, AS_OF, AS_OF + TICK]
COORDINATES = [None, np.nan, np.inf, -np.inf, -0.5, -0.0, 0.0, 0.5, 1.0, 1.0000001, 200.0]
VIEWPORTS = [None, np.nan, np.inf, -1.0, 0.0, 390.0, 844.0]


@st.composite
def batches(draw):
    n = draw(st.integers(0, 60))
    pixels = draw(st.booleans())
    has_consent = draw(st.booleans())

    def column(values):
        return draw(st.lists(st.sampled_from(values), min_size=n, max_size=n))

    data = {
        "x": pl.Series(column(COORDINATES), dtype=pl.Float64),
        "y": pl.Series(column(COORDINATES), dtype=pl.Float64),
        "ts": pl.Series(column(MOMENTS), dtype=pl.Datetime("us", "UTC")),
        "user_token": pl.Series(column([None, 1, 2]), dtype=pl.UInt64),
        LAYER: pl.Series(column([-1, 0, 3]), dtype=pl.Int64),
    }
    if has_consent:
        data["consent"] = pl.Series(column([None, True, False]), dtype=pl.Boolean)
    if pixels:
        data["viewport_width"] = pl.Series(column(VIEWPORTS), dtype=pl.Float64)
        data["viewport_height"] = pl.Series(column(VIEWPORTS), dtype=pl.Float64)
    config = AggregateConfig(as_of=AS_OF, coordinates="pixels" if pixels else "normalised")
    columns = ResolvedColumns("user_token", has_consent, tuple(data), ())
    return pl.DataFrame(data), config, columns


@settings(max_examples=300, deadline=None)
@given(batches(), st.integers(1, 3))
def test_reason_codes_match_the_polars_rules(batch, chunks):
    frame, config, columns = batch
    expected = frame.select(reason_expression(columns, config, AS_OF))[REASON_CODE].to_numpy()
    codes, counts = reason_codes(
        frame,
        frame[LAYER].to_numpy(),
        frame["user_token"].is_null().to_numpy(),
        columns,
        config,
        AS_OF,
        chunks,
    )
    np.testing.assert_array_equal(codes, expected)
    for reason, code in REASON_CODES.items():
        assert counts[reason] == int((expected == code).sum())


def test_a_naive_as_of_is_taken_as_utc():
    frame = pl.DataFrame(
        {
            "x": [0.5, 0.5],
            "y": [0.5, 0.5],
            "ts": pl.Series([AS_OF, AS_OF + TICK], dtype=pl.Datetime("us", "UTC")),
            LAYER: [0, 0],
        }
    )
    columns = ResolvedColumns("user_token", False, (), ())
    config = AggregateConfig(as_of=AS_OF)
    naive = AS_OF.replace(tzinfo=None)
    codes, counts = reason_codes(
        frame, frame[LAYER].to_numpy(), np.zeros(2, bool), columns, config, naive
    )
    assert codes.tolist() == [0, REASON_CODES["after_as_of"]]
    assert counts["after_as_of"] == 1
