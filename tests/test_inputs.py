"""Input edge cases: mixed files, text ids, overlapping paths, reserved names, bounds."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from heatengine import AggregateConfig, PrivacyPolicy, aggregate
from heatengine.cli import main
from tests.factory import AS_OF, KEY, RECENT, small_config, taps_frame


def six_users(**columns) -> pl.DataFrame:
    return taps_frame([{"user_id": f"u{i}"} for i in range(6)], **columns)


def test_a_column_only_later_files_have_is_kept_and_consent_is_honoured(tmp_path):
    six_users().drop("consent").write_parquet(tmp_path / "a.parquet")
    six_users(consent=False).with_columns(platform=pl.lit("ios")).write_parquet(
        tmp_path / "b.parquet"
    )
    for streaming in (False, True):
        result = aggregate(
            tmp_path, small_config(assume_consent=True), key=KEY, streaming=streaming
        )
        # The consent column exists (in b), so it is honoured: a's rows have none -> denied.
        assert result.stats.excluded == {"no_consent": 12}
        assert not result.stats.consent_assumed
        assert result.cells.height == 0


def test_csv_ids_stay_text(tmp_path):
    ids = ["07", "007", "0007", "00007", "7", "alice@example.com"]
    frame = taps_frame([{"user_id": u} for u in ids])
    frame.write_csv(tmp_path / "taps.csv")
    frame.write_ndjson(tmp_path / "taps.ndjson")
    for name in ("taps.csv", "taps.ndjson"):
        result = aggregate(tmp_path / name, small_config(k=6), key=KEY)
        assert result.cells["users"].to_list() == [6]


def test_hive_values_stay_text_and_mix_with_csv(tmp_path):
    for version, fmt in (("2.10", "parquet"), ("2.1", "csv")):
        folder = tmp_path / f"app_version={version}"
        folder.mkdir()
        frame = six_users()
        if fmt == "parquet":
            frame.write_parquet(folder / "part.parquet")
        else:
            frame.write_csv(folder / "part.csv")
    result = aggregate(tmp_path, small_config(segments=("app_version",)), key=KEY)
    assert sorted(result.layers["app_version"].to_list()) == ["2.1", "2.10"]
    assert result.layers["users"].to_list() == [6, 6]


def test_naive_and_offset_timestamps_mix_across_files(tmp_path):
    six_users().with_columns(ts=pl.lit("2026-11-29T10:00:00")).write_csv(tmp_path / "a.csv")
    six_users().with_columns(ts=pl.lit("2026-11-29T11:30+02:00")).write_csv(tmp_path / "b.csv")
    result = aggregate(tmp_path, small_config(), key=KEY)
    assert result.stats.rows_eligible == 12


def test_overlapping_inputs_are_read_once(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    six_users().write_parquet(sub / "a.parquet")
    result = aggregate([tmp_path, sub, str(sub / "a.parquet")], small_config(), key=KEY)
    assert result.stats.rows_in == 6


def test_excluded_rows_never_reach_the_quarantine():
    rows = [
        {"x": 1.5, "consent": False},
        {"x": None, "ts": AS_OF - timedelta(days=400)},
        {"x": None, "ts": RECENT},
    ]
    result = aggregate(taps_frame(rows), small_config(), key=KEY)
    assert result.stats.excluded == {"no_consent": 1, "older_than_retention": 1}
    assert result.quarantine.height == 1


@pytest.mark.parametrize("name", ["reason", "layer", "users", "density", "peak", "cx"])
def test_reserved_segment_names_are_refused(name):
    with pytest.raises(ValueError, match=f"segment '{name}' clashes with a column"):
        AggregateConfig(segments=(name,))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retention_days": 10**9}, "retention_days must be between 1 and 36500"),
        ({"max_taps_per_user_cell": 10**20}, "max_taps_per_user_cell must be between"),
        ({"k": 0}, "k must be between 1 and"),
    ],
)
def test_option_bounds(options, message):
    with pytest.raises(ValueError, match=message):
        PrivacyPolicy(**options)


def test_cli_never_echoes_data_values_from_reader_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HEATENGINE_KEY", "k" * 32)
    rows = "screen,x,y,user_id,ts,consent\n" + "home,0.5,0.5,1,2026-11-29,true\n" * 20
    (tmp_path / "a.csv").write_text(rows + "home,oops@example.com,0.5,2,2026-11-29,true\n")
    code = main(["aggregate", str(tmp_path / "a.csv"), "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2
    assert "oops@example.com" not in err
    assert "heatengine: error: column 'x' holds text" in err
    (tmp_path / "b.csv").write_text('screen,x\n"home,0.5\n')  # unterminated quote
    assert main(["aggregate", str(tmp_path / "b.csv"), "--out", str(tmp_path / "s")]) == 2
    assert "heatengine: error" in capsys.readouterr().err


def test_cli_rejects_a_bad_colormap_before_writing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HEATENGINE_KEY", "k" * 32)
    six_users().write_parquet(tmp_path / "a.parquet")
    out = tmp_path / "store"
    code = main(["aggregate", str(tmp_path / "a.parquet"), "--out", str(out), "--colormap", "jet"])
    assert code == 2
    assert "unknown colormap 'jet'" in capsys.readouterr().err
    assert not out.exists()


def test_reader_error_values_are_redacted():
    from heatengine.cli import _redact_values

    text = (
        "conversion from `str` to `i64` failed in column 'a' for 1 out of 1 values: "
        '["x@y.com"] This error occurred in the following expression: col("a")'
    )
    redacted = _redact_values(text)
    assert "x@y.com" not in redacted
    assert "column 'a'" in redacted
    assert "expression" not in redacted
