"""Nightly runs: retention, windows equal to one-shot runs, reruns, locks, epochs, modes."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from heatengine import aggregate
from heatengine.audit import verify_log
from heatengine.config import AggregateConfig, GridSpec, PrivacyPolicy
from heatengine.errors import HeatengineError
from heatengine.nightly import StoreLock, run_nightly, tumbling_window
from heatengine.partial_store import day_path, stored_days
from heatengine.pseudonym import PseudonymKey
from heatengine.synthetic import generate_taps

KEY = PseudonymKey(b"nightly test key, long enough to be used")
FIRST = date(2026, 11, 1)
DAYS = 20
CONFIG = AggregateConfig(
    grid=GridSpec(16, 32), privacy=PrivacyPolicy(k=5, retention_days=10), segments=("platform",)
)


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """DAYS day partitions of well-formed and malformed taps, times inside each day."""
    root = tmp_path_factory.mktemp("lake")
    taps = generate_taps(3000 * DAYS, seed=11, end=datetime(2026, 12, 1, tzinfo=UTC), days=30)
    for i in range(DAYS):
        day = FIRST + timedelta(days=i)
        part = taps.slice(i * 3000, 3000).with_columns(
            ts=pl.lit(at_noon(day)) + pl.duration(seconds=pl.int_range(3000))
        )
        folder = root / f"date={day.isoformat()}"
        folder.mkdir()
        part.write_parquet(folder / "part-0.parquet")
    return root


def published(window_dir):
    return {name: (window_dir / name).read_bytes() for name in ("cells.parquet", "grids.npz")}


def test_tumbling_windows_cover_each_day_once():
    seen = [tumbling_window(FIRST + timedelta(days=i), 7) for i in range(40)]
    for i, (first, last) in enumerate(seen):
        day = FIRST + timedelta(days=i)
        assert first <= day <= last
        assert (last - first).days == 6
    assert len({w for w in seen}) in (6, 7)


def test_a_simulated_month(lake, tmp_path):
    store = tmp_path / "store"
    for i in range(DAYS):
        day = FIRST + timedelta(days=i)
        now = at_noon(day + timedelta(days=1))  # each night processes yesterday
        result = run_nightly(lake, store, day, config=CONFIG, key=KEY, now=now)
        horizon = now.date() - timedelta(days=10)
        assert all(d >= horizon for d in stored_days(store))  # retention holds every night
        first, last = result.window
        expected_days = [
            d
            for d in (first + timedelta(days=j) for j in range(7))
            if max(horizon, FIRST) <= d <= day
        ]
        assert list(result.days_merged) == expected_days
    # The last window equals a one-shot aggregate of the same days' files.
    files = [lake / f"date={d.isoformat()}" for d in result.days_merged]
    one_shot = aggregate(
        files,
        AggregateConfig(
            grid=CONFIG.grid,
            privacy=PrivacyPolicy(k=5, retention_days=30),
            segments=CONFIG.segments,
            as_of=datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC),
        ),
        key=KEY,
    )
    assert result.heatmaps.cells.equals(one_shot.cells)
    np.testing.assert_array_equal(result.heatmaps.grids, one_shot.grids)
    assert result.heatmaps.stats.rows_in == one_shot.stats.rows_in
    assert verify_log(store / "audit.jsonl").ok
    kinds = [json.loads(line)["kind"] for line in (store / "audit.jsonl").read_text().splitlines()]
    assert kinds.count("run") == DAYS
    assert "purge" in kinds


def test_reruns_and_out_of_order_days_give_identical_outputs(lake, tmp_path):
    days = [FIRST + timedelta(days=i) for i in range(12, 20)]
    now = at_noon(FIRST + timedelta(days=21))
    in_order, shuffled = tmp_path / "a", tmp_path / "b"
    for day in days:
        run_nightly(lake, in_order, day, config=CONFIG, key=KEY, now=now)

    def windows(store):
        links = (w for w in (store / "windows").iterdir() if not w.name.startswith("."))
        return {w.name: published(w) for w in sorted(links)}

    final = windows(in_order)
    assert len(final) == 2  # the days span two tumbling windows
    again = run_nightly(lake, in_order, days[2], config=CONFIG, key=KEY, now=now)
    assert published(again.window_dir) == final[again.window_dir.name]
    for day in (days[5], days[0], days[7], days[3], days[1], days[6], days[2], days[4]):
        run_nightly(lake, shuffled, day, config=CONFIG, key=KEY, now=now)
    assert windows(shuffled) == final


def test_old_days_are_refused_and_missing_partitions_named(lake, tmp_path):
    now = at_noon(FIRST + timedelta(days=25))
    with pytest.raises(HeatengineError, match="older than the retention window"):
        run_nightly(lake, tmp_path, FIRST, config=CONFIG, key=KEY, now=now)
    with pytest.raises(HeatengineError, match="no partition for 2026-11-24"):
        run_nightly(lake, tmp_path, date(2026, 11, 24), config=CONFIG, key=KEY, now=now)


def test_mixed_key_epochs_are_refused(lake, tmp_path):
    now = at_noon(FIRST + timedelta(days=21))
    run_nightly(lake, tmp_path, date(2026, 11, 16), config=CONFIG, key=KEY, now=now)
    other = PseudonymKey(b"another key, also long enough to be used!")
    with pytest.raises(HeatengineError, match="mixes key epochs"):
        run_nightly(lake, tmp_path, date(2026, 11, 17), config=CONFIG, key=other, now=now)


def test_one_run_at_a_time_and_stale_locks(tmp_path):
    with StoreLock(tmp_path), pytest.raises(HeatengineError, match="another run holds"):
        StoreLock(tmp_path).__enter__()
    assert not (tmp_path / ".lock").exists()
    dead = 2**22 + 12345  # no such process
    holder = json.loads(json.dumps(StoreLock(tmp_path).holder))
    (tmp_path / ".lock").write_text(json.dumps({**holder, "pid": dead}))
    with StoreLock(tmp_path):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()


def test_partials_are_private_and_published_files_are_not(lake, tmp_path):
    now = at_noon(FIRST + timedelta(days=21))
    result = run_nightly(lake, tmp_path, date(2026, 11, 18), config=CONFIG, key=KEY, now=now)
    folder = day_path(tmp_path, date(2026, 11, 18))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    for file in folder.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    for file in ("cells.parquet", "manifest.json"):
        assert stat.S_IMODE((result.window_dir / file).stat().st_mode) & 0o044


def test_a_run_killed_at_any_moment_leaves_a_consistent_store(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from heatengine import read

    lake = tmp_path / "lake"
    for day in (date(2026, 11, 27), date(2026, 11, 28)):
        folder = lake / f"date={day.isoformat()}"
        folder.mkdir(parents=True)
        taps = generate_taps(150_000, seed=day.day).with_columns(ts=pl.lit(at_noon(day)))
        taps.write_parquet(folder / "part-0.parquet")
    key_file = tmp_path / "key"
    key_file.write_bytes(b"k" * 40)
    store = tmp_path / "store"

    def nightly(day: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "heatengine.cli", "nightly", "--input", str(lake),
                   "--store", str(store), "--date", day, "--now", "2026-11-30T03:00",
                   "--key-file", str(key_file), "--k", "5", "--no-legend"]  # fmt: skip
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    assert nightly("2026-11-27").wait() == 0
    window = store / "windows" / "2026-11-26_2026-12-02"
    for delay in (0.3, 0.6, 0.8, 1.0, 1.15, 1.3, 1.45):  # the run takes about 1.5 s
        run = nightly("2026-11-28")
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait()
        read(window)  # checks every file against the manifest's hashes
        assert verify_log(store / "audit.jsonl").ok
        visible = [p for p in window.resolve().rglob("*") if p.name.endswith(".tmp")]
        assert visible == []
    assert nightly("2026-11-28").wait() == 0
    assert read(window).stats.rows_in == 300_000
    versions = list((store / "windows" / ".versions").iterdir())
    assert versions == [window.resolve()]  # leftovers of killed runs are gone
