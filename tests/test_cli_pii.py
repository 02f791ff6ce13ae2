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


def test_personal_data_reaching_an_output_fails_the_run(taps_with_pii, tmp_path, capsys):
    """A segment column of e-mail addresses puts them in layer names: the scan says so."""
    path, key = taps_with_pii
    store = tmp_path / "store"
    code = main(
        ["aggregate", str(path), "--out", str(store), "--key-file", str(key), "--k", "5",
         "--as-of", "2026-11-30", "--segments", "contact", "--grid", "2x2"]
    )  # fmt: skip
    assert code == PII_IN_OUTPUT
    captured = capsys.readouterr()
    assert "personal data found in outputs (email)" in captured.err
    assert "PERSONAL DATA FOUND: email" in captured.out
    assert "example.org" not in captured.err
    entry = json.loads((store / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["pii_outputs"]["clean"] is False
    assert entry["pii_outputs"]["effectiveness"] < 1.0
