"""Input handling: required columns, types, quarantine reasons, exclusions, conservation."""

from __future__ import annotations

import math
from datetime import timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatengine import aggregate
from heatengine.errors import HeatengineError, QuarantineError, SchemaError
from heatengine.schema import EXCLUSION_REASONS, QUARANTINE_REASONS
from tests.factory import AS_OF, KEY, RECENT, small_config, taps_frame


def run(frame, **options):
    return aggregate(frame, small_config(k=1, **options), key=KEY)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"screen": None}, "missing_screen"),
        ({"screen": "  "}, "missing_screen"),
        ({"user_id": None}, "missing_user"),
        ({"user_id": ""}, "missing_user"),
        ({"x": None}, "missing_coordinate"),
        ({"y": None}, "missing_coordinate"),
        ({"x": math.nan}, "non_finite_coordinate"),
        ({"y": math.inf}, "non_finite_coordinate"),
        ({"x": -0.01}, "coordinate_out_of_range"),
        ({"y": 1.0001}, "coordinate_out_of_range"),
        ({"ts": None}, "missing_timestamp"),
    ],
)
def test_each_quarantine_reason(row, reason):
    result = run(taps_frame([row, {}]))
    assert result.stats.quarantined == {reason: 1}
    assert result.stats.rows_eligible == 1
    assert result.quarantine["reason"].to_list() == [reason]
    assert "user_id" not in result.quarantine.columns


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"consent": False}, "no_consent"),
        ({"consent": None}, "no_consent"),
        ({"ts": AS_OF - timedelta(days=30, seconds=1)}, "older_than_retention"),
        ({"ts": AS_OF + timedelta(seconds=1)}, "after_as_of"),
    ],
)
def test_each_exclusion_reason(row, reason):
    result = run(taps_frame([row, {}]))
    assert result.stats.excluded == {reason: 1}
    assert result.stats.quarantined == {}
    assert result.quarantine.height == 0


def test_retention_boundary_is_inclusive():
    result = run(taps_frame([{"ts": AS_OF - timedelta(days=30)}, {"ts": AS_OF}]))
    assert result.stats.rows_eligible == 2


def test_strict_mode_raises_with_counts():
    frame = taps_frame([{"x": None}, {"x": None}, {"screen": None}, {}])
    with pytest.raises(QuarantineError, match=r"3 rows would be quarantined.*missing_screen: 1"):
        run(frame, strict=True)


def test_missing_column_is_named_with_the_columns_present():
    frame = taps_frame([{}]).drop("y")
    with pytest.raises(
        SchemaError, match=r"missing required column 'y'; columns present: screen, x"
    ):
        run(frame)


def test_missing_user_column_mentions_user_token():
    frame = taps_frame([{}]).drop("user_id")
    with pytest.raises(SchemaError, match="'user_id' \\(or 'user_token'"):
        run(frame)


def test_missing_consent_is_an_error_unless_assumed():
    frame = taps_frame([{}, {}]).drop("consent")
    with pytest.raises(SchemaError, match=r"missing required column 'consent'.*assume_consent"):
        run(frame)
    result = run(frame, assume_consent=True)
    assert result.stats.consent_assumed
    assert result.stats.rows_eligible == 2


def test_consent_column_is_honoured_even_when_consent_is_assumed():
    result = run(taps_frame([{"consent": False}, {}]), assume_consent=True)
    assert not result.stats.consent_assumed
    assert result.stats.excluded == {"no_consent": 1}


def test_text_coordinates_that_do_not_parse_name_the_column():
    frame = taps_frame([{}, {}, {}]).with_columns(pl.Series("x", ["0.5", "left", "0.2"]))
    with pytest.raises(
        SchemaError, match=r"column 'x' holds text that does not parse as a number in 1 of 3 rows$"
    ):
        run(frame)


def test_text_that_parses_is_accepted():
    frame = taps_frame([{}, {}]).with_columns(
        pl.Series("x", ["0.5", " 0.25 "]),
        pl.Series("ts", ["2026-11-29T10:00:00Z", "2026-11-29 11:00:00"]),
        pl.Series("consent", ["true", "Yes"]),
    )
    assert run(frame).stats.rows_eligible == 2


def test_wrong_types_name_the_column():
    frame = taps_frame([{}]).with_columns(pl.lit([1.0]).alias("x"))
    with pytest.raises(SchemaError, match="column 'x' has type List"):
        run(frame)
    frame = taps_frame([{}]).with_columns(pl.lit(5).alias("ts"))
    with pytest.raises(SchemaError, match="column 'ts' has type Int32, expected a datetime"):
        run(frame)
    frame = taps_frame([{}]).with_columns(pl.lit(2).alias("consent"))
    with pytest.raises(SchemaError, match="column 'consent' holds integers other than 0 and 1"):
        run(frame)


