"""Tests for the synthetic tap generator and the screen mockups."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatengine.synthetic import (
    DEMO_END,
    SCREEN_LAYOUTS,
    Element,
    draw_screen_mockup,
    generate_taps,
)

N = 200_000
SCREENS = ("home", "search", "checkout", "settings", "onboarding")
SCHEMA = {
    "screen": pl.String,
    "x": pl.Float64,
    "y": pl.Float64,
    "user_id": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "consent": pl.Boolean,
    "platform": pl.String,
    "orientation": pl.String,
    "app_version": pl.String,
    "event": pl.String,
    "session_id": pl.String,
}


@pytest.fixture(scope="module")
def taps() -> pl.DataFrame:
    return generate_taps(N, seed=7)


def defects(frame: pl.DataFrame) -> pl.DataFrame:
    """One boolean column per defect kind, true where the row has that defect."""
    x, y = pl.col("x"), pl.col("y")
    return frame.select(
        missing_coordinate=x.is_null() | y.is_null(),
        non_finite=(x.is_nan() | x.is_infinite() | y.is_nan() | y.is_infinite()).fill_null(False),
        out_of_range=(
            (x.is_finite() & ~x.is_between(0.0, 1.0)) | (y.is_finite() & ~y.is_between(0.0, 1.0))
        ).fill_null(False),
        missing_screen=pl.col("screen").is_null() | (pl.col("screen") == ""),
        missing_user=pl.col("user_id").is_null(),
        missing_ts=pl.col("ts").is_null(),
    )


def clean(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows without any defect."""
    flags = defects(frame).select(pl.any_horizontal(pl.all()).alias("bad"))["bad"]
    return frame.filter(~flags)


@pytest.mark.parametrize("n_taps", [1, 17, 1_000, 54_321])
def test_row_count_is_exact(n_taps: int) -> None:
    assert generate_taps(n_taps, seed=1).height == n_taps


def test_schema_and_dtypes(taps: pl.DataFrame) -> None:
    assert dict(taps.schema) == SCHEMA


def test_same_seed_gives_identical_frame() -> None:
    assert generate_taps(20_000, seed=11).equals(generate_taps(20_000, seed=11))


def test_different_seed_gives_different_frame() -> None:
    assert not generate_taps(20_000, seed=11).equals(generate_taps(20_000, seed=12))


def test_well_formed_coordinates_within_unit_square(taps: pl.DataFrame) -> None:
    good = clean(taps)
    assert good.height > 0.97 * N
    assert good.select(pl.col("x").is_between(0.0, 1.0).all()).item()
    assert good.select(pl.col("y").is_between(0.0, 1.0).all()).item()


@pytest.mark.parametrize("share", [0.0, 0.02, 0.1])
def test_malformed_share_matches_request(share: float) -> None:
    frame = generate_taps(50_000, seed=3, malformed_share=share)
    flags = defects(frame)
    per_row = flags.select(pl.sum_horizontal(pl.all().cast(pl.Int32)).alias("n"))["n"]
    assert per_row.max() <= 1  # one defect per malformed row
    assert abs(per_row.sum() / frame.height - share) < 1e-3
    if share > 0:
        counts = flags.sum().row(0, named=True)
        assert all(count > 0 for count in counts.values()), counts


def test_malformed_rows_cover_nan_inf_and_empty_screen(taps: pl.DataFrame) -> None:
    assert taps.select(pl.col("x").is_nan().any() | pl.col("y").is_nan().any()).item()
    assert taps.select(pl.col("x").is_infinite().any() | pl.col("y").is_infinite().any()).item()
    assert taps.select((pl.col("screen") == "").any()).item()
    assert taps.select(pl.col("screen").is_null().any()).item()


@pytest.mark.parametrize("share", [0.88, 0.5])
def test_consent_decided_per_user(share: float) -> None:
    frame = generate_taps(100_000, seed=5, consent_share=share)
    users = (
        frame.filter(pl.col("user_id").is_not_null())
        .group_by("user_id")
        .agg(
            pl.col("consent").drop_nulls().n_unique().alias("decisions"),
            pl.col("consent").drop_nulls().first().alias("consent"),
        )
        .drop_nulls("consent")
    )
    assert users["decisions"].max() == 1
    assert abs(users["consent"].mean() - share) < 0.03
    missing = frame["consent"].null_count() / frame.height
    assert 0.003 < missing < 0.007


