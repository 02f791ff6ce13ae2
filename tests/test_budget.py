"""The privacy budget ledger: charging, refusing, ageing out, reruns and tampering."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from heatengine.audit import GENESIS
from heatengine.budget import (
    BUDGET_FILE,
    BudgetExceededError,
    BudgetPolicy,
    charge,
    spent,
    verify_ledger,
)
from heatengine.errors import HeatengineError, StoreError

POLICY = BudgetPolicy(epsilon=1.0, delta=1e-6, horizon_days=30)
DAY = date(2026, 3, 1)


def at(day: date, hour: int = 2) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def week(n: int) -> tuple[date, date]:
    """The n-th 7-day data window from DAY."""
    first = DAY + timedelta(days=7 * n)
    return first, first + timedelta(days=6)


def charge_week(store, n, epsilon, delta=0.0, policy=POLICY, release_id=None):
    first, last = week(n)
    release = release_id or f"{first}_{last}"
    return charge(store, release, first, last, epsilon, delta, policy, at(last + timedelta(1)))


def rows(store):
    return (store / BUDGET_FILE).read_text().splitlines()


def write_rows(store, lines):
    (store / BUDGET_FILE).write_text("\n".join(lines) + "\n")


@pytest.fixture
def store(tmp_path):
    for n, epsilon in enumerate([0.2, 0.3, 0.1, 0.15]):
        charge_week(tmp_path, n, epsilon, 1e-7)
    return tmp_path


def test_releases_that_fit_are_recorded_and_chained(store):
    entries = verify_ledger(store)
    assert [e.epsilon for e in entries] == [0.2, 0.3, 0.1, 0.15]
    assert [e.line for e in entries] == [1, 2, 3, 4]
    assert (entries[0].start, entries[0].end) == week(0)
    raw = [json.loads(line) for line in rows(store)]
    assert raw[0]["prev_hash"] == GENESIS
    assert [r["prev_hash"] for r in raw[1:]] == [r["hash"] for r in raw[:-1]]
    assert raw[0]["recorded_at"] == "2026-03-08T02:00:00+00:00"
    assert raw[0]["policy"] == {"epsilon": 1.0, "delta": 1e-6, "horizon_days": 30}
    status = spent(store, week(3)[1] + timedelta(1), POLICY)
    assert status.epsilon_spent == pytest.approx(0.75)
    assert status.delta_spent == pytest.approx(4e-7)
    assert (status.epsilon_budget, status.delta_budget) == (1.0, 1e-6)
    assert status.releases == tuple(e.release_id for e in entries)
    assert status.epsilon_left == pytest.approx(0.25)
    assert status.ledger_hash == raw[-1]["hash"]


def test_overspending_is_refused_with_the_numbers(store):
    before = (store / BUDGET_FILE).read_bytes()
    with pytest.raises(BudgetExceededError) as refused:
        charge_week(store, 4, 0.3)
    message = str(refused.value)
    assert "'2026-03-29_2026-04-04' would overspend" in message
    assert "(epsilon)" in message
    assert "epsilon 0.75, delta 4e-07" in message  # spent
    assert "requested: epsilon 0.3, delta 0" in message
    assert "budget: epsilon 1, delta 1e-06" in message
    assert "30-day horizon (data since 2026-03-06)" in message
    assert "releases counted (4): '2026-03-01_2026-03-07', '2026-03-08_2026-03-14'" in message
    assert BUDGET_FILE in message
    assert isinstance(refused.value, HeatengineError)
    assert (store / BUDGET_FILE).read_bytes() == before
    assert charge_week(store, 4, 0.25).epsilon_spent == pytest.approx(1.0)


def test_old_releases_stop_counting_after_the_horizon(tmp_path):
    policy = BudgetPolicy(epsilon=1.0, delta=0.0, horizon_days=10)
    charge_week(tmp_path, 0, 1.0, policy=policy)  # data 03-01..03-07
    with pytest.raises(BudgetExceededError, match="releases counted \\(1\\)"):
        charge_week(tmp_path, 1, 0.5, policy=policy)  # recorded 03-15: 03-07 >= 03-05
    assert spent(tmp_path, date(2026, 3, 17), policy).releases == ("2026-03-01_2026-03-07",)
    assert spent(tmp_path, date(2026, 3, 18), policy).releases == ()
    assert spent(tmp_path, date(2026, 3, 18), policy).epsilon_spent == 0.0
    late = date(2026, 3, 18)
    status = charge(tmp_path, "late", date(2026, 3, 8), date(2026, 3, 17), 1.0, 0, policy, at(late))
    assert status.releases == ("late",)
    assert len(verify_ledger(tmp_path)) == 2


def test_a_user_spanning_windows_pays_for_each(tmp_path):
    """Disjoint windows within the horizon add up (the per-day maximum would say 0.6)."""
    policy = BudgetPolicy(epsilon=1.0, delta=0.0, horizon_days=30)
    charge_week(tmp_path, 0, 0.6, policy=policy)
    with pytest.raises(BudgetExceededError, match=re.escape("epsilon 0.6, delta 0; requested")):
        charge_week(tmp_path, 1, 0.6, policy=policy)


def test_a_rerun_is_not_charged_twice(store):
    before = (store / BUDGET_FILE).read_bytes()
    again = charge_week(store, 1, 0.3, 1e-7)
    assert (store / BUDGET_FILE).read_bytes() == before
    assert again.epsilon_spent == pytest.approx(0.75)
    assert again.releases.count("2026-03-08_2026-03-14") == 1


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"epsilon": 0.31}, "epsilon 0.31"),
        ({"delta": 0.0}, "delta 0:"),
        ({"window": 2}, "data 2026-03-15 to 2026-03-21"),
    ],
)
def test_the_same_id_with_other_values_is_refused(store, change, shown):
    first, last = week(change.get("window", 1))
    before = (store / BUDGET_FILE).read_bytes()
    with pytest.raises(HeatengineError, match="already charged") as refused:
        charge(
            store,
            "2026-03-08_2026-03-14",
            first,
            last,
            change.get("epsilon", 0.3),
            change.get("delta", 1e-7),
            POLICY,
            at(date(2026, 4, 1)),
        )
    assert not isinstance(refused.value, BudgetExceededError)
    assert "(line 2) with data 2026-03-08 to 2026-03-14, epsilon 0.3, delta 1e-07" in str(
        refused.value
    )
    assert shown in str(refused.value)
    assert (store / BUDGET_FILE).read_bytes() == before


def test_delta_is_accounted_separately(tmp_path):
    policy = BudgetPolicy(epsilon=10.0, delta=1e-6, horizon_days=30)
    for n in range(3):
        charge_week(tmp_path, n, 0.1, 3e-7, policy=policy)
    with pytest.raises(BudgetExceededError, match=r"\(delta\).*delta 9e-07.*delta 2e-07"):
        charge_week(tmp_path, 3, 0.1, 2e-7, policy=policy)
    status = charge_week(tmp_path, 3, 0.1, 1e-7, policy=policy)
    assert status.delta_spent == pytest.approx(1e-6)
    pure, pure_store = BudgetPolicy(epsilon=10.0, delta=0.0, horizon_days=30), tmp_path / "pure"
    pure_store.mkdir()
    with pytest.raises(BudgetExceededError, match=r"\(delta\)"):
        charge_week(pure_store, 0, 0.1, 1e-9, policy=pure)
    assert charge_week(pure_store, 0, 0.1, 0.0, policy=pure).delta_spent == 0.0


def test_float_sums_fit_exactly(tmp_path):
    policy = BudgetPolicy(epsilon=1.0, delta=0.0, horizon_days=365)
    for n in range(10):
        charge_week(tmp_path, n, 0.1, policy=policy)
    assert spent(tmp_path, at(date(2026, 5, 10)), policy).epsilon_spent == 1.0
    with pytest.raises(BudgetExceededError):
        charge_week(tmp_path, 10, 1e-9, policy=policy)
    other = tmp_path / "other"
    other.mkdir()
    tight = BudgetPolicy(epsilon=0.3, delta=0.0, horizon_days=365)
    charge_week(other, 0, 0.1, policy=tight)
    assert charge_week(other, 1, 0.2, policy=tight).releases == (
        "2026-03-01_2026-03-07",
        "2026-03-08_2026-03-14",
    )


@pytest.mark.parametrize("victim", [0, 1, 3])
def test_an_edited_line_is_named(store, victim):
    lines = rows(store)
    lines[victim] = re.sub(r'"epsilon":[0-9.]+,"hash"', '"epsilon":0.01,"hash"', lines[victim])
    write_rows(store, lines)
    message = f"budget.jsonl' is damaged at line {victim + 1}: its content does not match"
    for read in (verify_ledger, lambda s: spent(s, DAY, POLICY), lambda s: charge_week(s, 9, 0.1)):
        with pytest.raises(StoreError, match=message):
            read(store)


@pytest.mark.parametrize("victim", [0, 1, 2])
def test_a_deleted_line_is_found_where_it_was(store, victim):
    lines = rows(store)
    del lines[victim]
    write_rows(store, lines)
    with pytest.raises(StoreError, match=f"damaged at line {victim + 1}: "):
        verify_ledger(store)


def test_reordered_lines_are_found(store):
    lines = rows(store)
    lines[1], lines[2] = lines[2], lines[1]
    write_rows(store, lines)
    with pytest.raises(StoreError, match="damaged at line 2: it is entry 2 but stands at"):
        verify_ledger(store)


@pytest.mark.parametrize(
    ("damage", "where"),
    [
        (lambda text: text[:-1], "line 4: the last line has no newline"),
        (lambda text: text.replace("\n", "\n\n", 1), "line 2: the line is blank"),
        (lambda text: text + "not json\n", "line 5: the line is not valid JSON"),
    ],
)
def test_incomplete_blank_and_garbage_lines_are_refused(store, damage, where):
    path = store / BUDGET_FILE
    path.write_text(damage(path.read_text()))
    with pytest.raises(StoreError, match=where):
        verify_ledger(store)
    with pytest.raises(StoreError, match=where):
        charge_week(store, 9, 0.01)


def test_an_empty_store_has_spent_nothing(tmp_path):
    assert verify_ledger(tmp_path) == ()
    status = spent(tmp_path, DAY, POLICY)
    assert (status.epsilon_spent, status.delta_spent, status.releases) == (0.0, 0.0, ())
    assert status.ledger_hash == GENESIS
    with pytest.raises(StoreError, match="no store directory"):
        spent(tmp_path / "absent", DAY, POLICY)


def test_windows_outside_the_horizon_or_in_the_future_are_refused(tmp_path):
    recorded = at(date(2026, 3, 20))
    with pytest.raises(HeatengineError, match="uses data up to 2026-03-21, after it was"):
        charge(tmp_path, "r", DAY, date(2026, 3, 21), 0.1, 0, POLICY, recorded)
    with pytest.raises(HeatengineError, match="older than the 30-day horizon"):
        charge(tmp_path, "r", date(2026, 1, 1), date(2026, 2, 17), 0.1, 0, POLICY, recorded)
    with pytest.raises(HeatengineError, match="starts on 2026-03-02, after its end"):
        charge(tmp_path, "r", date(2026, 3, 2), DAY, 0.1, 0, POLICY, recorded)
    assert not (tmp_path / BUDGET_FILE).exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epsilon", 0.0, "budget epsilon must be a finite number above 0, got 0.0"),
        ("epsilon", float("nan"), "budget epsilon must be a finite number above 0, got nan"),
        ("epsilon", float("inf"), "budget epsilon must be a finite number above 0, got inf"),
        ("delta", -1e-9, "budget delta must be a finite number from 0 to below 1, got -1e-09"),
        ("delta", 1.0, "budget delta must be a finite number from 0 to below 1, got 1.0"),
        ("horizon_days", 0, "horizon_days must be an integer of at least 1, got 0"),
        ("horizon_days", 7.0, "horizon_days must be an integer of at least 1, got 7.0"),
        ("horizon_days", True, "horizon_days must be an integer of at least 1, got True"),
    ],
)
def test_policy_validation(field, value, message):
    arguments = {"epsilon": 1.0, "delta": 0.0, "horizon_days": 30, field: value}
    with pytest.raises(ValueError, match=re.escape(message)):
        BudgetPolicy(**arguments)


def test_policy_stores_floats():
    assert BudgetPolicy(epsilon=1, delta=0, horizon_days=7) == BudgetPolicy(1.0, 0.0, 7)
    assert isinstance(BudgetPolicy(epsilon=1, delta=0, horizon_days=7).epsilon, float)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"release_id": " "}, "a release id must be a non-empty string"),
        ({"epsilon": 0}, "release epsilon must be a finite number above 0, got 0"),
        ({"delta": -0.1}, "release delta must be a finite number from 0 to below 1"),
        ({"start": datetime(2026, 3, 1, tzinfo=UTC)}, "start must be a date"),
        ({"recorded_at": datetime(2026, 3, 9)}, "recorded_at must be a timezone-aware"),
    ],
)
def test_charge_validation(tmp_path, arguments, message):
    values = {
        "release_id": "w",
        "start": DAY,
        "end": DAY,
        "epsilon": 0.1,
        "delta": 0.0,
        "policy": POLICY,
        "recorded_at": at(date(2026, 3, 9)),
        **arguments,
    }
    with pytest.raises(HeatengineError, match=re.escape(message)):
        charge(tmp_path, **values)