def test_minimisation_drops_and_reports_other_columns():
    frame = taps_frame([{}]).with_columns(email=pl.lit("a@b.c"), ip=pl.lit("10.0.0.1"))
    result = run(frame)
    assert result.stats.dropped_columns == ["email", "ip"]


def test_column_mapping_and_pixel_coordinates():
    frame = (
        taps_frame([{}, {}])
        .rename({"x": "tap_x", "y": "tap_y"})
        .with_columns(
            pl.Series("tap_x", [390.0, 400.0]),
            pl.Series("tap_y", [844.0, 10.0]),
            viewport_width=pl.lit(390.0),
            viewport_height=pl.lit(844.0),
        )
    )
    result = run(frame, column_map=(("x", "tap_x"), ("y", "tap_y")), coordinates="pixels")
    assert result.stats.quarantined == {"coordinate_out_of_range": 1}
    assert result.cells.select("cx", "cy").rows() == [(3, 3)]
    assert result.quarantine["x"].to_list() == [400.0]  # quarantine keeps the pixels given


def test_invalid_viewport_is_quarantined():
    frame = taps_frame([{}, {}]).with_columns(
        viewport_width=pl.Series([0.0, 390.0]), viewport_height=pl.lit(844.0), x=pl.lit(10.0)
    )
    result = run(frame, coordinates="pixels")
    assert result.stats.quarantined == {"invalid_viewport": 1}


def test_column_mapping_to_an_absent_column_is_an_error():
    with pytest.raises(SchemaError, match="column_map maps 'x' to 'tap_x'"):
        run(taps_frame([{}]), column_map=(("x", "tap_x"),))


def test_raw_ids_without_a_key_are_refused(monkeypatch):
    monkeypatch.delenv("HEATENGINE_KEY", raising=False)
    with pytest.raises(HeatengineError, match="HEATENGINE_KEY"):
        aggregate(taps_frame([{}]), small_config())


def test_user_tokens_need_no_key(monkeypatch):
    monkeypatch.delenv("HEATENGINE_KEY", raising=False)
    frame = taps_frame([{}, {"user_id": "t2"}]).rename({"user_id": "user_token"})
    result = aggregate(frame, small_config(k=1))
    assert result.stats.user_column == "user_token"
    assert result.cells["users"].to_list() == [2]


# ---- conservation, against a row-by-row classification -------------------------------

VALUES = {
    "screen": st.sampled_from(["home", "search", None, ""]),
    "x": st.sampled_from([0.0, 0.3, 1.0, None, math.nan, -math.inf, -0.2, 1.5]),
    "y": st.sampled_from([0.0, 0.7, 1.0, None, math.inf, 2.0]),
    "user_id": st.sampled_from(["a", "b", "c", None, " "]),
    "ts": st.sampled_from(
        [RECENT, None, AS_OF - timedelta(days=40), AS_OF + timedelta(hours=1), AS_OF]
    ),
    "consent": st.sampled_from([True, False, None]),
}


def expected_reason(row: dict) -> str | None:
    """The documented rules, applied to one row in plain Python."""

    def missing(text):
        return text is None or not text.strip()

    x, y, ts = row["x"], row["y"], row["ts"]
    if not row["consent"]:
        return "no_consent"
    if ts is not None and ts < AS_OF - timedelta(days=30):
        return "older_than_retention"
    if ts is not None and ts > AS_OF:
        return "after_as_of"
    if missing(row["screen"]):
        return "missing_screen"
    if missing(row["user_id"]):
        return "missing_user"
    if x is None or y is None:
        return "missing_coordinate"
    if not (math.isfinite(x) and math.isfinite(y)):
        return "non_finite_coordinate"
    if not (0 <= x <= 1 and 0 <= y <= 1):
        return "coordinate_out_of_range"
    if ts is None:
        return "missing_timestamp"
    return None


@settings(deadline=None)
@given(st.lists(st.fixed_dictionaries(VALUES), max_size=60))
def test_every_row_is_counted_once_with_the_documented_reason(rows):
    result = run(taps_frame(rows) if rows else taps_frame([]))
    stats = result.stats
    assert stats.rows_in == len(rows)
    assert stats.rows_in == stats.rows_eligible + stats.rows_quarantined + stats.rows_excluded
    expected: dict[str | None, int] = {}
    for row in rows:
        reason = expected_reason(row)
        expected[reason] = expected.get(reason, 0) + 1
    assert stats.rows_eligible == expected.pop(None, 0)
    assert {**stats.quarantined, **stats.excluded} == expected
    assert set(stats.quarantined) <= set(QUARANTINE_REASONS)
    assert set(stats.excluded) <= set(EXCLUSION_REASONS)
    assert result.quarantine.height == stats.rows_quarantined
