"""Consent coverage: users and sessions seen against those consented, withheld below k."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from heatengine.coverage import coverage_pairs
from heatengine.pipeline import aggregate
from tests.factory import AS_OF, KEY, small_config, taps_frame


def coverage_input(consented: int, declined: int, both: int = 0, screen: str = "home"):
    """``consented`` users with consent, ``declined`` without, ``both`` with a row of each."""
    rows = [{"screen": screen, "user_id": f"c{i}", "session_id": f"s{i}"} for i in range(consented)]
    rows += [
        {"screen": screen, "user_id": f"d{i}", "consent": False, "session_id": f"t{i}"}
        for i in range(declined)
    ]
    for i in range(both):
        rows += [
            {"screen": screen, "user_id": f"b{i}", "session_id": f"u{i}"},
            {"screen": screen, "user_id": f"b{i}", "consent": False, "session_id": f"v{i}"},
        ]
    return taps_frame(rows)


def test_coverage_counts_users_and_sessions_once():
    frame = coverage_input(consented=12, declined=6, both=5)
    result = aggregate(frame, small_config(k=5), key=KEY)
    users = result.stats.consent_coverage["users"]
    # a user with one consented row is consented; each session stands on its own
    assert (users["seen"], users["consented"]) == (23, 17)
    assert users["coverage"] == pytest.approx(17 / 23)
    sessions = result.stats.consent_coverage["sessions"]
    assert (sessions["seen"], sessions["consented"]) == (28, 17)
    [layer] = users["layers"]
    assert (layer["screen"], layer["seen"], layer["consented"]) == ("home", 23, 17)


@pytest.mark.parametrize(("consented", "declined"), [(4, 10), (10, 3)])
def test_coverage_is_withheld_when_either_group_is_below_k(consented, declined):
    result = aggregate(coverage_input(consented, declined), small_config(k=5), key=KEY)
    users = result.stats.consent_coverage["users"]
    assert users == {"seen": None, "consented": None, "coverage": None, "layers": users["layers"]}
    assert all(layer["coverage"] is None for layer in users["layers"])


def test_full_coverage_is_shown():
    result = aggregate(coverage_input(consented=7, declined=0), small_config(k=5), key=KEY)
    assert result.stats.consent_coverage["users"]["coverage"] == 1.0


def test_rows_outside_the_window_or_malformed_do_not_count():
    frame = coverage_input(consented=10, declined=10)
    stale = [
        {"user_id": f"old{i}", "consent": False, "ts": AS_OF - timedelta(days=90)} for i in range(8)
    ]
    broken = [{"user_id": f"bad{i}", "x": None} for i in range(8)]
    extra = taps_frame(stale + broken, session_id="z")
    frame = pl.concat([frame, extra], how="vertical")
    users = aggregate(frame, small_config(k=5), key=KEY).stats.consent_coverage["users"]
    assert (users["seen"], users["consented"]) == (20, 10)


def test_streaming_files_count_each_person_once(tmp_path):
    frame = coverage_input(consented=12, declined=6, both=5)
    for i, part in enumerate(frame.iter_slices(9)):
        part.write_parquet(tmp_path / f"part-{i}.parquet")
    one = aggregate(frame, small_config(k=5), key=KEY).stats.consent_coverage
    streamed = aggregate(tmp_path, small_config(k=5), key=KEY, streaming=True)
    assert streamed.stats.consent_coverage == one


def test_coverage_pairs_are_distinct_and_consented_when_any_row_is():
    # Large layer numbers and keys: pairs are kept as they are, never packed into one
    # number that could overflow (1,000 layers times 3M people passes 2**31).
    layers = pl.DataFrame({"screen": [f"s{i:04d}" for i in range(1000)]})
    layer = np.array([999, 999, 0, 715, 999], np.int32)
    person = np.array([3_000_009, 3_000_009, 15, 3_000_009, 2**64 - 1], np.uint64)
    consented = np.array([True, False, False, True, False])
    pairs = coverage_pairs(layers, layer, person, consented)
    columns = (pairs.layer.tolist(), pairs.person.tolist(), pairs.consented.tolist())
    assert sorted(zip(*columns, strict=True)) == [
        (0, 15, False),
        (715, 3_000_009, True),
        (999, 3_000_009, True),
        (999, 2**64 - 1, False),
    ]


@pytest.mark.parametrize(
    ("person", "consented", "message"),
    [
        (np.zeros(2, np.uint64), np.ones(3, bool), "one value per row: 3, 2 and 3"),
        (np.zeros(3, np.int64), np.ones(3, bool), "person uint64"),
        (np.zeros(3, np.uint64), np.ones(3, np.uint8), "consented bool"),
    ],
)
def test_coverage_pairs_check_their_arrays(person, consented, message):
    layers = pl.DataFrame({"screen": ["a"]})
    with pytest.raises(ValueError, match=message):
        coverage_pairs(layers, np.zeros(3, np.int32), person, consented)


def test_coverage_can_be_switched_off_and_needs_a_consent_column():
    frame = coverage_input(consented=12, declined=6)
    off = aggregate(frame, small_config(k=5, consent_coverage=False), key=KEY)
    assert off.stats.consent_coverage is None
    assumed = aggregate(frame.drop("consent"), small_config(k=5, assume_consent=True), key=KEY)
    assert assumed.stats.consent_coverage is None
