"""Rage taps through the pipeline: their own k-suppressed layers and a share per screen."""

from __future__ import annotations

from datetime import timedelta

import pytest

from heatengine.config import AggregateConfig
from heatengine.pipeline import RAGE_SUFFIX, aggregate
from heatengine.rage import RagePolicy
from heatengine.store import read
from tests.factory import KEY, RECENT, small_config, taps_frame


def burst_rows(users: int, taps_each: int, spacing: float, screen: str = "checkout"):
    """Each user taps ``taps_each`` times at one spot, ``spacing`` seconds apart."""
    return [
        {
            "screen": screen,
            "user_id": f"r{u}",
            "x": 0.6,
            "y": 0.9,
            "ts": RECENT + timedelta(seconds=u * 60 + i * spacing),
        }
        for u in range(users)
        for i in range(taps_each)
    ]


def calm_rows(users: int, screen: str = "checkout"):
    """Single taps, one minute apart, elsewhere on the screen."""
    return [
        {"screen": screen, "user_id": f"c{u}", "x": 0.1, "y": 0.1,
         "ts": RECENT + timedelta(minutes=u)}
        for u in range(users)
    ]  # fmt: skip


def rage_config(**options) -> AggregateConfig:
    return small_config(k=5, rage_taps=RagePolicy(), **options)


def test_bursts_become_a_rage_layer_with_a_share():
    rows = burst_rows(users=6, taps_each=3, spacing=0.3) + calm_rows(users=6)
    result = aggregate(taps_frame(rows), rage_config(), key=KEY)
    screens = result.layers["screen"].to_list()
    assert screens == ["checkout", "checkout" + RAGE_SUFFIX]
    base = result.layers.row(0, named=True)
    rage = result.layers.row(1, named=True)
    assert rage["taps"] == 6 * 3  # every tap of each burst, capped at 5 per user and cell
    assert rage["rage_tap_share"] is None
    assert base["rage_tap_share"] == pytest.approx(rage["taps"] / base["taps"])


def test_two_taps_or_slow_taps_are_not_rage():
    rows = burst_rows(users=6, taps_each=2, spacing=0.3) + burst_rows(
        users=6, taps_each=3, spacing=0.6, screen="home"
    )  # three taps over 1.2 s
    result = aggregate(taps_frame(rows), rage_config(), key=KEY)
    assert not any(s.endswith(RAGE_SUFFIX) for s in result.layers["screen"])


def test_rage_layers_are_k_suppressed():
    rows = burst_rows(users=4, taps_each=3, spacing=0.2) + calm_rows(users=6)
    result = aggregate(taps_frame(rows), rage_config(), key=KEY)
    assert result.layers["screen"].to_list() == ["checkout"]  # 4 raging users < k
    assert result.layers["rage_tap_share"].to_list() == [None]


def test_rage_config_round_trips_and_is_off_by_default(tmp_path):
    rows = burst_rows(users=6, taps_each=3, spacing=0.3)
    assert "rage_tap_share" not in aggregate(taps_frame(rows), small_config(k=5), key=KEY).layers
    result = aggregate(taps_frame(rows), rage_config(), key=KEY)
    result.write(tmp_path)
    back = read(tmp_path)
    assert back.config.rage_taps == RagePolicy()
    assert back.layers.equals(result.layers)
    assert AggregateConfig.from_dict(result.config.to_dict()) == result.config
    with pytest.raises(TypeError, match="rage_taps must be a RagePolicy"):
        small_config(rage_taps=True)
