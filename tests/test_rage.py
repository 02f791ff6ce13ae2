"""Rage-tap bursts: the documented boundaries, and the kernel against a slow reference."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numba
import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatengine.errors import SchemaError
from heatengine.rage import RagePolicy, mark_rage_taps, rage_taps

T0 = datetime(2024, 5, 1, 12, 0, 0)
EPOCH = datetime(1970, 1, 1)


def frame(taps, users=None, screens=None):
    """Taps as (seconds, x, y) of one user on one screen unless given."""
    n = len(taps)
    return pl.DataFrame(
        {
            "user_token": users if users is not None else [7] * n,
            "screen": screens if screens is not None else ["cart"] * n,
            "ts": [T0 + timedelta(microseconds=round(s * 1e6)) for s, _, _ in taps],
            "x": [float(x) for _, x, _ in taps],
            "y": [float(y) for _, _, y in taps],
        },
        schema={
            "user_token": pl.Int64,
            "screen": pl.String,
            "ts": pl.Datetime("us"),
            "x": pl.Float64,
            "y": pl.Float64,
        },
    )


def spot(*seconds, x=0.5, y=0.5):
    return [(s, x, y) for s in seconds]


# --- the slow twin -------------------------------------------------------------------


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch; naive times are UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (moment - EPOCH) // timedelta(microseconds=1)


def reference_rage(df: pl.DataFrame, policy: RagePolicy) -> list[bool]:
    """The documented rule in plain Python: per user and screen, the earliest start after
    the previous burst whose candidate has ``min_taps`` taps makes the next burst."""
    groups = defaultdict(list)
    for i, row in enumerate(df.iter_rows(named=True)):
        values = (row["user_token"], row["screen"], row["ts"], row["x"], row["y"])
        if any(v is None for v in values) or not all(map(math.isfinite, values[3:])):
            continue
        groups[row["user_token"], row["screen"]].append((_micros(row["ts"]), row["x"], row["y"], i))
    rage = [False] * df.height
    for taps in groups.values():
        taps.sort(key=lambda tap: tap[:3])
        after = 0
        while True:
            start = next(
                (
                    s
                    for s in range(after, len(taps))
                    if len(_candidate(taps, s, policy)) >= policy.min_taps
                ),
                None,
            )
            if start is None:
                break
            burst = _candidate(taps, start, policy)
            for tap in burst:
                rage[tap[3]] = True
            after = start + len(burst)
    return rage


def _candidate(taps: list[tuple], start: int, policy: RagePolicy) -> list[tuple]:
    """Tap ``start`` and the taps right after it within the window and radius of it."""
    window_us = round(policy.window_seconds * 1_000_000)
    ts0, x0, y0, _ = taps[start]

    def fits(tap: tuple) -> bool:
        dx, dy = tap[1] - x0, (tap[2] - y0) * policy.aspect
        return tap[0] - ts0 <= window_us and dx * dx + dy * dy <= policy.radius**2

    return [taps[start], *itertools.takewhile(fits, taps[start + 1 :])]


# --- the documented boundaries ---------------------------------------------------------


def test_two_taps_are_no_burst():
    assert rage_taps(frame(spot(0.0, 0.1))).tolist() == [False, False]


def test_three_taps_within_half_a_second_are_a_burst():
    assert rage_taps(frame(spot(0.0, 0.2, 0.5))).tolist() == [True] * 3


def test_the_window_is_inclusive():
    assert rage_taps(frame(spot(0.0, 0.5, 1.0))).tolist() == [True] * 3


def test_one_microsecond_past_the_window_is_not_a_burst():
    assert rage_taps(frame(spot(0.0, 0.5, 1.000001))).tolist() == [False] * 3


@pytest.mark.parametrize(("dx", "expected"), [(0.0799, [True] * 3), (0.0801, [False] * 3)])
def test_radius_in_widths(dx, expected):
    taps = [(0.0, 0.5, 0.5), (0.1, 0.5 - dx, 0.5), (0.2, 0.5 + dx, 0.5)]
    assert rage_taps(frame(taps)).tolist() == expected


@pytest.mark.parametrize(("factor", "expected"), [(0.99, [True] * 3), (1.01, [False] * 3)])
def test_vertical_distance_is_scaled_by_the_aspect(factor, expected):
    dy = 0.08 / (844 / 390) * factor  # 0.08 widths, in heights of a 390 x 844 screen
    taps = [(0.0, 0.5, 0.5), (0.1, 0.5, 0.5 + dy), (0.2, 0.5, 0.5 - dy)]
    assert rage_taps(frame(taps)).tolist() == expected
    square = RagePolicy(aspect=1.0)
    assert rage_taps(frame(taps), policy=square).tolist() == [True] * 3


def test_a_tap_outside_the_radius_breaks_the_burst():
    taps = [(0.0, 0.5, 0.5), (0.1, 0.5, 0.5), (0.2, 0.59, 0.5), (0.3, 0.5, 0.5)]
    assert rage_taps(frame(taps)).tolist() == [False] * 4


def test_taps_are_compared_with_the_first_tap_not_the_previous_one():
    drift = [(0.1 * i, 0.5 + 0.06 * i, 0.5) for i in range(5)]  # 0.06 apart, 0.12 per two
    assert rage_taps(frame(drift)).tolist() == [False] * 5


def test_interleaved_users_do_not_combine():
    taps = spot(0.0, 0.1, 0.2, 0.3, 0.4)
    assert rage_taps(frame(taps, users=[1, 2, 1, 2, 3])).tolist() == [False] * 5
    assert rage_taps(frame(taps, users=[1, 2, 1, 2, 1])).tolist() == [
        True, False, True, False, True,
    ]  # fmt: skip


def test_different_screens_do_not_combine():
    taps = spot(0.0, 0.1, 0.2, 0.3)
    screens = ["cart", "home", "cart", "home"]
    assert rage_taps(frame(taps, screens=screens)).tolist() == [False] * 4


def test_the_breaking_tap_starts_the_next_candidate():
    assert rage_taps(frame(spot(0.0, 0.6, 0.9, 1.2))).tolist() == [True, True, True, False]
    assert rage_taps(frame(spot(0.0, 0.6, 0.9, 1.2, 1.3, 1.4))).tolist() == [True] * 6


def test_a_short_candidate_gives_way_to_its_second_tap():
    assert rage_taps(frame(spot(0.0, 0.9, 1.5, 1.6))).tolist() == [False, True, True, True]


def test_bursts_continue_while_taps_keep_coming():
    assert rage_taps(frame(spot(0.0, 0.1, 0.2, 0.3, 0.4, 0.9))).tolist() == [True] * 6


def test_min_taps_two():
    policy = RagePolicy(min_taps=2)
    assert rage_taps(frame(spot(0.0, 0.3, 5.0)), policy=policy).tolist() == [True, True, False]


def test_missing_values_are_skipped_and_do_not_break_bursts():
    df = frame(spot(0.0, 0.1, 0.2, 0.3, 0.4, 0.5)).with_columns(
        x=pl.Series([0.5, None, 0.5, math.nan, 0.5, 0.5]),
        user_token=pl.Series([7, 7, 7, 7, None, 7]),
    )
    assert rage_taps(df).tolist() == [True, False, True, False, False, True]


def test_time_units_and_zones_are_instants():
    taps = frame(spot(0.0, 0.5, 1.0))
    berlin = taps.with_columns(
        pl.col("ts").dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Berlin")
    )
    millis = taps.with_columns(pl.col("ts").dt.cast_time_unit("ms"))
    assert rage_taps(berlin).tolist() == rage_taps(millis).tolist() == [True] * 3


def test_custom_columns_and_types():
    df = frame(spot(0.0, 0.1, 0.2)).rename({"user_token": "who", "screen": "where"})
    df = df.with_columns(pl.col("where").cast(pl.Categorical), pl.col("who").cast(pl.String))
    assert rage_taps(df, user="who", screen="where").tolist() == [True] * 3


def test_empty_input():
    assert rage_taps(frame([])).tolist() == []
    out = np.empty(0, np.bool_)
    empty = np.empty(0, np.float64)
    mark_rage_taps(np.zeros(1, np.int64), np.empty(0, np.int64), empty, empty, 1, 0.1, 1.0, 3, out)
    assert out.size == 0


# --- against the reference -------------------------------------------------------------

coordinate = st.sampled_from([0.4, 0.45, 0.5, 0.52, 0.55, 0.58, 0.6, 0.7])
offset_us = st.builds(lambda k, j: k * 250_000 + j, st.integers(0, 24), st.sampled_from([0, 1]))


@st.composite
def tap_frames(draw):
    n = draw(st.integers(0, 40))
    column = lambda values: draw(st.lists(values, min_size=n, max_size=n))  # noqa: E731
    return pl.DataFrame(
        {
            "user_token": column(st.one_of(st.sampled_from([1, 2, 3]), st.none())),
            "screen": column(st.sampled_from(["cart", "home"])),
            "ts": [T0 + timedelta(microseconds=us) for us in column(offset_us)],
            "x": column(st.one_of(coordinate, st.just(math.nan))),
            "y": column(coordinate),
        },
        schema={
            "user_token": pl.Int64,
            "screen": pl.String,
            "ts": pl.Datetime("us", "UTC"),
            "x": pl.Float64,
            "y": pl.Float64,
        },
    )


policies = st.builds(
    RagePolicy,
    window_seconds=st.sampled_from([0.25, 0.5, 1.0]),
    radius=st.sampled_from([0.05, 0.08, 0.1]),
    min_taps=st.integers(2, 4),
    aspect=st.sampled_from([1.0, 844 / 390, 0.5]),
)


@given(tap_frames(), policies)
def test_matches_reference(df, policy):
    assert rage_taps(df, policy=policy).tolist() == reference_rage(df, policy)


@given(tap_frames(), policies, st.randoms(use_true_random=False))
def test_row_order_does_not_matter(df, policy, random):
    order = list(range(df.height))
    random.shuffle(order)
    shuffled = df[order]
    expected = rage_taps(df, policy=policy)
    np.testing.assert_array_equal(rage_taps(shuffled, policy=policy), expected[order])


@pytest.mark.parametrize("threads", [1, numba.config.NUMBA_NUM_THREADS])
def test_parallel_equals_serial(threads):
    rng = np.random.default_rng(5)
    sizes = rng.integers(0, 30, 500)
    starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    n = int(starts[-1])
    ts = np.concatenate([np.sort(rng.integers(0, 5_000_000, s)) for s in sizes]).astype(np.int64)
    x, y = rng.uniform(0.45, 0.55, n), rng.uniform(0.45, 0.55, n)
    expected = np.empty(n, np.bool_)
    mark_rage_taps(starts, ts, x, y, 1_000_000, 0.08, 844 / 390, 3, expected)
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        out = np.ones(n, np.bool_)
        mark_rage_taps(starts, ts, x, y, 1_000_000, 0.08, 844 / 390, 3, out)
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(out, expected)
    assert 0 < expected.sum() < n


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"window_seconds": 0}, ValueError, r"window_seconds must be a finite number of seconds "
                                            r"above 0 and at most 86400, got 0"),
        ({"window_seconds": 1e6}, ValueError, r"at most 86400, got 1000000.0"),
        ({"window_seconds": "1s"}, TypeError, r"window_seconds must be a number of seconds, "
                                               r"got '1s'"),
        ({"radius": -0.1}, ValueError, r"radius must be a finite number of widths above 0, "
                                       r"got -0.1"),
        ({"radius": math.inf}, ValueError, r"radius must be a finite number of widths above 0, "
                                           r"got inf"),
        ({"radius": True}, TypeError, r"radius must be a number of widths, got True"),
        ({"min_taps": 1}, ValueError, r"min_taps must be at least 2, got 1"),
        ({"min_taps": 3.0}, TypeError, r"min_taps must be an integer, got 3.0"),
        ({"aspect": 0.0}, ValueError, r"aspect must be a finite number of heights per width "
                                      r"above 0, got 0.0"),
        ({"aspect": math.nan}, ValueError, r"aspect must be .* above 0, got nan"),
    ],
)  # fmt: skip
def test_policy_errors(options, error, message):
    with pytest.raises(error, match=message):
        RagePolicy(**options)


def test_policy_round_trip():
    policy = RagePolicy(window_seconds=2, radius=0.1, min_taps=4, aspect=2)
    assert policy.window_seconds == 2.0
    assert isinstance(policy.window_seconds, float)
    assert policy.window_us == 2_000_000
    assert RagePolicy.from_dict(policy.to_dict()) == policy
    assert RagePolicy().aspect == pytest.approx(2.1641, abs=1e-4)


def test_input_errors():
    taps = frame(spot(0.0))
    with pytest.raises(SchemaError, match=r"need the columns 'user_id', 'when', missing"):
        rage_taps(taps, user="user_id", ts="when")
    with pytest.raises(SchemaError, match=r"column 'ts' has type String, expected a datetime"):
        rage_taps(taps.with_columns(pl.col("ts").cast(pl.String)))
    with pytest.raises(SchemaError, match=r"column 'y' has type String, expected a number"):
        rage_taps(taps.with_columns(pl.col("y").cast(pl.String)))
    with pytest.raises(TypeError, match=r"policy must be a RagePolicy, got \{'radius': 0.1\}"):
        rage_taps(taps, policy={"radius": 0.1})  # type: ignore[arg-type]


def test_reference_times_match_polars_epoch():
    df = frame(spot(0.0, 0.25)).with_columns(
        pl.col("ts").dt.replace_time_zone("UTC").dt.convert_time_zone("America/New_York")
    )
    epoch = df.select(pl.col("ts").dt.epoch("us")).to_series().to_list()
    assert [_micros(moment) for moment in df["ts"]] == epoch
