"""The hash-chained audit log: appending, verifying, and catching every kind of tampering."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest

from heatengine.audit import GENESIS, append_entry, verify_log
from heatengine.cli import main
from heatengine.errors import HeatengineError


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "audit.jsonl"
    for i in range(5):
        append_entry(path, {"kind": "run", "run": i, "note": f"entry {i}"})
    return path


def lines(path):
    return path.read_text().splitlines()


def test_entries_chain(log):
    entries = [json.loads(line) for line in lines(log)]
    assert [e["seq"] for e in entries] == [0, 1, 2, 3, 4]
    assert entries[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in pairwise(entries))
    result = verify_log(log)
    assert result.ok
    assert result.entries == 5


@pytest.mark.parametrize("victim", [0, 2, 4])
def test_an_edited_entry_is_named(log, victim):
    rows = lines(log)
    rows[victim] = rows[victim].replace(f'"run":{victim}', f'"run":{victim + 10}')
    log.write_text("\n".join(rows) + "\n")
    result = verify_log(log)
    assert (result.first_bad, result.reason) == (victim, "its content does not match its hash")


@pytest.mark.parametrize("victim", [0, 2, 3])
def test_a_deleted_entry_is_found_where_it_was(log, victim):
    rows = lines(log)
    del rows[victim]
    log.write_text("\n".join(rows) + "\n")
    result = verify_log(log)
    assert result.first_bad == victim


def test_reordered_entries_are_found(log):
    rows = lines(log)
    rows[1], rows[3] = rows[3], rows[1]
    log.write_text("\n".join(rows) + "\n")
    assert verify_log(log).first_bad == 1


def test_garbage_and_missing_logs(log, tmp_path):
    log.write_text(log.read_text() + "not json\n")
    assert verify_log(log).first_bad == 5
    with pytest.raises(HeatengineError, match="no audit log"):
        verify_log(tmp_path / "absent.jsonl")


def test_cli_verify_exit_codes(log, capsys):
    assert main(["audit", "verify", str(log)]) == 0
    assert "5 entries, hash chain intact" in capsys.readouterr().out
    rows = lines(log)
    rows[2] = rows[2].replace("entry 2", "entry two")
    log.write_text("\n".join(rows) + "\n")
    assert main(["audit", "verify", str(log)]) == 1
    assert "entry 2 (line 3) fails" in capsys.readouterr().out
