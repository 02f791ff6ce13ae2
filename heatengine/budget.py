"""The differential-privacy budget of a store: a hash-chained ledger of releases.

Every release of noisy statistics is charged, before it is published, to
``STORE/budget.jsonl``: one JSON line per release with its id, the first and last day
whose taps it used (its *data window*, inclusive), its ``epsilon`` and ``delta``, the
time it was recorded and the policy it was approved under. Lines are chained like the
audit log (:mod:`heatengine.audit`: ``seq``, ``prev_hash``, ``hash``), so an edited,
deleted or reordered line is refused with a :class:`~heatengine.errors.StoreError`
naming the file and line. Cutting lines off the end, or deleting the file, cannot be
detected from the ledger alone: record :attr:`BudgetStatus.ledger_hash` elsewhere (the
audit log) to catch that.

Accounting rule
---------------
A user's data from day ``d`` can be used by every release whose data window contains
``d``, and a user can have data on many days. Under basic composition a user's loss is
at most the sum of the ``epsilon`` (and of the ``delta``) of all releases whose data
windows hold any of that user's days. At a date ``as_of`` the data still retained are
the days from ``as_of - horizon_days`` on, so the amount spent at ``as_of`` is the sum
over **every release whose data window ends on or after** ``as_of - horizon_days``
(each one could hold some of a retained user's data). A new release is accepted when
that sum plus its own cost stays within :class:`BudgetPolicy`; once the horizon has
moved past a release's last day it stops counting. (A window starting after ``as_of``
counts too, which only a look back at an earlier date can meet.) As time passes without
new releases the sum can only fall, so checking it whenever a release is charged keeps
it within budget at every date. This bounds the loss from releases touching data that is
still retained, not a lifetime loss: a user active for longer than the horizon was also
in releases that have aged out, and over all time can lose more than the budget.

Taking the maximum over days of the releases containing that day would be unsound: a
user with taps on day 1 and on day 5 is in both release A (data window day 1, epsilon
1) and release B (day 5, epsilon 1) and loses 2, yet no single day is in more than one
release, so the per-day maximum says 1. The sum over all overlapping releases is the
simple bound that holds for every user, whatever days they were active on.

A release's data window must not end after it is recorded (that data does not exist
yet) nor before the horizon (that data may no longer be processed). Charging the same
release id again with the same window, ``epsilon`` and ``delta`` (a rerun) charges
nothing; the same id with anything else is refused.

Float sums use :func:`math.fsum` (exactly rounded, whatever the order) and a total is
within budget when it exceeds it by at most a relative ``1e-12`` (:data:`RELATIVE_SLACK`),
so ten releases of 0.1 fit a budget of 1.0 and 0.1 + 0.2 fits 0.3; a budget of 0 allows
nothing above 0.

Writes
------
A charge copies the verified ledger to a temporary file beside it, appends the new
entry there (:func:`heatengine.audit.append_entry`, fsynced) and renames it over the
ledger (:mod:`heatengine.atomic`). The ledger is therefore always a whole number of
complete lines: any line that does not verify is damage, never a half-finished write,
and is refused instead of being cut off as the audit log does with a torn last line.
The ledger is small (one line per release), so rewriting it costs little. Charges are
serialised by an ``flock`` on ``STORE/.budget.lock``, separate from the nightly
``STORE/.lock``, so a charge can be made while holding that lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from heatengine.atomic import atomic_path
from heatengine.audit import GENESIS, append_entry, verify_log
from heatengine.config import _require_real
from heatengine.errors import HeatengineError, StoreError

if TYPE_CHECKING:
    from heatengine.heatmaps import HeatmapSet

BUDGET_FILE = "budget.jsonl"
BUDGET_LOCK_FILE = ".budget.lock"
ENTRY_KIND = "release"
#: A total may exceed the budget by this fraction of it (float rounding, nothing more).
RELATIVE_SLACK = 1e-12


class BudgetExceededError(HeatengineError):
    """A release would spend more than the privacy budget allows."""


@dataclass(frozen=True)
class BudgetPolicy:
    """How much privacy loss a user may suffer from the releases of one store.

    Parameters
    ----------
    epsilon
        Total ``epsilon`` per user over the releases whose data lie within the horizon
        (finite, above 0).
    delta
        Total ``delta`` likewise (at least 0, below 1).
    horizon_days
        The retention horizon: data older than this many days before a date no longer
        count at that date (an integer of at least 1).

    Examples
    --------
    >>> BudgetPolicy(epsilon=1.0, delta=1e-6, horizon_days=30)
    BudgetPolicy(epsilon=1.0, delta=1e-06, horizon_days=30)
    """

    epsilon: float
    delta: float
    horizon_days: int

    def __post_init__(self) -> None:
        # Stored as floats, so an int budget reads back as it was given.
        object.__setattr__(self, "epsilon", _require_epsilon("budget epsilon", self.epsilon))
        object.__setattr__(self, "delta", _require_delta("budget delta", self.delta))
        days = self.horizon_days
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            msg = f"horizon_days must be an integer of at least 1, got {days!r}"
            raise ValueError(msg)


@dataclass(frozen=True)
class BudgetEntry:
    """One verified line of the ledger."""

    release_id: str
    start: date  # first day of data used, inclusive
    end: date  # last day of data used, inclusive
    epsilon: float
    delta: float
    recorded_at: datetime
    line: int  # 1-based line in budget.jsonl


@dataclass(frozen=True)
class BudgetStatus:
    """What the releases counting at ``as_of`` have spent, against the budget."""

    epsilon_spent: float
    delta_spent: float
    epsilon_budget: float
    delta_budget: float
    releases: tuple[str, ...]  # ids of the releases counted, in ledger order
    as_of: date
    ledger_hash: str  # hash of the last ledger entry (64 zeros for an empty ledger)

    @property
    def epsilon_left(self) -> float:
        """``epsilon`` still available (never below 0)."""
        return max(0.0, self.epsilon_budget - self.epsilon_spent)

    @property
    def delta_left(self) -> float:
        """``delta`` still available (never below 0)."""
        return max(0.0, self.delta_budget - self.delta_spent)


def verify_ledger(store: str | os.PathLike[str]) -> tuple[BudgetEntry, ...]:
    """Read and check every line of ``STORE/budget.jsonl``.

    Parameters
    ----------
    store
        The store directory. A store without a ledger has spent nothing.

    Returns
    -------
    tuple of BudgetEntry
        The entries in ledger order.

    Raises
    ------
    StoreError
        If the store does not exist, or a line is edited, deleted, reordered,
        duplicated, incomplete or not a release entry; the message names the line.
    """
    return _read_ledger(_store_dir(store))[0]


def spent(
    store: str | os.PathLike[str], as_of: date | datetime, policy: BudgetPolicy
) -> BudgetStatus:
    """Sum the releases still counting at ``as_of`` (see the module's accounting rule).

    Parameters
    ----------
    store
        The store directory.
    as_of
        The date to account at (a timezone-aware datetime counts by its UTC date).
    policy
        The budget and horizon.

    Returns
    -------
    BudgetStatus
        Spent and budgeted ``epsilon`` and ``delta`` and the releases counted.

    Examples
    --------
    >>> import tempfile
    >>> store = Path(tempfile.mkdtemp())
    >>> policy = BudgetPolicy(epsilon=1.0, delta=0.0, horizon_days=7)
    >>> at = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    >>> _ = charge(store, "w1", date(2026, 3, 2), date(2026, 3, 8), 0.25, 0.0, policy, at)
    >>> spent(store, date(2026, 3, 10), policy).epsilon_spent
    0.25
    >>> spent(store, date(2026, 3, 16), policy).releases  # day 8 is 8 days back
    ()
    """
    day = _as_of_day(as_of)
    entries, head, _ = _read_ledger(_store_dir(store))
    return _status(entries, day, policy, head)


def charge(
    store: str | os.PathLike[str],
    release_id: str,
    start: date,
    end: date,
    epsilon: float,
    delta: float,
    policy: BudgetPolicy,
    recorded_at: datetime,
) -> BudgetStatus:
    """Charge a release to the store's budget, or refuse it.

    Parameters
    ----------
    store
        The store directory (it must exist).
    release_id
        Names the release, for example its window ``"2026-03-02_2026-03-08"``.
    start, end
        First and last day whose taps the release used (inclusive).
    epsilon, delta
        The release's privacy cost.
    policy
        The budget and horizon.
    recorded_at
        The time of the charge (timezone-aware); its UTC date is the ``as_of`` the
        budget is checked at.

    Returns
    -------
    BudgetStatus
        The budget at that date, this release included. A rerun (same id, window,
        ``epsilon`` and ``delta``) is not charged twice.

    Raises
    ------
    BudgetExceededError
        If the releases counting at that date and this one would spend more than the
        budget; the message gives what was spent, what was asked, the budget and the
        releases counted.
    HeatengineError
        If the id is already charged with other values, or the window ends after
        ``recorded_at`` or before the horizon.
    StoreError
        If the ledger is damaged (see :func:`verify_ledger`).

    Examples
    --------
    >>> import tempfile
    >>> store = Path(tempfile.mkdtemp())
    >>> policy = BudgetPolicy(epsilon=1.0, delta=1e-6, horizon_days=30)
    >>> at = datetime(2026, 3, 9, 2, 0, tzinfo=UTC)
    >>> status = charge(store, "w1", date(2026, 3, 2), date(2026, 3, 8), 0.4, 1e-7, policy, at)
    >>> status.epsilon_spent, status.delta_spent, status.releases
    (0.4, 1e-07, ('w1',))
    """
    directory = _store_dir(store)
    if not isinstance(release_id, str) or not release_id.strip():
        msg = f"a release id must be a non-empty string, got {release_id!r}"
        raise HeatengineError(msg)
    start = _require_day("start", start)
    end = _require_day("end", end)
    epsilon = _require_epsilon("release epsilon", epsilon, HeatengineError)
    delta = _require_delta("release delta", delta, HeatengineError)
    if not isinstance(recorded_at, datetime) or recorded_at.tzinfo is None:
        msg = f"recorded_at must be a timezone-aware datetime, got {recorded_at!r}"
        raise HeatengineError(msg)
    if start > end:
        msg = f"release {release_id!r}: its data window starts on {start}, after its end {end}"
        raise HeatengineError(msg)
    as_of = _as_of_day(recorded_at)
    path = directory / BUDGET_FILE
    with _ledger_lock(directory):
        entries, head, existing = _read_ledger(directory)
        for entry in entries:
            if entry.release_id == release_id:
                _require_rerun(path, entry, start, end, epsilon, delta)
                return _status(entries, as_of, policy, head)
        since = _horizon_start(as_of, policy)
        if end > as_of:
            msg = (
                f"release {release_id!r} uses data up to {end}, after it was recorded "
                f"({recorded_at.isoformat()})"
            )
            raise HeatengineError(msg)
        if end < since:
            msg = (
                f"release {release_id!r} uses only data from {start} to {end}, older than "
                f"the {policy.horizon_days}-day horizon (data since {since}): it may no "
                "longer be released"
            )
            raise HeatengineError(msg)
        before = _status(entries, as_of, policy, head)
        _require_within_budget(path, release_id, before, epsilon, delta, policy, since)
        record = {
            "kind": ENTRY_KIND,
            "release_id": release_id,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "epsilon": epsilon,
            "delta": delta,
            "recorded_at": recorded_at.isoformat(),
            "policy": {
                "epsilon": policy.epsilon,
                "delta": policy.delta,
                "horizon_days": policy.horizon_days,
            },
        }
        with atomic_path(path) as temporary:
            temporary.write_bytes(existing)
            written = append_entry(temporary, record)
        entry = _parse_entry(path, len(entries) + 1, written)
    return _status((*entries, entry), as_of, policy, written["hash"])


def require_room(
    store: str | os.PathLike[str],
    release: str,
    epsilon: float,
    delta: float,
    policy: BudgetPolicy,
    as_of: datetime,
) -> BudgetStatus:
    """Refuse early, before any data is read, a release that could not be charged.

    Raises
    ------
    BudgetExceededError
        With the numbers, as :func:`charge` would.
    """
    directory = Path(store)
    if not directory.is_dir():
        return _status((), _as_of_day(as_of), policy, GENESIS)
    before = spent(directory, as_of, policy)
    since = _horizon_start(_as_of_day(as_of), policy)
    _require_within_budget(directory / BUDGET_FILE, release, before, epsilon, delta, policy, since)
    return before


def release_id(name: str) -> str:
    """A ledger id that no other release shares: every publication draws new noise, so a
    rerun of the same window is a new release, charged again."""
    return f"{name} #{secrets.token_hex(6)}"


def charge_release(
    heatmaps: HeatmapSet,
    store: str | os.PathLike[str],
    release: str,
    policy: BudgetPolicy,
    recorded_at: datetime | None = None,
    days: tuple[date, date] | None = None,
) -> BudgetStatus:
    """Charge a differentially private result to ``store``'s budget before it is written.

    ``days`` are the first and last day whose taps the release used; by default the
    result's window, from ``window_start`` to the day before ``as_of`` when ``as_of`` is
    midnight, else to ``as_of``'s day. The cost is the ``epsilon`` and ``delta`` the
    release spent (``heatmaps.stats.dp``).

    Raises
    ------
    HeatengineError
        The result is not differentially private.
    BudgetExceededError
        The release would overspend; nothing is recorded.
    """
    dp = heatmaps.stats.dp
    if dp is None:
        msg = "only differentially private results are charged to a privacy budget"
        raise HeatengineError(msg)
    if days is None:
        start = datetime.fromisoformat(heatmaps.stats.window_start).date()
        end = (datetime.fromisoformat(heatmaps.stats.as_of) - timedelta(microseconds=1)).date()
        days = (start, end)
    Path(store).mkdir(parents=True, exist_ok=True)
    return charge(
        store,
        release,
        *days,
        dp["epsilon_spent"],
        dp["delta_spent"],
        policy,
        recorded_at or datetime.now(UTC),
    )


def _status(
    entries: tuple[BudgetEntry, ...], as_of: date, policy: BudgetPolicy, head: str
) -> BudgetStatus:
    since = _horizon_start(as_of, policy)
    counted = [e for e in entries if e.end >= since]
    return BudgetStatus(
        epsilon_spent=math.fsum(e.epsilon for e in counted),
        delta_spent=math.fsum(e.delta for e in counted),
        epsilon_budget=policy.epsilon,
        delta_budget=policy.delta,
        releases=tuple(e.release_id for e in counted),
        as_of=as_of,
        ledger_hash=head,
    )


def _horizon_start(as_of: date, policy: BudgetPolicy) -> date:
    """The oldest day whose data still count at ``as_of`` (as in the nightly retention)."""
    return as_of - timedelta(days=policy.horizon_days)


def _fits(spent_now: float, requested: float, budget: float) -> bool:
    return math.fsum((spent_now, requested)) <= budget * (1.0 + RELATIVE_SLACK)


def _require_within_budget(
    path: Path,
    release_id: str,
    before: BudgetStatus,
    epsilon: float,
    delta: float,
    policy: BudgetPolicy,
    since: date,
) -> None:
    over = [
        name
        for name, used, asked, budget in (
            ("epsilon", before.epsilon_spent, epsilon, policy.epsilon),
            ("delta", before.delta_spent, delta, policy.delta),
        )
        if not _fits(used, asked, budget)
    ]
    if not over:
        return
    counted = ", ".join(repr(r) for r in before.releases) or "none"
    msg = (
        f"release {release_id!r} would overspend the privacy budget of {str(path)!r} "
        f"({' and '.join(over)}): already spent within the {policy.horizon_days}-day "
        f"horizon (data since {since}): epsilon {_number(before.epsilon_spent)}, delta "
        f"{_number(before.delta_spent)}; requested: epsilon {_number(epsilon)}, delta "
        f"{_number(delta)}; budget: epsilon {_number(policy.epsilon)}, delta "
        f"{_number(policy.delta)}; releases counted ({len(before.releases)}): {counted}"
    )
    raise BudgetExceededError(msg)


def _require_rerun(
    path: Path, entry: BudgetEntry, start: date, end: date, epsilon: float, delta: float
) -> None:
    if (entry.start, entry.end, entry.epsilon, entry.delta) == (start, end, epsilon, delta):
        return
    msg = (
        f"release {entry.release_id!r} is already charged in {str(path)!r} (line "
        f"{entry.line}) with data {entry.start} to {entry.end}, epsilon "
        f"{_number(entry.epsilon)}, delta {_number(entry.delta)}; it cannot be charged "
        f"again with data {start} to {end}, epsilon {_number(epsilon)}, delta "
        f"{_number(delta)}: give the new release its own id"
    )
    raise HeatengineError(msg)


def _number(value: float) -> str:
    return f"{value:.12g}"


def _require_epsilon(name: str, value: object, error: type[ValueError] = ValueError) -> float:
    return _require_real(name, value, above=0, error=error)


def _require_delta(name: str, value: object, error: type[ValueError] = ValueError) -> float:
    return _require_real(name, value, at_least=0, below=1, error=error)


def _require_day(name: str, value: object) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        msg = f"{name} must be a date (a day of data), got {value!r}"
        raise HeatengineError(msg)
    return value


def _as_of_day(value: date | datetime) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            msg = f"as_of must be a date or a timezone-aware datetime, got {value!r}"
            raise HeatengineError(msg)
        return value.astimezone(UTC).date()
    if not isinstance(value, date):
        msg = f"as_of must be a date, got {value!r}"
        raise HeatengineError(msg)
    return value


def _store_dir(store: str | os.PathLike[str]) -> Path:
    directory = Path(store)
    if not directory.is_dir():
        msg = f"no store directory at {str(directory)!r}"
        raise StoreError(msg)
    return directory


@contextlib.contextmanager
def _ledger_lock(directory: Path) -> Iterator[None]:
    """One charge at a time per store (released by the kernel if the process dies)."""
    with open(directory / BUDGET_LOCK_FILE, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _damaged(path: Path, line: int, reason: str) -> StoreError:
    msg = (
        f"the budget ledger {str(path)!r} is damaged at line {line}: {reason}; it was "
        "edited or corrupted, so what was spent is unknown: restore it from a backup"
    )
    return StoreError(msg)


def _read_ledger(directory: Path) -> tuple[tuple[BudgetEntry, ...], str, bytes]:
    """The verified entries, the last entry's hash and the ledger's bytes."""
    path = directory / BUDGET_FILE
    data = path.read_bytes() if path.exists() else b""
    if not data:
        return (), GENESIS, data
    lines = data.split(b"\n")
    if lines[-1]:
        raise _damaged(path, len(lines), "the last line has no newline (it is incomplete)")
    lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise _damaged(path, number, "the line is blank")
    verification = verify_log(path)
    if not verification.ok:
        raise _damaged(path, verification.first_bad + 1, verification.reason)
    entries = tuple(
        _parse_entry(path, number, json.loads(line)) for number, line in enumerate(lines, 1)
    )
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.release_id in seen:
            reason = f"release {entry.release_id!r} is already on line {seen[entry.release_id]}"
            raise _damaged(path, entry.line, reason)
        seen[entry.release_id] = entry.line
    return entries, json.loads(lines[-1])["hash"], data


def _parse_entry(path: Path, line: int, raw: dict[str, Any]) -> BudgetEntry:
    missing = [
        k for k in ("release_id", "start", "end", "epsilon", "delta", "recorded_at") if k not in raw
    ]
    if raw.get("kind") != ENTRY_KIND or missing:
        reason = f"it is not a release entry (kind {raw.get('kind')!r}, missing {missing})"
        raise _damaged(path, line, reason)
    release_id = raw["release_id"]
    if not isinstance(release_id, str) or not release_id.strip():
        raise _damaged(path, line, f"the release id {release_id!r} is not a non-empty string")
    try:
        start = date.fromisoformat(raw["start"])
        end = date.fromisoformat(raw["end"])
        recorded_at = datetime.fromisoformat(raw["recorded_at"])
        epsilon = _require_epsilon("its epsilon", raw["epsilon"])
        delta = _require_delta("its delta", raw["delta"])
    except (TypeError, ValueError) as problem:
        raise _damaged(path, line, str(problem)) from None
    if start > end:
        raise _damaged(path, line, f"its data window starts on {start}, after its end {end}")
    return BudgetEntry(release_id, start, end, epsilon, delta, recorded_at, line)
