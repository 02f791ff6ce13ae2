"""Personal data through the command line: scan-pii, and the scan of every run."""

from __future__ import annotations

import json

import polars as pl
import pytest

from heatengine.cli import PII_IN_OUTPUT, main
from heatengine.synthetic import generate_taps

KEY_TEXT = "cli pii test key: at least thirty-two bytes of secret"


@pytest.fixture
def taps_with_pii(tmp_path):
    taps = generate_taps(20_000, seed=9)
    n = taps.height
    path = tmp_path / "taps.parquet"
    taps.with_columns(
        contact=pl.format("person{}@example.org", pl.int_range(n) % 40),
        client_ip=pl.format("10.{}.{}.7", pl.int_range(n) % 200, pl.int_range(n) % 50),
    ).write_parquet(path)
    key = tmp_path / "key"
    key.write_text(KEY_TEXT)
    return path, key


def test_scan_pii_names_the_columns_and_prints_no_value(taps_with_pii, tmp_path, capsys):
    path, _ = taps_with_pii
    report = tmp_path / "report.json"
    assert main(["scan-pii", str(path), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "contact" in out
    assert "email" in out
    assert "client_ip" in out
    assert "user_id" in out
    assert "example.org" not in out
    assert "example.org" not in report.read_text()
    assert set(json.loads(report.read_text())["columns_with_pii"]) >= {"contact", "client_ip"}


def test_every_run_records_the_scan_and_finds_clean_outputs(taps_with_pii, tmp_path, capsys):
    path, key = taps_with_pii
    store = tmp_path / "store"
    args = ["aggregate", str(path), "--out", str(store), "--key-file", str(key), "--k", "5"]
    assert main([*args, "--as-of", "2026-11-30", "--png", str(tmp_path / "png")]) == 0
    out = capsys.readouterr().out
    assert "personal data in the input (kept out of outputs): client_ip" in out
    assert "outputs scanned for personal data" in out
    assert "clean; anonymisation effectiveness 100%" in out
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["stats"]["pii_input"]["columns"]["contact"] == ["email"]
    entry = json.loads((store / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["pii_outputs"]["clean"] is True
    assert entry["pii_outputs"]["effectiveness"] == 1.0
    assert entry["pii_outputs"]["files_scanned"] > 3


def test_personal_data_bound_for_an_output_is_not_published(taps_with_pii, tmp_path, capsys):
    """A segment column of e-mail addresses would put them in layer names: the staged
    store is scanned first, and nothing is written."""
    path, key = taps_with_pii
    store = tmp_path / "store"
    code = main(
        ["aggregate", str(path), "--out", str(store), "--key-file", str(key), "--k", "5",
         "--as-of", "2026-11-30", "--segments", "contact", "--grid", "2x2"]
    )  # fmt: skip
    assert code == PII_IN_OUTPUT
    captured = capsys.readouterr()
    assert "personal data found in outputs (email): cells.parquet::" in captured.err
    assert "nothing was published" in captured.err
    assert "example.org" not in captured.err
    assert not (store / "manifest.json").exists()
    assert not (store / "cells.parquet").exists()
    assert not list(tmp_path.glob(".heatengine-check-*"))


def test_a_nightly_window_with_personal_data_is_not_published(taps_with_pii, tmp_path):
    from datetime import UTC, date, datetime

    from heatengine.config import AggregateConfig, GridSpec, PrivacyPolicy
    from heatengine.nightly import run_nightly
    from heatengine.pii import PersonalDataInOutputs
    from heatengine.pseudonym import PseudonymKey

    path, key = taps_with_pii
    day = date(2026, 11, 29)
    partition = tmp_path / "lake" / f"date={day}"
    partition.mkdir(parents=True)
    pl.read_parquet(path).write_parquet(partition / "part.parquet")
    config = AggregateConfig(grid=GridSpec(2, 2), privacy=PrivacyPolicy(k=5), segments=("contact",))
    store = tmp_path / "store"
    with pytest.raises(PersonalDataInOutputs, match="nothing was published"):
        run_nightly(
            tmp_path / "lake", store, day, config=config, window=1,
            key=PseudonymKey(key.read_bytes()), now=datetime(2026, 11, 30, 3, tzinfo=UTC),
        )  # fmt: skip
    windows = store / "windows"
    assert not [p for p in windows.iterdir() if not p.name.startswith(".")]
    assert not list((windows / ".versions").iterdir())
