"""Disclosure control and differential privacy end to end: aggregate, store, CLI, nightly.

The k-anonymity tests check published results against Polars computations on the raw
input. OpenDP's noise cannot be seeded, so the DP tests check only what holds for every
draw: shapes, nulls, clamping, the budget and what is (not) written.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from heatengine import aggregate, read
from heatengine.audit import verify_log
from heatengine.budget import BudgetExceededError, BudgetPolicy
from heatengine.cli import main
from heatengine.config import AggregateConfig, DominanceRule, GridSpec, PrivacyPolicy
from heatengine.dp import DPPolicy
from heatengine.errors import HeatengineError
from heatengine.nightly import run_nightly
from tests.factory import AS_OF, KEY, RECENT, small_config, taps_frame

KEY_TEXT = "disclosure pipeline test key, longer than 32 bytes"


def privacy(**options) -> PrivacyPolicy:
    return PrivacyPolicy(**{"k": 5, **options})


def cell_rows(x: float, y: float, taps_by_user: dict[str, int], screen: str = "home") -> list:
    """Rows putting ``taps`` taps of each user into the cell around (x, y)."""
    return [
        {"screen": screen, "user_id": user, "x": x, "y": y}
        for user, taps in taps_by_user.items()
        for _ in range(taps)
    ]


def published_cell(heatmaps, cx: int, cy: int, screen: str = "home") -> pl.DataFrame:
    cells = heatmaps.cells
    return cells.filter((pl.col("screen") == screen) & (pl.col("cx") == cx) & (pl.col("cy") == cy))


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


# ------------------------------------------------------------ dominance through aggregate


def dominated_and_balanced() -> pl.DataFrame:
    """Cell (0, 0): one user with 500 taps and five with one; cell (2, 2): six with 5 each."""
    dominated = {"dominant": 500, **{f"a{i}": 1 for i in range(5)}}
    balanced = {f"b{i}": 5 for i in range(6)}
    return taps_frame(cell_rows(0.1, 0.1, dominated) + cell_rows(0.6, 0.6, balanced))


def test_p_percent_rule_hides_a_dominated_cell_with_enough_users():
    config = small_config(k=5, privacy=privacy(max_taps_per_user_cell=1000))
    result = aggregate(dominated_and_balanced(), config, key=KEY)
    assert published_cell(result, 0, 0).height == 0  # 6 users >= k, but one dominates
    balanced = published_cell(result, 2, 2)
    assert balanced.select("users", "taps").row(0) == (6, 30)
    sup = result.stats.suppression
    assert sup.cells_suppressed_p_percent == 1
    others = (sup.cells_suppressed_k, sup.cells_suppressed_nk, sup.cells_suppressed_secondary)
    assert others == (0, 0, 0)
    assert (sup.cells_nonempty, sup.cells_published, sup.cells_suppressed) == (2, 1, 1)
    assert result.layers["taps"].to_list() == [30]


def test_without_the_p_percent_rule_the_dominated_cell_is_published():
    rule = DominanceRule(p=None)
    config = small_config(k=5, privacy=privacy(max_taps_per_user_cell=1000, dominance=rule))
    result = aggregate(dominated_and_balanced(), config, key=KEY)
    assert published_cell(result, 0, 0).select("users", "taps").row(0) == (6, 505)
    assert published_cell(result, 2, 2).height == 1
    assert result.stats.suppression.cells_suppressed == 0


def test_nk_rule_hides_a_cell_whose_two_largest_users_hold_most_taps():
    # (0, 0): 50 + 40 of 94 taps = 95.7% > 85%; (2, 2): 2 x 5 of 30 taps.
    top_heavy = {"t1": 50, "t2": 40, **{f"c{i}": 1 for i in range(4)}}
    frame = taps_frame(
        cell_rows(0.1, 0.1, top_heavy) + cell_rows(0.6, 0.6, {f"b{i}": 5 for i in range(6)})
    )
    rule = DominanceRule(p=None, n=2, k_percent=85)
    config = small_config(k=5, privacy=privacy(max_taps_per_user_cell=1000, dominance=rule))
    result = aggregate(frame, config, key=KEY)
    assert published_cell(result, 0, 0).height == 0
    assert published_cell(result, 2, 2).height == 1
    sup = result.stats.suppression
    by_rule = (sup.cells_suppressed_nk, sup.cells_suppressed_p_percent, sup.cells_suppressed_k)
    assert by_rule == (1, 0, 0)
    # The same cell passes when the cap brings the two heavy users down to 5 taps each.
    capped = small_config(k=5, privacy=privacy(max_taps_per_user_cell=5, dominance=rule))
    assert published_cell(aggregate(frame, capped, key=KEY), 0, 0).height == 1


# ------------------------------------------------------------ true totals


def random_taps(seed: int) -> pl.DataFrame:
    """Spread-out taps of 60 users on three screens, heavy bursts of single users, and
    a 'checkout' screen whose taps crowd into four cells, one of them nearly empty."""
    rng = np.random.default_rng(seed)
    n = 3000
    screens = rng.choice(["home", "cart", "search", "rare"], n, p=[0.5, 0.3, 0.18, 0.02])
    parts = [
        pl.DataFrame(
            {
                "screen": screens,
                "x": rng.beta(2, 3, n),
                "y": rng.beta(3, 2, n),
                "user_id": [f"u{u}" for u in rng.integers(0, 60, n)],
            }
        )
    ]
    for j in range(12):
        taps = int(rng.integers(100, 1000))
        parts.append(
            pl.DataFrame(
                {
                    "screen": [str(rng.choice(["home", "cart"]))] * taps,
                    "x": [float(rng.random())] * taps,
                    "y": [float(rng.random())] * taps,
                    "user_id": [f"heavy{j}"] * taps,
                }
            )
        )
    spots = rng.choice(4, 400, p=[0.4, 0.3, 0.295, 0.005])
    parts.append(
        pl.DataFrame(
            {
                "screen": ["checkout"] * 400,
                "x": (np.array([0.1, 0.4, 0.6, 0.9])[spots]),
                "y": np.full(400, 0.5),
                "user_id": [f"u{u}" for u in rng.integers(0, 40, 400)],
            }
        )
    )
    frame = pl.concat(parts)
    return frame.with_columns(ts=pl.lit(RECENT), consent=pl.lit(True))


def reference_cells(frame: pl.DataFrame, grid: GridSpec, cap: int) -> pl.DataFrame:
    """Per (screen, cx, cy): distinct users, capped taps and the set of users, in Polars."""
    return (
        frame.with_columns(
            cx=(pl.col("x") * grid.columns).floor().cast(pl.Int32).clip(0, grid.columns - 1),
            cy=(pl.col("y") * grid.rows).floor().cast(pl.Int32).clip(0, grid.rows - 1),
        )
        .group_by("screen", "cx", "cy", "user_id")
        .agg(taps=pl.len().clip(upper_bound=cap))
        .group_by("screen", "cx", "cy")
        .agg(users=pl.len(), taps=pl.col("taps").sum(), members=pl.col("user_id"))
    )


CASES = [  # the cap, the rules, and a rule that must hide cells in the example
    pytest.param(5, DominanceRule(), "cells_suppressed_k", id="cap5-p10"),
    pytest.param(1000, DominanceRule(p=10), "cells_suppressed_p_percent", id="cap1000-p10"),
    pytest.param(
        1000, DominanceRule(p=None, n=2, k_percent=85), "cells_suppressed_nk", id="cap1000-nk"
    ),
]


@pytest.mark.parametrize(("cap", "rule", "fires"), CASES)
@pytest.mark.parametrize("measure", ["users", "taps"])
def test_true_totals_are_exact_and_hidden_remainders_are_protected(cap, rule, fires, measure):
    grid, k = GridSpec(6, 6), 5
    frame = random_taps(7)
    policy = privacy(k=k, max_taps_per_user_cell=cap, dominance=rule, true_totals=True)
    result = aggregate(
        frame, small_config(k=k, grid=grid, privacy=policy, measure=measure), key=KEY
    )
    expected = reference_cells(frame, grid, cap)
    joined = expected.join(
        result.cells.select("screen", "cx", "cy", pub_users="users", pub_taps="taps"),
        on=["screen", "cx", "cy"],
        how="left",
    )
    published = joined.filter(pl.col("pub_taps").is_not_null())
    assert published["pub_taps"].to_list() == published["taps"].to_list()
    assert published["pub_users"].to_list() == published["users"].to_list()
    assert published["users"].min() >= k
    assert result.cells.height == published.height  # every published cell is a real one
    sup = result.stats.suppression
    assert sup.cells_suppressed == (
        sup.cells_suppressed_k
        + sup.cells_suppressed_p_percent
        + sup.cells_suppressed_nk
        + sup.cells_suppressed_secondary
    )
    assert getattr(sup, fires) > 0
    assert sup.cells_suppressed_secondary >= 1  # the checkout screen's lone hidden cell
    assert result.layers.height == 5
    for row in result.layers.iter_rows(named=True):
        layer = joined.filter(pl.col("screen") == row["screen"])
        assert row["taps"] == layer["taps"].sum()  # the true total of capped taps
        hidden = layer.filter(pl.col("pub_taps").is_null())
        remainder = row["taps"] - layer["pub_taps"].sum()
        assert remainder == hidden["taps"].sum()
        if remainder:
            together = {user for members in hidden["members"].to_list() for user in members}
            assert hidden.height >= 2, row["screen"]
            assert len(together) >= k, row["screen"]


def test_one_cell_below_k_makes_a_second_cell_hidden_with_true_totals():
    rows = (
        cell_rows(0.1, 0.1, {f"a{i}": 2 for i in range(3)})  # 3 users: below k
        + cell_rows(0.6, 0.1, {f"b{i}": 1 for i in range(6)})  # the smallest published cell
        + cell_rows(0.1, 0.6, {f"c{i}": 1 for i in range(7)})
        + cell_rows(0.6, 0.6, {f"d{i}": 1 for i in range(8)})
    )
    frame = taps_frame(rows)
    config = small_config(k=5, privacy=privacy(true_totals=True))
    result = aggregate(frame, config, key=KEY)
    sup = result.stats.suppression
    assert (sup.cells_suppressed_k, sup.cells_suppressed_secondary) == (1, 1)
    assert published_cell(result, 2, 0).height == 0  # the 6-user cell joined the hidden one
    assert sorted(result.cells["users"].to_list()) == [7, 8]
    assert result.layers["taps"].to_list() == [6 + 6 + 7 + 8]

    default = aggregate(frame, small_config(k=5), key=KEY)
    assert default.stats.suppression.cells_suppressed_secondary == 0
    assert sorted(default.cells["users"].to_list()) == [6, 7, 8]
    assert default.layers["taps"].to_list() == [6 + 7 + 8]


def test_without_true_totals_layer_taps_are_the_published_cells_sum():
    frame = random_taps(8)
    config = small_config(k=5, grid=GridSpec(6, 6), privacy=privacy(max_taps_per_user_cell=1000))
    result = aggregate(frame, config, key=KEY)
    assert result.stats.suppression.cells_suppressed > 0
    sums = result.cells.group_by("screen").agg(pl.col("taps").sum()).sort("screen")
    assert result.layers.sort("screen").select("screen", "taps").equals(sums)
    assert result.stats.published_taps == result.cells["taps"].sum()


# ------------------------------------------------------------ DP through aggregate


def dp_frame() -> pl.DataFrame:
    """home (public) with a few users, cart (not public) with 300; 'ghost' has no taps."""
    home = [{"user_id": f"h{i}", "x": (i % 4) / 4, "y": (i % 3) / 3} for i in range(30)]
    cart = [{"screen": "cart", "user_id": f"c{i}", "x": 0.3, "y": 0.7} for i in range(300)]
    return taps_frame(home + cart)


def dp_policy(**options) -> DPPolicy:
    defaults = {
        "epsilon": 1.0,
        "delta": 1e-6,
        "max_cells_per_user": 4,
        "max_taps_per_cell": 3,
        "public_screens": ("home", "ghost"),
    }
    return DPPolicy(**{**defaults, **options})


@pytest.fixture(scope="module")
def dp_result():
    policy = dp_policy()
    config = small_config(k=5, dp=policy, measure="taps", sigma=1.0)
    return aggregate(dp_frame(), config, key=KEY)


def test_dp_releases_every_cell_of_every_public_screen(dp_result):
    grid = dp_result.config.grid
    cells = dp_result.cells
    released = sorted(dp_result.layers["screen"].to_list())
    assert {"home", "ghost"} <= set(released)
    assert "cart" in released  # 300 users pass selection with overwhelming probability
    per_layer = cells.group_by("screen").agg(n=pl.len(), distinct=pl.struct("cx", "cy").n_unique())
    assert per_layer.sort("screen")["screen"].to_list() == released
    assert per_layer["n"].to_list() == [grid.cells] * len(released)
    assert per_layer["distinct"].to_list() == [grid.cells] * len(released)
    assert cells.height == grid.cells * dp_result.layers.height
    assert dp_result.layers["cells"].to_list() == [grid.cells] * len(released)


def test_dp_cells_carry_clamped_noisy_values_and_intervals(dp_result):
    cells = dp_result.cells
    assert {"noisy", "low", "high"} <= set(cells.columns)
    assert cells["taps"].to_list() == cells["noisy"].clip(lower_bound=0).to_list()
    assert cells["users"].null_count() == cells.height
    assert cells["taps"].null_count() == 0
    margin = int(dp_result.stats.dp["interval_95"])
    expected_high = (cells["noisy"] + margin).clip(lower_bound=0)
    assert cells["high"].to_list() == expected_high.to_list()
    assert cells["low"].min() >= 0
    assert dp_result.layers["users"].null_count() == dp_result.layers.height
    sums = cells.group_by("screen").agg(pl.col("taps").sum()).sort("screen")
    assert dp_result.layers.sort("screen").select("screen", "taps").equals(sums)
    assert (dp_result.grids >= 0).all()
    assert dp_result.grids.shape == (dp_result.layers.height, *dp_result.config.grid.shape)


def test_dp_interval_bounds_are_ordered():
    """BUG: ``low`` is clamped at 0 but ``high`` is not, so a cell whose noisy count is
    below ``-interval_95`` gets ``high < 0 <= low``: an empty interval for a count that
    cannot be negative. On a 64 x 64 empty public screen, about 2.5% of cells do."""
    policy = dp_policy(public_screens=("ghost",), select_screens=False)
    config = small_config(k=5, dp=policy, grid=GridSpec(64, 64))
    cells = aggregate(dp_frame(), config, key=KEY).cells
    assert cells.height == 64 * 64
    bad = cells.filter(pl.col("low") > pl.col("high"))
    assert bad.height == 0, bad.select("noisy", "low", "high").head(3).rows()


def test_dp_statistics_and_noise_scale(dp_result):
    policy = dp_result.config.dp
    dp = dp_result.stats.dp
    assert dp["epsilon_spent"] <= policy.epsilon + 1e-9
    assert 0 < dp["delta_spent"] <= policy.delta
    assert dp["noise"] == "laplace"
    l1 = policy.max_cells_per_user * policy.max_taps_per_cell
    assert dp["noise_scale"] == pytest.approx(
        l1 / (policy.epsilon * (1 - policy.selection_share)), rel=1e-12
    )
    assert dp["screens_selected"] == 1
    sup = dp_result.stats.suppression
    assert sup.cells_suppressed == 0


def test_dp_store_round_trip_keeps_the_statistics_but_not_the_private_count(dp_result, tmp_path):
    dp_result.write(tmp_path)
    assert "screens_considered" not in (tmp_path / "manifest.json").read_text()
    again = read(tmp_path)
    expected = {k: v for k, v in dp_result.stats.dp.items() if k != "screens_considered"}
    assert "screens_considered" in dp_result.stats.dp  # kept for the operator
    assert again.stats.dp == expected
    assert again.config.dp == dp_result.config.dp
    assert again.config == dp_result.config
    assert again.cells.equals(dp_result.cells)
    np.testing.assert_array_equal(again.grids, dp_result.grids)


# ------------------------------------------------------------ DP through the CLI


RAW_IDS = [f"raw-person-{i:03d}-qz" for i in range(60)]


@pytest.fixture
def dp_cli(tmp_path):
    """A parquet of raw ids dated yesterday (the budget is charged at today's clock)."""
    as_of = datetime.now(UTC).replace(microsecond=0)
    rows = [
        {
            "user_id": user,
            "screen": "home" if i % 3 else "cart",
            "x": (i % 7) / 7,
            "y": (i % 5) / 5,
            "ts": as_of - timedelta(days=1),
        }
        for i, user in enumerate(RAW_IDS)
    ]
    taps_frame(rows).write_parquet(tmp_path / "taps.parquet")
    (tmp_path / "key").write_text(KEY_TEXT + "\n")
    store = tmp_path / "store"
    args = [
        "aggregate", str(tmp_path / "taps.parquet"), "--out", str(store),
        "--key-file", str(tmp_path / "key"), "--as-of", as_of.isoformat(),
        "--grid", "4x4", "--privacy", "dp", "--public-screens", "home",
    ]  # fmt: skip
    return store, args


def test_dp_cli_writes_no_raw_ids_and_charges_the_budget(dp_cli, capsys):
    store, args = dp_cli
    assert main([*args, "--budget-epsilon", "5"]) == 0
    output = capsys.readouterr()
    files = files_of(store)
    assert {"cells.parquet", "grids.npz", "manifest.json", "audit.jsonl", "budget.jsonl"} <= set(
        files
    )
    for name, data in files.items():
        for user in RAW_IDS:
            assert user.encode() not in data, (name, user)
    assert not any(user in output.out + output.err for user in RAW_IDS)
    assert KEY_TEXT.encode() not in b"".join(files.values())
    ledger = (store / "budget.jsonl").read_text().splitlines()
    assert len(ledger) == 1
    assert json.loads(ledger[0])["epsilon"] == pytest.approx(1.0)
    manifest = json.loads(files["manifest.json"])
    assert manifest["config"]["dp"]["public_screens"] == ["home"]
    assert "screens_considered" not in manifest["stats"]["dp"]

    assert main([*args, "--budget-epsilon", "1.5", "--epsilon", "1"]) == 2
    error = capsys.readouterr().err
    assert "would overspend the privacy budget" in error
    assert "budget: epsilon 1.5" in error
    assert "requested: epsilon 1" in error
    assert "Traceback" not in error
    assert files_of(store) == files  # nothing of the refused run was written


def test_dp_cli_needs_a_budget(dp_cli, capsys):
    store, args = dp_cli
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "--privacy dp needs --budget-epsilon" in error
    assert not store.exists()


def test_rendering_a_dp_store_says_which_protection_applies(dp_result, tmp_path, capsys):
    dp_result.write(tmp_path / "store")
    assert main(["render", str(tmp_path / "store"), "--out", str(tmp_path / "png")]) == 0
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert len(pngs) == dp_result.layers.height
    index = (tmp_path / "png" / "index.html").read_text()
    subtitle = re.search(r'<p class="subtitle">(.*?)</p>', index, re.DOTALL)
    assert subtitle is not None
    # "DP ε = 1" at the commit; the glyph-free "DP epsilon 1" also says it.
    assert re.search(r"DP (ε =|epsilon) 1\b", subtitle.group(1)), subtitle.group(1)
    assert "suppressed" not in subtitle.group(1)
    capsys.readouterr()


# ------------------------------------------------------------ k-anonymity CLI options


@pytest.fixture
def k_cli(tmp_path):
    rows = cell_rows(0.1, 0.1, {f"u{i}": 2 for i in range(8)})
    taps_frame(rows).write_parquet(tmp_path / "taps.parquet")
    (tmp_path / "key").write_text(KEY_TEXT)
    args = [
        "aggregate", str(tmp_path / "taps.parquet"), "--key-file", str(tmp_path / "key"),
        "--as-of", AS_OF.isoformat(), "--grid", "4x4", "--k", "5",
    ]  # fmt: skip
    return tmp_path, args


def manifest_privacy(store: Path) -> dict:
    return json.loads((store / "manifest.json").read_text())["config"]["privacy"]


def test_cli_dominance_options_are_recorded(k_cli, capsys):
    root, args = k_cli
    assert main([*args, "--out", str(root / "default")]) == 0
    assert manifest_privacy(root / "default")["dominance"] == {
        "p": 10.0,
        "n": None,
        "k_percent": None,
    }
    assert main([*args, "--out", str(root / "off"), "--p-percent", "0"]) == 0
    assert manifest_privacy(root / "off")["dominance"]["p"] is None
    options = ["--nk-rule", "2,85", "--p-percent", "15", "--true-totals"]
    assert main([*args, "--out", str(root / "nk"), *options]) == 0
    recorded = manifest_privacy(root / "nk")
    assert recorded["dominance"] == {"p": 15.0, "n": 2, "k_percent": 85.0}
    assert recorded["true_totals"] is True
    assert read(root / "nk").config.privacy.dominance == DominanceRule(p=15, n=2, k_percent=85)
    capsys.readouterr()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2", "--nk-rule takes N,K, for example 2,85; got '2'"),
        ("2,85,1", "--nk-rule takes N,K"),
        ("two,85", "--nk-rule takes an integer N and a percentage K; got 'two,85'"),
        ("0,85", "n must be between 1 and 100, got 0"),
        ("2,0", "k_percent must be a percentage above 0 and at most 100, got 0.0"),
    ],
)
def test_bad_nk_rule_is_explained(k_cli, capsys, value, message):
    root, args = k_cli
    assert main([*args, "--out", str(root / "x"), "--nk-rule", value]) == 2
    error = capsys.readouterr().err
    assert error.startswith("heatengine: error: ")
    assert message in error
    assert not (root / "x").exists()


