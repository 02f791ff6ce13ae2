"""The nightly driver: one day's partial, retention, a tumbling window, an audit trail.

A run for day D, under a lock on the store:

1. purges stored partials older than the retention window (and logs the purge);
2. refuses D when D itself is older than that window;
3. reads only ``INPUT/date=D/`` and stores the day's partial (owner-only);
4. merges the partials of D's tumbling window (windows of ``window`` days counted
   from 1970-01-01, so every day belongs to exactly one) and publishes the window under
   ``STORE/windows/START_END`` (cells, grids, manifest, PNGs, gallery), a link switched
   atomically to a complete new version;
5. appends run and purge entries to the hash-chained ``STORE/audit.jsonl``, naming the
   days of pseudonymised data it read.

Re-running a day replaces its partial and republishes its window with identical bytes.
Overlapping rolling windows are not offered: differences between consecutive windows
could reveal small groups of users.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from heatengine.audit import (
    AUDIT_FILE,
    append_entry,
    default_actor,
    files_with_hashes,
    run_record,
)
from heatengine.budget import (
    BudgetPolicy,
    BudgetStatus,
    charge_release,
    release_id,
    require_room,
)
from heatengine.config import AggregateConfig
from heatengine.errors import HeatengineError
from heatengine.heatmaps import HeatmapSet
from heatengine.io import input_files
from heatengine.partial import merge_partials
from heatengine.partial_store import (
    load_day,
    partial_options,
    purge_days_before,
    save_day,
    stored_days,
)
from heatengine.pii import PersonalDataInOutputs, check_outputs
from heatengine.pipeline import build_partial, publish
from heatengine.pseudonym import PseudonymKey
from heatengine.store import CELLS_FILE, GRIDS_FILE, MANIFEST_FILE

LOCK_FILE = ".lock"
WINDOWS_DIR = "windows"
VERSIONS_DIR = ".versions"
WINDOW_ORIGIN = date(1970, 1, 1)


@dataclass(frozen=True)
class NightlyResult:
    """What one nightly run did."""

    day: date
    window: tuple[date, date]  # first and last day, inclusive
    window_dir: Path
    days_merged: tuple[date, ...]
    purged: tuple[date, ...]
    heatmaps: HeatmapSet
    budget: BudgetStatus | None = None  # differential privacy: the store's budget after
    pii: dict | None = None  # heatengine.pii.check_outputs of the published version


def tumbling_window(day: date, length: int) -> tuple[date, date]:
    """The ``length``-day window holding ``day`` (first and last day, inclusive).

    Examples
    --------
    >>> tumbling_window(date(2026, 12, 3), 7)
    (datetime.date(2026, 11, 26), datetime.date(2026, 12, 2))
    """
    if length < 1:
        msg = f"a window must be at least one day, got {length}"
        raise HeatengineError(msg)
    offset = (day - WINDOW_ORIGIN).days // length * length
    first = WINDOW_ORIGIN + timedelta(days=offset)
    return first, first + timedelta(days=length - 1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


class StoreLock:
    """One run at a time per store: ``STORE/.lock`` names the holder.

    A lock left by a process that no longer runs on this host is taken over.
    """

    def __init__(self, store: Path) -> None:
        self.path = store / LOCK_FILE
        self.holder = {"pid": os.getpid(), "host": socket.gethostname()}

    def __enter__(self) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self._read()
                if self._stale(other):
                    self.path.unlink(missing_ok=True)
                    continue
                msg = (
                    f"another run holds {str(self.path)!r} (pid {other.get('pid')} on "
                    f"{other.get('host')}); wait for it or remove the lock if it is gone"
                )
                raise HeatengineError(msg) from None
            with os.fdopen(fd, "w") as handle:
                json.dump(self.holder, handle)
            return self
        msg = f"could not take the lock {str(self.path)!r}"
        raise HeatengineError(msg)

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def _stale(self, other: dict) -> bool:
        if other.get("host") != self.holder["host"] or not isinstance(other.get("pid"), int):
            return not other  # an unreadable lock file is stale; another host's is not
        try:
            os.kill(other["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def run_nightly(
    input_root: str | os.PathLike[str],
    store: str | os.PathLike[str],
    day: date,
    *,
    config: AggregateConfig | None = None,
    window: int = 7,
    key: PseudonymKey | None = None,
    now: datetime | None = None,
    actor: str | None = None,
    purpose: str = "",
    render: Callable[[HeatmapSet, Path], object] | None = None,
    builder: Callable[..., tuple] | None = None,
    budget: BudgetPolicy | None = None,
    rolling: bool = False,
) -> NightlyResult:
    """Aggregate one day into its partial and publish the day's window.

    Parameters
    ----------
    input_root
        Folder of day partitions ``date=YYYY-MM-DD/`` (Parquet, CSV or NDJSON inside).
    store
        The store: partials, published windows, audit log.
    day
        The day to process.
    config
        Grid, privacy and other options (``as_of`` is set per run).
    window
        Days per window: tumbling (fixed, non-overlapping) by default.
    key
        Pseudonymisation key (default from ``HEATENGINE_KEY``); its epoch is stored with
        each partial and a window mixing epochs is refused.
    now
        The run's clock (default: now), deciding what retention purges.
    render
        Called with the published window and its folder, e.g. to write PNGs.
    builder
        Builds the day's partial: ``builder(partition, config, as_of=..., key=...)``
        returning (partial, row counts, quarantine); default
        :func:`heatengine.pipeline.build_partial` (a Dask cluster's in the CLI).
    budget
        With ``config.dp``: the store's privacy budget. Every publication of a window is
        a release of its own (the window's data change as days arrive, and a rerun draws
        new noise), charged before it is written and refused when it would overspend.
    rolling
        Publish the ``window`` days ending with ``day`` (overlapping windows, one per
        night). Only with ``config.dp``: differences of overlapping k-anonymous windows
        could isolate a few users, while each DP release is charged to the budget.
    """
    if rolling and (config is None or config.dp is None):
        msg = (
            "rolling windows need differential privacy (--privacy dp): differences of "
            "overlapping k-anonymous windows could single out a few users"
        )
        raise HeatengineError(msg)
    if config is not None and config.dp is not None and budget is None:
        msg = "a differentially private nightly run needs the store's budget (budget=...)"
        raise HeatengineError(msg)
    config = config or AggregateConfig()
    store = Path(store)
    started = now or datetime.now(UTC)
    horizon = started.date() - timedelta(days=config.privacy.retention_days)
    with StoreLock(store):
        _remove_leftovers(store)
        purged = tuple(purge_days_before(store, horizon))
        if purged:
            _log_purge(store, purged, horizon, started, actor)
        if day < horizon:
            msg = (
                f"{day} is older than the retention window ({config.privacy.retention_days} "
                f"days before {started.date()}): its data may no longer be processed"
            )
            raise HeatengineError(msg)
        if budget is not None and config.dp is not None:  # before any data is read
            dp = config.dp
            require_room(store, f"{day} (check)", dp.epsilon, dp.delta, budget, started)
        partition = Path(input_root) / f"date={day.isoformat()}"
        if not partition.is_dir():
            msg = f"no partition for {day}: {str(partition)!r} does not exist"
            raise HeatengineError(msg)
        day_end = _midnight(day + timedelta(days=1))
        day_config = replace(config, as_of=day_end)
        build = builder or build_partial
        partial, counts, _ = build(partition, day_config, as_of=day_end, key=key)
        save_day(store, day, partial, counts, config)

        first, last = (
            (day - timedelta(days=window - 1), day) if rolling else tumbling_window(day, window)
        )
        days = tuple(d for d in stored_days(store) if first <= d <= last and d >= horizon)
        heatmaps = _publish_window(store, days, config, first, last)
        window_dir = store / WINDOWS_DIR / f"{first.isoformat()}_{last.isoformat()}"
        status = None
        if budget is not None and config.dp is not None:
            release = release_id(f"{window_dir.name}@{day.isoformat()}")
            status = charge_release(
                heatmaps, store, release, budget, started, days=(min(days), max(days))
            )
        version, pii = _publish_atomically(heatmaps, window_dir, render)
        outputs = [version / name for name in (CELLS_FILE, GRIDS_FILE, MANIFEST_FILE)]
        record = run_record(
            heatmaps,
            command=f"nightly {day.isoformat()}",
            started=started,
            finished=now or datetime.now(UTC),
            inputs=files_with_hashes(input_files(partition)),
            outputs=files_with_hashes(outputs),
            actor=actor,
            purpose=purpose or "nightly heatmaps",
        )
        record["partials_read"] = [d.isoformat() for d in days]
        record["window"] = [first.isoformat(), last.isoformat()]
        record["pii_outputs"] = pii
        # The day's coverage: a window's days cannot be matched up person by person.
        record["consent_coverage_day"] = counts.consent_coverage
        if status is not None:
            record["budget"] = {
                "epsilon_spent": status.epsilon_spent,
                "delta_spent": status.delta_spent,
                "ledger_hash": status.ledger_hash,
            }
        append_entry(store / AUDIT_FILE, record)
    return NightlyResult(day, (first, last), window_dir, days, purged, heatmaps, status, pii)


def _publish_atomically(
    heatmaps: HeatmapSet, window_dir: Path, render: Callable[[HeatmapSet, Path], object] | None
) -> tuple[Path, dict]:
    """Write a complete new version of a window, scan it for personal data, then switch
    its link to it in one step; returns the version and the scan.

    ``windows/FIRST_LAST`` is a symbolic link to ``windows/.versions/FIRST_LAST.TOKEN``;
    replacing a link is atomic, so a reader, or a run killed at any moment, sees either
    the old window or the new one, never a mixture. A version holding personal data is
    deleted unpublished (:class:`heatengine.pii.PersonalDataInOutputs`).
    """
    versions = window_dir.parent / VERSIONS_DIR
    versions.mkdir(parents=True, exist_ok=True)
    version = versions / f"{window_dir.name}.{secrets.token_hex(6)}"
    heatmaps.write(version)
    if render is not None:
        render(heatmaps, version)
    scan = check_outputs(heatmaps.stats.pii_input or {"kinds": [], "columns": {}}, version)
    if not scan["clean"]:
        shutil.rmtree(version, ignore_errors=True)
        raise PersonalDataInOutputs(scan)
    previous = window_dir.resolve() if window_dir.is_symlink() else None
    link = window_dir.parent / f".{window_dir.name}.{secrets.token_hex(6)}.link"
    link.symlink_to(Path(VERSIONS_DIR) / version.name)
    os.replace(link, window_dir)
    if previous is not None and previous != version.resolve():
        shutil.rmtree(previous, ignore_errors=True)
    return version, scan


def _remove_leftovers(store: Path) -> None:
    """Delete what a killed run left: unlinked window versions, links and partial drafts."""
    windows = store / WINDOWS_DIR
    if windows.is_dir():
        live = {p.resolve() for p in windows.iterdir() if p.is_symlink()}
        for version in (windows / VERSIONS_DIR).glob("*"):
            if version.resolve() not in live:
                shutil.rmtree(version, ignore_errors=True)
        for link in windows.glob(".*.link"):
            link.unlink(missing_ok=True)
    partials = store / "partials"
    if partials.is_dir():
        for draft in [*partials.glob(".*.tmp"), *partials.glob(".*.old")]:
            shutil.rmtree(draft, ignore_errors=True)


def _publish_window(
    store: Path, days: tuple[date, ...], config: AggregateConfig, first: date, last: date
) -> HeatmapSet:
    loaded = [load_day(store, d) for d in days]
    options = partial_options(config)
    epochs = {meta["counts"]["key_epoch"] for _, _, meta in loaded}
    if len(epochs) > 1:
        msg = (
            f"the window {first} to {last} mixes key epochs {sorted(map(str, epochs))}: a "
            "user would count as two; re-run its days with one key"
        )
        raise HeatengineError(msg)
    for day, (_, _, meta) in zip(days, loaded, strict=True):
        if meta["options"] != options:
            msg = (
                f"the partial of {day} was made with other options ({meta['options']}); "
                "re-run it with the current ones"
            )
            raise HeatengineError(msg)
    merged = merge_partials([p for p, _, _ in loaded])
    counts = loaded[0][1]
    for _, more, _ in loaded[1:]:
        counts = counts.merged(more)
    end = _midnight(last + timedelta(days=1))
    window_config = replace(config, as_of=end)
    return publish(merged, counts, window_config, as_of=end, window_start=_midnight(first))


def _log_purge(
    store: Path, days: tuple[date, ...], horizon: date, at: datetime, actor: str | None
) -> None:
    append_entry(
        store / AUDIT_FILE,
        {
            "kind": "purge",
            "at": at.isoformat(),
            "actor": actor or default_actor(),
            "reason": f"retention: partials before {horizon.isoformat()}",
            "days": [d.isoformat() for d in days],
        },
    )