def test_activity_is_heavy_tailed(taps: pl.DataFrame) -> None:
    per_user = (
        taps.filter(pl.col("user_id").is_not_null())
        .group_by("user_id")
        .len()
        .sort("len", descending=True)["len"]
    )
    top = per_user.head(per_user.len() // 10).sum()
    assert top / per_user.sum() > 0.30
    assert 0.8 * N / 50 < per_user.len() <= N / 50


def test_user_ids_look_like_raw_ids(taps: pl.DataFrame) -> None:
    ids = taps["user_id"].drop_nulls()
    assert ids.str.contains(r"^u\d{7}$").all()


def test_timestamps_within_window_with_evening_peak() -> None:
    end = datetime(2025, 3, 1, 12, tzinfo=UTC)
    frame = generate_taps(50_000, seed=2, end=end, days=7)
    ts = frame["ts"].drop_nulls()
    assert ts.min() >= end - timedelta(days=7)
    assert ts.max() <= end
    hours = ts.dt.hour()
    assert (hours.is_between(18, 22)).sum() > 3 * (hours.is_between(2, 6)).sum()


def test_default_window_ends_at_demo_end(taps: pl.DataFrame) -> None:
    ts = taps["ts"].drop_nulls()
    assert DEMO_END - timedelta(days=42) <= ts.min()
    assert ts.max() < DEMO_END
    assert ts.max() > DEMO_END - timedelta(hours=6)


def test_every_screen_present_home_most_popular(taps: pl.DataFrame) -> None:
    counts = dict(clean(taps).group_by("screen").len().iter_rows())
    assert set(counts) == set(SCREENS)
    assert max(counts, key=counts.__getitem__) == "home"
    assert counts["home"] > 2 * counts["onboarding"]


def test_categorical_columns_take_expected_values(taps: pl.DataFrame) -> None:
    assert set(taps["platform"].unique()) == {"ios", "android"}
    assert set(taps["orientation"].unique()) == {"portrait", "landscape"}
    assert set(taps["event"].unique()) == {"tap", "long_press", "rage_tap"}
    assert taps["app_version"].str.contains(r"^\d+\.\d+\.\d+$").all()
    assert taps["session_id"].null_count() == 0
    assert 0.88 < (taps["orientation"] == "portrait").mean() < 0.96
    assert (taps["event"] == "tap").mean() > 0.85


def test_platform_fixed_per_user(taps: pl.DataFrame) -> None:
    per_user = (
        taps.filter(pl.col("user_id").is_not_null())
        .group_by("user_id")
        .agg(pl.col("platform").n_unique().alias("n"), pl.col("platform").first())
    )
    assert per_user["n"].max() == 1
    assert 0.50 < (per_user["platform"] == "ios").mean() < 0.60


def test_top_home_element_is_a_hot_spot(taps: pl.DataFrame) -> None:
    top = max(SCREEN_LAYOUTS["home"], key=lambda e: e.weight)
    home = clean(taps).filter(pl.col("screen") == "home")
    inside = home.select(
        (pl.col("x").is_between(top.x0, top.x1) & pl.col("y").is_between(top.y0, top.y1)).mean()
    ).item()
    area = (top.x1 - top.x0) * (top.y1 - top.y0)
    assert inside > 2.5 * area


def test_taps_cluster_on_elements(taps: pl.DataFrame) -> None:
    margin = 0.015
    for screen in SCREENS:
        frame = clean(taps).filter(pl.col("screen") == screen)
        x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
        hit = np.zeros(frame.height, dtype=bool)
        for e in SCREEN_LAYOUTS[screen]:
            if e.weight > 0:
                hit |= (
                    (x >= e.x0 - margin)
                    & (x <= e.x1 + margin)
                    & (y >= e.y0 - margin)
                    & (y <= e.y1 + margin)
                )
        assert hit.mean() > 0.9, screen


@settings(max_examples=25, deadline=None)
@given(
    n_taps=st.integers(1, 400),
    seed=st.integers(0, 2**32 - 1),
    share=st.floats(0.0, 1.0),
)
def test_small_frames_keep_counts_exact(n_taps: int, seed: int, share: float) -> None:
    frame = generate_taps(n_taps, seed=seed, malformed_share=share)
    assert frame.height == n_taps
    n_bad = defects(frame).select(pl.any_horizontal(pl.all()).sum()).item()
    assert n_bad == round(share * n_taps)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_taps": 0}, "n_taps"),
        ({"n_users": 0}, "n_users"),
        ({"days": 0}, "days"),
        ({"consent_share": 1.5}, "consent_share"),
        ({"malformed_share": -0.1}, "malformed_share"),
        ({"end": datetime(2026, 1, 1)}, "timezone"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_taps(**{"n_taps": 100, **kwargs})


def test_layouts_are_valid() -> None:
    assert tuple(SCREEN_LAYOUTS) == SCREENS
    for screen, elements in SCREEN_LAYOUTS.items():
        names = [e.name for e in elements]
        assert len(names) == len(set(names)), screen
        assert sum(e.weight for e in elements) > 0, screen


def test_element_rejects_bad_geometry() -> None:
    with pytest.raises(ValueError, match="x0 < x1"):
        Element("bad", 0.5, 0.1, 0.4, 0.2, 1.0)
    with pytest.raises(ValueError, match="weight"):
        Element("bad", 0.1, 0.1, 0.4, 0.2, -1.0)


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("size", [(390, 844), (201, 433)])
def test_mockup_size_and_mode(screen: str, size: tuple[int, int]) -> None:
    image = draw_screen_mockup(screen, *size)
    assert image.mode == "RGB"
    assert image.size == size
    pixels = np.asarray(image)
    assert pixels.mean() > 180  # light background
    assert pixels.std() > 10  # but something is drawn


def test_mockup_unknown_screen_lists_known_screens() -> None:
    with pytest.raises(ValueError, match=r"unknown screen 'profile'.*home, search"):
        draw_screen_mockup("profile")


def test_import_does_not_import_pillow() -> None:
    code = "import sys, heatengine.synthetic; assert 'PIL' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_million_taps_generate_quickly() -> None:
    generate_taps(1_000, seed=0)
    start = time.perf_counter()
    frame = generate_taps(1_000_000, seed=0)
    assert time.perf_counter() - start < 2.0
    assert frame.height == 1_000_000
