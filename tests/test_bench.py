"""The comparison harness: peers agree with heatengine, and disagreement is caught."""

from __future__ import annotations

import json

import polars as pl
import pytest

from heatengine.bench import (
    PeakMemory,
    _check_equal,
    _peak_in_fresh_process,
    bench_config,
    benchmark_taps,
    compare,
    format_table,
    polars_job,
    polars_single_key_job,
    write_json,
)
from heatengine.pipeline import aggregate


@pytest.fixture(scope="module")
def taps() -> pl.DataFrame:
    return benchmark_taps(60_000, seed=2)


def test_polars_formulations_equal_heatengine(taps):
    config = bench_config(k=5)
    expected = aggregate(taps, config).cells
    assert expected.height > 50
    _check_equal("polars", polars_job(taps, config), expected)
    _check_equal("polars one key", polars_single_key_job(taps, config), expected)


def test_duckdb_equals_heatengine_when_installed(taps):
    pytest.importorskip("duckdb")
    pytest.importorskip("pyarrow")
    from heatengine.bench import duckdb_job

    config = bench_config(k=5)
    _check_equal("duckdb", duckdb_job(taps, config), aggregate(taps, config).cells)


def test_a_wrong_answer_is_caught(taps):
    config = bench_config(k=5)
    expected = aggregate(taps, config).cells
    wrong = expected.with_columns(pl.col("users") + (pl.int_range(pl.len()) == 0))
    with pytest.raises(AssertionError, match="disagrees with heatengine"):
        _check_equal("broken", wrong, expected)


def test_compare_reports_every_tool(tmp_path):
    timings = compare(20_000, repeat=1)
    tools = [t.tool for t in timings]
    assert tools[0] == "heatengine"
    assert "polars (screen, cx, cy)" in tools
    assert "numpy bincount" in tools
    table = format_table(timings)
    assert table.splitlines()[1].startswith("heatengine")
    write_json(timings, tmp_path / "t.json")
    rows = json.loads((tmp_path / "t.json").read_text())
    assert {row["tool"] for row in rows} == set(tools)
    assert all(row["seconds"] > 0 for row in rows)
    assert all(row["peak_extra_mb"] >= 0 for row in rows)


def test_memory_is_measured_in_a_fresh_process():
    """The child generates its own taps and reports one run's peak: a large run
    allocates far more than a tiny one."""
    small = _peak_in_fresh_process("memory_peak_mb", "numpy bincount", "2000", "0")
    large = _peak_in_fresh_process("memory_peak_mb", "numpy bincount", "2000000", "0")
    assert large > small + 20


def test_peak_memory_sees_a_large_allocation():
    import numpy as np

    with PeakMemory() as memory:
        block = np.ones(50_000_000 // 8)
        block.sum()
    assert memory.extra_mb > 30


def test_streaming_comparison_checks_answers(tmp_path):
    from heatengine.bench import compare_streaming, write_benchmark_files

    directory = write_benchmark_files(30_000, tmp_path / "files", files=3)
    assert len(list(directory.glob("*.parquet"))) == 3
    timings = compare_streaming(directory, 30_000)
    assert [t.tool for t in timings] == ["heatengine --streaming", "polars streaming engine"]
    # Memory comes from a fresh process per tool, so both are measured from a clean start.
    assert all(t.peak_extra_mb >= 0 for t in timings)
