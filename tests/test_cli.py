"""The heatengine command end to end, run as a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from heatengine.cli import main
from heatengine.synthetic import generate_taps

KEY_TEXT = "cli test key: at least thirty-two bytes of secret"


@pytest.fixture
def taps_file(tmp_path) -> Path:
    path = tmp_path / "taps.parquet"
    generate_taps(30_000, seed=4).write_parquet(path)
    return path


def run_cli(*args: str, env: dict | None = None, drop_key: bool = False):
    environment = {**os.environ, **(env or {})}
    if drop_key:
        environment.pop("HEATENGINE_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "heatengine.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )


def test_aggregate_and_render_end_to_end(tmp_path, taps_file):
    key_file = tmp_path / "key"
    key_file.write_text(KEY_TEXT + "\n")
    store = tmp_path / "store"
    done = run_cli(
        "aggregate", str(taps_file), "--out", str(store), "--key-file", str(key_file),
        "--segments", "platform", "--k", "5", "--as-of", "2026-11-30",
        "--quarantine", str(tmp_path / "rejected.parquet"), "--grid", "32x64",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(r"^rows in +30,000$", done.stdout, re.MULTILINE)
    assert "missing_coordinate" in done.stdout
    assert "no_consent" in done.stdout
    assert "columns dropped (not on the allow-list): app_version, event" in done.stdout
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["config"]["grid"] == {"columns": 32, "rows": 64}
    assert manifest["stats"]["key_epoch"]
    assert KEY_TEXT not in (store / "manifest.json").read_text()
    rejected = pl.read_parquet(tmp_path / "rejected.parquet")
    assert rejected.height == sum(manifest["stats"]["quarantined"].values())
    audit = (store / "audit.jsonl").read_text()
    entry = json.loads(audit)
    assert entry["rows"]["in"] == 30_000
    assert entry["key_epoch"] == manifest["stats"]["key_epoch"]
    assert {o["path"].rsplit("/", 1)[-1] for o in entry["outputs"]} >= {"manifest.json"}
    raw_ids = pl.read_parquet(taps_file)["user_id"].drop_nulls().unique().head(200).to_list()
    assert not any(user in audit for user in raw_ids)
    assert KEY_TEXT not in audit
    assert run_cli("audit", "verify", str(store)).returncode == 0

    pngs = tmp_path / "png"
    done = run_cli("render", str(store), "--out", str(pngs))
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in pngs.glob("*.png"))
    assert len(names) == len(manifest["layers"])
    assert "home_platform-ios.png" in names
    index = (pngs / "index.html").read_text()
    assert index.count('class="card"') == len(names) or "home_platform-ios.png" in index
    assert all(name in index for name in names)


def test_demo_command_writes_store_images_and_summary(tmp_path):
    out = tmp_path / "demo"
    done = run_cli("demo", "--out", str(out), "--taps", "40000")
    assert done.returncode == 0, done.stderr
    assert "layers published" in done.stdout
    assert (out / "store" / "manifest.json").is_file()
    assert (out / "input" / "taps.parquet").is_file()
    layers = json.loads((out / "store" / "manifest.json").read_text())["layers"]
    assert len(layers) >= 4
    assert len(list((out / "png").glob("*.png"))) == 2 * len(layers)  # heat and dead taps
    assert len(list((out / "png").glob("*_dead-taps.png"))) == len(layers)
    assert len(list((out / "screens").glob("*.png"))) == 5
    assert (out / "store" / "elements.parquet").is_file()
    assert "dead taps" in (out / "png" / "index.html").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["aggregate", "missing.parquet", "--out", "x"], "input not found: 'missing.parquet'"),
        (["render", "no-store", "--out", "x"], "is not a heatengine store"),
        (["demo", "--out", "x", "--taps", "0"], "--taps must be positive"),
    ],
)
def test_errors_are_one_line_without_traceback(args, message, tmp_path):
    done = run_cli(*args, env={"HEATENGINE_KEY": KEY_TEXT})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1
    assert errors[0].startswith("heatengine: error: ")
    assert message in errors[0]


def test_missing_key_is_explained(taps_file, tmp_path):
    done = run_cli("aggregate", str(taps_file), "--out", str(tmp_path / "s"), drop_key=True)
    assert done.returncode == 2
    assert "HEATENGINE_KEY" in done.stderr
    assert "--key-file" in done.stderr


def test_bad_options_are_reported(capsys, tmp_path):
    code = main(["aggregate", "x.parquet", "--out", str(tmp_path), "--k", "3"])
    assert code == 2
    assert "k=3 gives weak protection" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["aggregate", "x.parquet", "--out", str(tmp_path), "--grid", "64by128"])
    assert "COLUMNSxROWS" in capsys.readouterr().err


def test_every_command_has_help():
    for command in ("demo", "aggregate", "render"):
        done = run_cli(command, "--help")
        assert done.returncode == 0
        assert "usage: heatengine" in done.stdout


def test_compare_command_writes_panels_and_a_gallery(tmp_path, taps_file):
    key_file = tmp_path / "key"
    key_file.write_text(KEY_TEXT)
    for name, extra in (("a", []), ("b", ["--sigma", "0"])):
        done = run_cli(
            "aggregate", str(taps_file), "--out", str(tmp_path / name), "--key-file",
            str(key_file), "--k", "5", "--as-of", "2026-11-30", *extra,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    out = tmp_path / "cmp"
    done = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out),
                   "--labels", "before,after")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "shared layer(s) compared" in done.stdout
    panels = sorted(out.glob("*.panels.png"))
    assert panels
    assert len(list(out.glob("*.difference.png"))) == len(panels)
    index = (out / "index.html").read_text()
    assert "after compared with before" in index
    done = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out),
                   "--labels", "only-one")  # fmt: skip
    assert done.returncode == 2
    assert "--labels takes two names" in done.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--scale-max", "inf"], "--scale-max takes layer, shared or a positive number"),
        (["--scale-max", "-1"], "--scale-max takes layer, shared or a positive number"),
        (["--colormap", "diverging"], "is for differences"),
        (["--min-alpha", "2"], "--min-alpha must be between 0 and 0.9"),
    ],
)
def test_render_options_are_checked_first(options, message, tmp_path, capsys):
    assert main(["render", str(tmp_path / "no-store"), "--out", str(tmp_path), *options]) == 2
    assert message in capsys.readouterr().err


def test_nightly_command(tmp_path):
    lake = tmp_path / "lake" / "date=2026-11-29"
    lake.mkdir(parents=True)
    taps = generate_taps(20_000, seed=6).with_columns(ts=pl.lit("2026-11-29T12:00:00"))
    taps.write_parquet(lake / "part-0.parquet")
    key_file = tmp_path / "key"
    key_file.write_text(KEY_TEXT)
    args = ["nightly", "--input", str(tmp_path / "lake"), "--store", str(tmp_path / "store"),
            "--date", "2026-11-29", "--now", "2026-11-30T03:00", "--key-file", str(key_file),
            "--k", "5", "--window", "7"]  # fmt: skip
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert "window 2026-11-26 to 2026-12-02 from 1 day(s)" in done.stdout
    window = tmp_path / "store" / "windows" / "2026-11-26_2026-12-02"
    assert (window / "manifest.json").is_file()
    assert (window / "png" / "index.html").is_file()
    assert run_cli("audit", "verify", str(tmp_path / "store")).returncode == 0
    logged = run_cli(*args, "--log-format", "json")
    assert logged.returncode == 0, logged.stderr
    events = [json.loads(line) for line in logged.stderr.splitlines()]
    assert events[0]["event"] == "start"
    assert events[-1]["event"] == "finish"
    assert events[-1]["stats"]["rows_in"] == 20_000
    too_old = run_cli(*args[:5], "--date", "2026-09-01", *args[7:])
    assert too_old.returncode == 2
    assert "older than the retention window" in too_old.stderr


@pytest.mark.parametrize(("preset", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_commands_make_openmp_workers_sleep_unless_told_otherwise(
    preset, expected, monkeypatch, tmp_path
):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # restored after the test
    if preset is not None:
        monkeypatch.setenv("OMP_WAIT_POLICY", preset)
    assert main(["aggregate", str(tmp_path / "none.parquet"), "--out", str(tmp_path)]) == 2
    assert os.environ["OMP_WAIT_POLICY"] == expected
