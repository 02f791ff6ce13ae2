"""What a store may say: figures under k, exact counts beside a DP release, stale files."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from heatengine.budget import BudgetExceededError, BudgetPolicy, charge, require_room
from heatengine.dp import DPPolicy
from heatengine.elements import demo_elements
from heatengine.errors import HeatengineError
from heatengine.pipeline import aggregate
from heatengine.rage import RagePolicy
from heatengine.store import ELEMENTS_FILE, read
from heatengine.synthetic import generate_taps
from tests.factory import KEY, small_config, taps_frame


def test_manifest_coverage_is_shares_of_published_layers_only(tmp_path):
    rows = [{"screen": "home", "user_id": f"u{i}"} for i in range(12)]
    rows += [{"screen": "home", "user_id": f"d{i}", "consent": False} for i in range(6)]
    rows += [{"screen": "secret", "user_id": f"s{i}", "consent": False} for i in range(7)]
    result = aggregate(taps_frame(rows, session_id="s"), small_config(k=5), key=KEY)
    layers = result.stats.consent_coverage["users"]["layers"]
    assert [layer["screen"] for layer in layers] == ["home"]  # 'secret' had no consent
    result.write(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    users = manifest["stats"]["consent_coverage"]["users"]
    assert set(users) == {"coverage", "layers"}
    assert users["layers"] == [{"screen": "home", "coverage": pytest.approx(12 / 18)}]
    assert "secret" not in (tmp_path / "manifest.json").read_text()


def test_a_dp_manifest_leaves_out_exact_counts(tmp_path):
    policy = DPPolicy(
        epsilon=1.0, delta=1e-6, max_cells_per_user=4, max_taps_per_cell=1,
        public_screens=("home",), select_screens=False,
    )  # fmt: skip
    result = aggregate(generate_taps(5_000, seed=2), small_config(k=5, dp=policy), key=KEY)
    assert result.stats.rows_in == 5_000  # the operator still sees them
    result.write(tmp_path)
    stats = json.loads((tmp_path / "manifest.json").read_text())["stats"]
    for name in ("rows_in", "rows_eligible", "quarantined", "excluded", "consent_coverage"):
        assert stats[name] is None, name
    assert "screens_considered" not in stats["dp"]
    assert stats["suppression"]["cells_published"] == result.cells.height


def test_screens_named_like_rage_layers_are_refused():
    rows = [{"screen": "home (rage taps)", "user_id": f"u{i}"} for i in range(6)]
    with pytest.raises(HeatengineError, match=r"already end with ' \(rage taps\)'"):
        aggregate(taps_frame(rows), small_config(k=5, rage_taps=RagePolicy()), key=KEY)


def test_a_route_left_blank_by_cleaning_is_a_missing_screen():
    rows = [{"screen": "?tab=2", "user_id": f"u{i}"} for i in range(6)]
    result = aggregate(taps_frame(rows), small_config(k=5), key=KEY)
    assert result.stats.quarantined == {"missing_screen": 6}


def test_rewriting_a_store_without_elements_removes_the_old_table(tmp_path):
    taps = generate_taps(20_000, seed=3)
    layout = tuple(demo_elements().select("screen", "element", "x0", "y0", "x1", "y1").iter_rows())
    aggregate(taps, small_config(k=5, elements=layout), key=KEY).write(tmp_path)
    assert (tmp_path / ELEMENTS_FILE).is_file()
    aggregate(taps, small_config(k=5), key=KEY).write(tmp_path)
    assert not (tmp_path / ELEMENTS_FILE).exists()
    assert read(tmp_path).elements is None


def test_an_early_budget_refusal_names_the_release(tmp_path):
    policy = BudgetPolicy(epsilon=1.0, delta=1e-5, horizon_days=30)
    at = datetime(2026, 12, 1, tzinfo=UTC)
    charge(tmp_path, "first", date(2026, 11, 20), date(2026, 11, 30), 1.0, 0.0, policy, at)
    with pytest.raises(BudgetExceededError, match="release 'next run' would overspend"):
        require_room(tmp_path, "next run", 0.5, 0.0, policy, at)