def test_bad_p_percent_is_explained(k_cli, capsys):
    root, args = k_cli
    assert main([*args, "--out", str(root / "x"), "--p-percent", "120"]) == 2
    assert "p must be a percentage from 0 to 100, got 120.0" in capsys.readouterr().err


# ------------------------------------------------------------ DP nightly

FIRST = date(2026, 11, 26)  # the 7-day tumbling window 2026-11-26 to 2026-12-02
NIGHTS = [FIRST + timedelta(days=i) for i in range(3)]
NIGHT_CONFIG = AggregateConfig(
    grid=GridSpec(4, 4),
    privacy=PrivacyPolicy(k=5, retention_days=10),
    sigma=0.0,
    dp=DPPolicy(
        epsilon=1.0,
        delta=1e-6,
        max_cells_per_user=2,
        max_taps_per_cell=1,
        public_screens=("home",),
    ),
)
NIGHT_BUDGET = BudgetPolicy(epsilon=2.5, delta=1e-4, horizon_days=10)


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def dp_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("dp_lake")
    for day in NIGHTS:
        folder = root / f"date={day.isoformat()}"
        folder.mkdir()
        rows = [
            {"user_id": f"n{i}", "x": (i % 4) / 4, "y": (i % 2) / 2, "ts": at_noon(day)}
            for i in range(40)
        ]
        taps_frame(rows).write_parquet(folder / "part-0.parquet")
    return root


