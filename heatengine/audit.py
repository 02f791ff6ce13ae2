"""The audit log: one hash-chained JSON line per run, and its verification.

Each entry holds ``seq`` (its position), ``prev_hash`` (the SHA-256 of the previous
entry's canonical JSON, 64 zeros for the first) and ``hash`` (the SHA-256 of its own
canonical JSON without ``hash``). Editing an entry breaks its own hash; deleting or
reordering entries breaks the next ``seq`` or ``prev_hash``; so :func:`verify_log`
names the first entry that was tampered with. (Cutting entries off the end leaves a
shorter valid chain: keep a copy of the last hash elsewhere to detect that.)

Entries describe runs (configuration, counts by reason, published statistics, file
hashes, key epoch); they never hold a user id, a pseudonym or the key.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from heatengine._version import __version__
from heatengine.errors import HeatengineError
from heatengine.heatmaps import HeatmapSet
from heatengine.store import sha256_file

AUDIT_FILE = "audit.jsonl"
GENESIS = "0" * 64


def canonical_json(entry: dict[str, Any]) -> bytes:
    """The bytes that are hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of an entry's canonical JSON, leaving out its own ``hash``."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _last_entry(path: Path) -> dict[str, Any] | None:
    """The last complete entry; a torn last line (a run killed mid-write) is cut off."""
    if not path.exists():
        return None
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(cut)
        data = data[:cut]
    lines = [line for line in data.splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def append_entry(path: str | os.PathLike[str], record: dict[str, Any]) -> dict[str, Any]:
    """Chain ``record`` to the log at ``path`` and append it as one line (fsynced).

    Returns the entry as written, with ``seq``, ``prev_hash`` and ``hash``.
    """
    log = Path(path)
    previous = _last_entry(log)
    entry = {
        **record,
        "seq": 0 if previous is None else previous["seq"] + 1,
        "prev_hash": GENESIS if previous is None else previous["hash"],
    }
    entry["hash"] = entry_hash(entry)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        handle.write(canonical_json(entry) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return entry


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify_log`."""

    entries: int
    first_bad: int | None = None  # 0-based line of the first broken entry
    reason: str = ""

    @property
    def ok(self) -> bool:
        """The chain is intact."""
        return self.first_bad is None


def verify_log(path: str | os.PathLike[str]) -> Verification:
    """Check every entry's hash, position and link to the one before it."""
    log = Path(path)
    if not log.is_file():
        msg = f"no audit log at {str(log)!r}"
        raise HeatengineError(msg)
    previous_hash = GENESIS
    lines = [line for line in log.read_bytes().splitlines() if line.strip()]
    for number, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            return Verification(len(lines), number, "the line is not valid JSON")
        if not isinstance(entry, dict) or "hash" not in entry:
            return Verification(len(lines), number, "the line is not an audit entry")
        if entry_hash(entry) != entry["hash"]:
            return Verification(len(lines), number, "its content does not match its hash")
        if entry.get("seq") != number:
            reason = f"it is entry {entry.get('seq')} but stands at position {number}"
            return Verification(len(lines), number, reason)
        if entry.get("prev_hash") != previous_hash:
            reason = "it does not follow the entry before it (deleted or reordered)"
            return Verification(len(lines), number, reason)
        previous_hash = entry["hash"]
    return Verification(len(lines))


def files_with_hashes(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """``{"path", "bytes", "sha256"}`` per file, for inputs and outputs."""
    return [
        {"path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(set(paths))
    ]


def run_record(
    heatmaps: HeatmapSet,
    *,
    command: str,
    started: datetime,
    finished: datetime,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    actor: str | None = None,
    purpose: str = "",
) -> dict[str, Any]:
    """The audit record of one aggregation run (published statistics only)."""
    stats = heatmaps.stats.publishable()
    return {
        "kind": "run",
        "run_id": str(uuid.uuid4()),
        "command": command,
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "actor": actor or default_actor(),
        "purpose": purpose or "not stated",
        "heatengine_version": __version__,
        "config": heatmaps.config.to_dict(),
        "inputs": inputs,
        "rows": {
            "in": stats["rows_in"],
            "eligible": stats["rows_eligible"],
            "quarantined": stats["quarantined"],
            "excluded": stats["excluded"],
        },
        "dropped_columns": stats["dropped_columns"],
        "consent_assumed": stats["consent_assumed"],
        "suppression": stats["suppression"],
        "published_taps": stats["published_taps"],
        "outputs": outputs,
        "key_epoch": stats["key_epoch"],
    }


def default_actor() -> str:
    """The user running heatengine, for audit entries."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