def nightly(lake, store, day, now, **options):
    options = {"config": NIGHT_CONFIG, "budget": NIGHT_BUDGET, **options}
    return run_nightly(lake, store, day, key=KEY, now=now, **options)


def test_dp_nightly_charges_each_publication_until_the_budget_is_spent(dp_lake, tmp_path):
    # Backfilled after the window ended, so each release's data lie before its clock.
    store = tmp_path / "store"
    clock = at_noon(date(2026, 12, 3))
    one = nightly(dp_lake, store, NIGHTS[0], clock)
    two = nightly(dp_lake, store, NIGHTS[1], clock + timedelta(hours=1))
    assert one.window == two.window == (FIRST, date(2026, 12, 2))
    assert one.budget.epsilon_spent == pytest.approx(1.0)
    assert two.budget.epsilon_spent == pytest.approx(2.0)
    assert two.days_merged == tuple(NIGHTS[:2])
    window = two.window_dir
    before = files_of(window.resolve())
    ledger = (store / "budget.jsonl").read_text().splitlines()
    assert len(ledger) == 2
    audit = [json.loads(line) for line in (store / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["budget"]["ledger_hash"] == json.loads(ledger[-1])["hash"]
    assert audit[-1]["budget"]["ledger_hash"] == two.budget.ledger_hash
    assert audit[-1]["budget"]["epsilon_spent"] == pytest.approx(2.0)

    with pytest.raises(BudgetExceededError, match=r"budget: epsilon 2\.5"):
        nightly(dp_lake, store, NIGHTS[2], clock + timedelta(hours=2))
    assert (store / "budget.jsonl").read_text().splitlines() == ledger
    assert files_of(window.resolve()) == before  # night 2's window is still the one published
    again = read(window)
    assert again.cells.equals(two.heatmaps.cells)
    assert again.stats.dp["epsilon_spent"] == pytest.approx(1.0)
    assert verify_log(store / "audit.jsonl").ok
    assert len((store / "audit.jsonl").read_text().splitlines()) == len(audit)
    assert not (store / ".lock").exists()


def test_dp_nightly_publishes_a_window_before_its_last_day(dp_lake, tmp_path):
    """BUG: with the default 7-day window, every night before the window's last day is
    refused ("uses data up to 2026-12-02, after it was recorded"): the charge takes the
    window's last day, not the last day of data merged, as the end of its data."""
    store = tmp_path / "store"
    results = []
    for day in NIGHTS[:2]:
        results.append(nightly(dp_lake, store, day, at_noon(day + timedelta(days=1))))
    assert [r.budget.epsilon_spent for r in results] == pytest.approx([1.0, 2.0])


def test_dp_nightly_rerun_with_the_same_clock_is_charged_again(dp_lake, tmp_path):
    """BUG: the release id is built from the run's clock, so a rerun with the same
    ``now`` (``--now`` in the CLI) is taken for the same release and charged nothing,
    although it publishes fresh noise over the same data."""
    store = tmp_path / "store"
    clock = at_noon(date(2026, 12, 3))
    first = nightly(dp_lake, store, NIGHTS[0], clock)
    second = nightly(dp_lake, store, NIGHTS[0], clock)
    assert not first.heatmaps.cells["noisy"].equals(second.heatmaps.cells["noisy"])
    assert second.budget.epsilon_spent == pytest.approx(2.0)


def test_dp_nightly_needs_a_budget(dp_lake, tmp_path):
    with pytest.raises(HeatengineError, match="needs the store's budget"):
        nightly(dp_lake, tmp_path, NIGHTS[0], at_noon(date(2026, 12, 3)), budget=None)
    assert not (tmp_path / "partials").exists()


def test_dp_nightly_rolling_windows_overlap_and_each_is_charged(dp_lake, tmp_path):
    store = tmp_path / "store"
    budget = BudgetPolicy(epsilon=10.0, delta=1e-4, horizon_days=30)
    results = [
        nightly(dp_lake, store, day, at_noon(day + timedelta(days=1)), window=2,
                rolling=True, budget=budget)
        for day in NIGHTS
    ]  # fmt: skip
    assert [r.window for r in results] == [(day - timedelta(days=1), day) for day in NIGHTS]
    assert [r.days_merged for r in results] == [
        (NIGHTS[0],),
        (NIGHTS[0], NIGHTS[1]),
        (NIGHTS[1], NIGHTS[2]),
    ]
    assert [r.budget.epsilon_spent for r in results] == pytest.approx([1.0, 2.0, 3.0])
    published = sorted(p.name for p in (store / "windows").iterdir() if not p.name.startswith("."))
    assert len(published) == 3


def test_rolling_windows_need_dp(dp_lake, tmp_path):
    with pytest.raises(HeatengineError, match="rolling windows need differential privacy"):
        nightly(
            dp_lake, tmp_path / "store", NIGHTS[0], at_noon(NIGHTS[1]),
            config=small_config(k=5), rolling=True, budget=None,
        )  # fmt: skip
