"""Dominance rules and secondary suppression against slow, obviously correct twins."""

from __future__ import annotations

import json
from collections import defaultdict
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from heatengine.disclosure import (
    DisclosureStats,
    DominanceRule,
    dominance_unsafe,
    largest_contributions,
    nk_dominance_unsafe,
    p_percent_unsafe,
    secondary_suppression,
)

# ------------------------------------------------------------------ slow twins


def largest_reference(keys, taps, cap, n_keys, n):
    """The n largest min(taps, cap) per key, descending, padded with zeros."""
    out = np.zeros((n_keys, n), np.int64)
    for key in range(n_keys):
        values = sorted((min(int(t), cap) for t in taps[keys == key]), reverse=True)[:n]
        out[key, : len(values)] = values
    return out


def dominance_reference(keys, taps, cap, n_keys, rule):
    """Both rules per key with exact rational arithmetic."""
    p_unsafe = np.zeros(n_keys, bool)
    nk_unsafe = np.zeros(n_keys, bool)
    for key in range(n_keys):
        values = sorted((min(int(t), cap) for t in taps[keys == key]), reverse=True)
        total = sum(values)
        if total == 0:
            continue
        x1, x2 = ([*values, 0, 0])[:2]
        if rule.p is not None:
            p_unsafe[key] = total - x1 - x2 < Fraction(rule.p) / 100 * x1
        if rule.n is not None:
            nk_unsafe[key] = sum(values[: rule.n]) > Fraction(rule.k_percent) / 100 * total
    return p_unsafe, nk_unsafe


def members_of(keys, users):
    """Distinct users per key, as Python sets."""
    members = defaultdict(set)
    for key, user in zip(keys.tolist(), users.tolist(), strict=True):
        members[key].add(user)
    return members


def secondary_reference(keys, users, hidden, values, k):
    """The greedy rule spelled out with sets and sorting."""
    layers, cells = hidden.shape
    members = members_of(keys, users)
    added = np.zeros((layers, cells), bool)
    layer_hidden = np.zeros(layers, bool)
    for layer in range(layers):
        nonempty = [c for c in range(cells) if members[layer * cells + c]]
        chosen = [c for c in nonempty if hidden[layer, c]]
        if not chosen:
            continue
        while (
            len(chosen) < 2 or len(set().union(*(members[layer * cells + c] for c in chosen))) < k
        ):
            candidates = [c for c in nonempty if c not in chosen]
            if not candidates:
                layer_hidden[layer] = True
                break
            best = min(candidates, key=lambda c: (values[layer, c], c))
            chosen.append(best)
            added[layer, best] = True
    return added, layer_hidden


# ------------------------------------------------------------------ strategies

TOKENS = [0, 1, 2, 3, 5, 7, 11, 13, 2**32, 2**63, 2**64 - 1]


@st.composite
def contribution_lists(draw, max_layers=3, max_cells=6, max_entries=60):
    """(layers, cells, keys, users, taps): a valid list, sorted by (key, user)."""
    layers = draw(st.integers(1, max_layers))
    cells = draw(st.integers(1, max_cells))
    pairs = draw(
        st.dictionaries(
            st.tuples(st.integers(0, layers * cells - 1), st.sampled_from(TOKENS)),
            st.integers(1, 60),
            max_size=max_entries,
        )
    )
    ordered = sorted(pairs.items())
    keys = np.array([key for (key, _), _ in ordered], np.int64)
    users = np.array([user for (_, user), _ in ordered], np.uint64)
    taps = np.array([t for _, t in ordered], np.int64)
    return layers, cells, keys, users, taps


def contribution_list(cells_users_taps):
    """Build a list from ``{key: [taps of user 0, taps of user 1, ...]}``."""
    keys, users, taps = [], [], []
    for key in sorted(cells_users_taps):
        for user, t in enumerate(cells_users_taps[key]):
            keys.append(key)
            users.append(user)
            taps.append(t)
    return np.array(keys, np.int64), np.array(users, np.uint64), np.array(taps, np.int64)


rules = st.builds(
    DominanceRule,
    p=st.none() | st.sampled_from([0, 5, 10, 12.5, 10.1, 50, 100]),
    n=st.none(),
    k_percent=st.none(),
) | st.builds(
    DominanceRule,
    p=st.none() | st.sampled_from([10, 33.3]),
    n=st.integers(1, 4),
    k_percent=st.sampled_from([1, 50, 75, 85, 99.5, 100]),
)

# ------------------------------------------------------------------ the kernel


@given(contribution_lists(), st.integers(1, 20), st.integers(0, 4))
@example((1, 3, np.empty(0, np.int64), np.empty(0, np.uint64), np.empty(0, np.int64)), 5, 2)
@example((1, 2, np.array([1]), np.array([7], np.uint64), np.array([9])), 5, 2)
def test_largest_contributions_match_reference(case, cap, n):
    layers, cells, keys, _, taps = case
    n_keys = layers * cells
    expected = largest_reference(keys, taps, cap, n_keys, n)
    out = np.zeros((n_keys, n), np.int64)
    largest_contributions(keys, taps, cap, out)
    np.testing.assert_array_equal(out, expected)
    # The kernel does not need sorted input.
    order = np.random.default_rng(keys.size).permutation(keys.size)
    shuffled = np.zeros((n_keys, n), np.int64)
    largest_contributions(keys[order], taps[order], cap, shuffled)
    np.testing.assert_array_equal(shuffled, expected)


def test_largest_contributions_single_user_cell_and_ties():
    keys = np.array([0, 2, 2, 2, 2])
    taps = np.array([9, 4, 7, 4, 30])
    out = np.zeros((3, 3), np.int64)
    largest_contributions(keys, taps, 8, out)
    assert out.tolist() == [[8, 0, 0], [0, 0, 0], [8, 7, 4]]


# ------------------------------------------------------------------ the p% rule


def test_p_percent_one_dominant_user_is_unsafe_and_balanced_cell_is_safe():
    dominated = {0: [400] + [1] * 11}
    balanced = {1: [5] * 12}
    keys, _, taps = contribution_list(dominated | balanced)
    p_bad, nk_bad = dominance_unsafe(keys, taps, 1000, 2, DominanceRule(p=10))
    assert p_bad.tolist() == [True, False]
    assert nk_bad.tolist() == [False, False]
    # With the usual small cap the dominant user's 400 taps count as 5: no longer unsafe.
    p_bad, _ = dominance_unsafe(keys, taps, 5, 2, DominanceRule(p=10))
    assert p_bad.tolist() == [False, False]


def test_p_percent_boundary_equality_is_safe():
    # T - x1 - x2 = 10 = 10% of x1 = 100: safe; one tap less in the rest: unsafe.
    total = np.array([115, 114])
    x1 = np.array([100, 100])
    x2 = np.array([5, 5])
    assert p_percent_unsafe(total, x1, x2, 10).tolist() == [False, True]
    assert p_percent_unsafe(total, x1, x2, 10.0).tolist() == [False, True]
    # A binary fraction p is exact too: 12.5% of 8 is exactly 1.
    assert p_percent_unsafe(
        np.array([10, 9]), np.array([8, 8]), np.array([1, 1]), 12.5
    ).tolist() == [
        False,
        True,
    ]


def test_p_percent_few_users_empty_cells_and_p_zero():
    total = np.array([7, 10, 0, 30])
    x1 = np.array([7, 6, 0, 10])
    x2 = np.array([0, 4, 0, 10])
    # One user or two users: the rest is 0, unsafe for any p > 0; empty: never.
    assert p_percent_unsafe(total, x1, x2, 10).tolist() == [True, True, False, False]
    assert p_percent_unsafe(total, x1, x2, 0).tolist() == [False, False, False, False]


def test_p_percent_integral_p_is_exact_beyond_float_precision():
    # rest = 2**53 and x1 = 2**53 + 1: unsafe at p = 100, but float64 rounds x1 to rest.
    x1 = np.array([2**53 + 1])
    total = np.array([2**54 + 1])
    assert p_percent_unsafe(total, x1, np.array([0]), 100).tolist() == [True]


def test_p_percent_works_on_grids():
    total = np.array([[411, 60], [0, 2]])
    x1 = np.array([[400, 5], [0, 1]])
    x2 = np.array([[1, 5], [0, 1]])
    assert p_percent_unsafe(total, x1, x2, 10).tolist() == [[True, False], [False, True]]


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        (([1], [1], [0], 101), ValueError, r"p must be a percentage from 0 to 100, got 101"),
        (([1], [1], [0], -0.5), ValueError, r"p must be a percentage from 0 to 100, got -0.5"),
        (([1], [1], [0], "10"), TypeError, r"p must be a number of percent, got '10'"),
        (([1.0], [1], [0], 10), TypeError, r"total must hold integers, got dtype float64"),
        (([1, 2], [1], [0], 10), ValueError, r"same shape, got total \(2,\), x1 \(1,\), x2"),
    ],
)
def test_p_percent_errors(arguments, error, match):
    total, x1, x2, p = arguments
    with pytest.raises(error, match=match):
        p_percent_unsafe(np.array(total), np.array(x1), np.array(x2), p)


# ------------------------------------------------------------------ the (n, k) rule


def test_nk_rule_examples():
    total = np.array([100, 100, 100, 100, 0])
    top = np.array([60, 50, 90, 85, 0])
    assert nk_dominance_unsafe(total, top, 50).tolist() == [True, False, True, True, False]
    assert nk_dominance_unsafe(total, top, 85).tolist() == [False, False, True, False, False]
    assert nk_dominance_unsafe(total, top, 100).tolist() == [False] * 5


def test_nk_rule_on_a_contribution_list():
    # Cell 0: two users make 90 of 100 taps; cell 1: two make 20 of 100; cell 2: two users.
    keys, _, taps = contribution_list({0: [60, 30, 5, 5], 1: [10, 10] + [5] * 16, 2: [3, 1]})
    rule = DominanceRule(p=None, n=2, k_percent=85)
    p_bad, nk_bad = dominance_unsafe(keys, taps, 1000, 4, rule)
    assert nk_bad.tolist() == [True, False, True, False]
    assert p_bad.tolist() == [False] * 4


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        (
            ([1], [1], 0),
            ValueError,
            r"k_percent must be a percentage above 0 and at most 100, got 0",
        ),
        (([1], [1], 100.5), ValueError, r"k_percent must be a percentage above 0 and at most 100"),
        (([1], [1], None), TypeError, r"k_percent must be a number of percent, got None"),
        (([1], [1, 1], 50), ValueError, r"same shape, got total \(1,\), top_n \(2,\)"),
    ],
)
def test_nk_rule_errors(arguments, error, match):
    total, top, k_percent = arguments
    with pytest.raises(error, match=match):
        nk_dominance_unsafe(np.array(total), np.array(top), k_percent)


# ------------------------------------------------------------------ DominanceRule


@given(contribution_lists(), st.integers(1, 20), rules)
def test_dominance_unsafe_matches_reference(case, cap, rule):
    layers, cells, keys, _, taps = case
    n_keys = layers * cells
    got = dominance_unsafe(keys, taps, cap, n_keys, rule)
    expected = dominance_reference(keys, taps, cap, n_keys, rule)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
    if rule.p is None:
        assert not got[0].any()
    if rule.n is None:
        assert not got[1].any()


def test_dominance_rule_defaults_and_round_trip():
    rule = DominanceRule()
    assert (rule.p, rule.n, rule.k_percent) == (10.0, None, None)
    assert (rule.p_enabled, rule.nk_enabled, rule.largest_needed) == (True, False, 2)
    both = DominanceRule(p=15, n=3, k_percent=80)
    assert both.largest_needed == 3
    assert DominanceRule(p=None).largest_needed == 0
    for r in (rule, both, DominanceRule(p=None), DominanceRule(p=None, n=1, k_percent=60.5)):
        assert DominanceRule.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert DominanceRule(p=10) == DominanceRule(p=10.0)
    assert isinstance(DominanceRule(p=10).p, float)


def test_disabled_rules_flag_nothing():
    keys, _, taps = contribution_list({0: [400, 1], 1: [3]})
    p_bad, nk_bad = dominance_unsafe(keys, taps, 1000, 2, DominanceRule(p=None))
    assert not p_bad.any()
    assert not nk_bad.any()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"p": -1}, ValueError, r"p must be a percentage from 0 to 100, got -1"),
        ({"p": 100.01}, ValueError, r"p must be a percentage from 0 to 100, got 100.01"),
        ({"p": float("nan")}, ValueError, r"p must be a percentage from 0 to 100, got nan"),
        ({"p": "10"}, TypeError, r"p must be a number of percent, got '10'"),
        ({"p": True}, TypeError, r"p must be a number of percent, got True"),
        (
            {"n": 2},
            ValueError,
            r"the \(n, k\) rule needs both n and k_percent or neither, got n=2 and k_percent=None",
        ),
        ({"k_percent": 80}, ValueError, r"got n=None and k_percent=80"),
        ({"n": 0, "k_percent": 80}, ValueError, r"n must be between 1 and 100, got 0"),
        ({"n": 101, "k_percent": 80}, ValueError, r"n must be between 1 and 100, got 101"),
        ({"n": 2.0, "k_percent": 80}, TypeError, r"n must be an integer, got 2.0"),
        (
            {"n": 2, "k_percent": 0},
            ValueError,
            r"k_percent must be a percentage above 0 and at most 100, got 0",
        ),
        ({"n": 2, "k_percent": 120}, ValueError, r"k_percent must be .* got 120"),
    ],
)
def test_dominance_rule_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        DominanceRule(**kwargs)


def test_dominance_rule_from_dict_needs_every_key():
    with pytest.raises(
        ValueError, match=r"exactly the keys \['k_percent', 'n', 'p'\], got \['p'\]"
    ):
        DominanceRule.from_dict({"p": 10.0})


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        (([1, 0], [1, 1], 5, 2), ValueError, r"keys must be sorted and lie in \[0, 2\)"),
        (
            ([0, 2], [1, 1], 5, 2),
            ValueError,
            r"keys must be sorted and lie in \[0, 2\); got 2 keys",
        ),
        (([0, 1], [1], 5, 2), ValueError, r"keys and taps must have the same length, got 2 and 1"),
        (([0, 1], [1.0, 1.0], 5, 2), TypeError, r"taps must hold integers, got dtype float64"),
        (([0, 1], [1, 1], 0, 2), ValueError, r"cap must be at least 1, got 0"),
        (([0, 1], [1, 1], 5, -1), ValueError, r"n_keys must be at least 0, got -1"),
    ],
)
def test_dominance_unsafe_errors(arguments, error, match):
    keys, taps, cap, n_keys = arguments
    with pytest.raises(error, match=match):
        dominance_unsafe(np.array(keys), np.array(taps), cap, n_keys, DominanceRule())


def test_dominance_unsafe_needs_a_rule():
    with pytest.raises(TypeError, match="rule must be a DominanceRule, got dict"):
        dominance_unsafe(np.array([0]), np.array([1]), 5, 1, {"p": 10})


# ------------------------------------------------------------------ secondary suppression


def assert_layer_totals_are_safe(keys, users, hidden, values, k, added, layer_hidden):
    """The property: a true layer total never isolates fewer than 2 cells or k users."""
    layers, cells = hidden.shape
    members = members_of(keys, users)
    nonempty = np.zeros(layers * cells, bool)
    nonempty[keys] = True
    nonempty = nonempty.reshape(layers, cells)
    assert not (added & ~nonempty).any(), "only non-empty cells are added"
    assert not (added & hidden).any(), "added cells are new"
    suppressed = nonempty & (hidden | added)
    for layer in range(layers):
        if not (hidden[layer] & nonempty[layer]).any():
            assert not added[layer].any()
            assert not layer_hidden[layer]
            continue
        if layer_hidden[layer]:
            np.testing.assert_array_equal(suppressed[layer], nonempty[layer])
            continue
        total = values[layer][nonempty[layer]].sum()
        published = values[layer][nonempty[layer] & ~suppressed[layer]].sum()
        remainder = total - published
        hidden_cells = np.flatnonzero(suppressed[layer])
        union = set().union(*(members[layer * cells + c] for c in hidden_cells))
        assert remainder == 0 or (hidden_cells.size >= 2 and len(union) >= k)


@st.composite
def secondary_cases(draw, hide=True):
    layers, cells, keys, users, _ = draw(contribution_lists(max_layers=4, max_cells=8))
    shape = (layers, cells)
    hidden = draw(hnp.arrays(np.bool_, shape)) if hide else np.zeros(shape, bool)
    values = draw(hnp.arrays(np.int64, shape, elements=st.integers(1, 4)))
    k = draw(st.integers(1, 8))
    return keys, users, hidden, values, k


@given(secondary_cases())
def test_secondary_suppression_protects_layer_totals_and_matches_reference(case):
    keys, users, hidden, values, k = case
    added, layer_hidden = secondary_suppression(keys, users, hidden, values, k)
    assert_layer_totals_are_safe(keys, users, hidden, values, k, added, layer_hidden)
    expected_added, expected_layers = secondary_reference(keys, users, hidden, values, k)
    np.testing.assert_array_equal(added, expected_added)
    np.testing.assert_array_equal(layer_hidden, expected_layers)


@given(secondary_cases(hide=False))
def test_secondary_suppression_adds_nothing_when_nothing_is_hidden(case):
    keys, users, hidden, values, k = case
    added, layer_hidden = secondary_suppression(keys, users, hidden, values, k)
    assert not added.any()
    assert not layer_hidden.any()


def test_a_single_hidden_cell_forces_the_smallest_published_cell():
    # Cells hold 3, 12, 10, 10 and 11 users; cell 0 is hidden. Cells 2 and 3 tie on value:
    # the lower index joins.
    sizes = [3, 12, 10, 10, 11]
    keys, users, _ = contribution_list({c: [1] * n for c, n in enumerate(sizes)})
    hidden = np.array([[True, False, False, False, False]])
    values = np.array([sizes])
    added, layer_hidden = secondary_suppression(keys, users, hidden, values, k=5)
    assert added.astype(int).tolist() == [[0, 0, 1, 0, 0]]
    assert layer_hidden.tolist() == [False]
    assert values[0][hidden[0] | added[0]].sum() == 13  # the remainder spans two cells


def test_one_hidden_cell_needs_a_partner_even_with_k_users():
    # Cell 1 has 12 users but is hidden by a dominance rule: alone, the layer total would
    # still give its exact value away.
    keys, users, _ = contribution_list({0: [1] * 7, 1: [400] + [1] * 11, 2: [1] * 6})
    hidden = np.array([[False, True, False]])
    values = np.array([[7, 411, 6]])
    added, layer_hidden = secondary_suppression(keys, users, hidden, values, k=5)
    assert added.tolist() == [[False, False, True]]
    assert layer_hidden.tolist() == [False]


def test_secondary_counts_distinct_users_of_the_union_not_the_sum():
    # Two hidden cells, both with users 0, 1, 2: per-cell counts sum to 6 >= 5, but the
    # union is 3 users, so a third cell must join.
    keys, users, _ = contribution_list({0: [1, 1, 1], 1: [1, 1, 1], 2: [1] * 9, 3: [1] * 8})
    hidden = np.array([[True, True, False, False]])
    values = np.array([[3, 3, 9, 8]])
    added, layer_hidden = secondary_suppression(keys, users, hidden, values, k=5)
    assert added.tolist() == [[False, False, False, True]]
    assert layer_hidden.tolist() == [False]


def test_a_layer_that_runs_out_of_cells_is_hidden_whole():
    # Layer 0: two cells with the same two users, k = 5: no hiding can reach 5 users.
    # Layer 1: untouched. Layer 2: one hidden cell; its partner comes from its own layer.
    keys, users, _ = contribution_list(
        {0: [1, 1], 1: [4, 2], 3: [1] * 6, 4: [1] * 7, 6: [1] * 2, 7: [1] * 9, 8: [1] * 6}
    )
    hidden = np.array([[True, False, False], [False, False, False], [True, False, False]])
    values = np.array([[2, 2, 0], [6, 7, 0], [2, 9, 6]])
    added, layer_hidden = secondary_suppression(keys, users, hidden, values, k=5)
    assert added.astype(int).tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert layer_hidden.tolist() == [True, False, False]


def test_hidden_empty_cells_hide_nothing_and_empty_lists_work():
    keys, users, _ = contribution_list({0: [1] * 6})
    hidden = np.array([[False, True]])
    added, layer_hidden = secondary_suppression(keys, users, hidden, np.array([[6, 0]]), k=5)
    assert not added.any()
    assert not layer_hidden.any()
    empty_keys, empty_users = np.empty(0, np.int64), np.empty(0, np.uint64)
    added, layer_hidden = secondary_suppression(
        empty_keys, empty_users, np.ones((2, 3), bool), np.zeros((2, 3), np.int64), k=5
    )
    assert not added.any()
    assert not layer_hidden.any()


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"hidden": np.array([[1, 0]])}, ValueError, r"hidden must be a boolean \(layers, cells\)"),
        ({"hidden": np.array([True, False])}, ValueError, r"got dtype bool and shape \(2,\)"),
        ({"values": np.array([[1, 2, 3]])}, ValueError, r"same shape, got hidden \(1, 2\), values"),
        ({"values": np.array([[1.0, np.nan]])}, ValueError, r"values must be finite"),
        ({"values": np.array([["a", "b"]])}, TypeError, r"values must be integers or floats"),
        ({"users": np.array([0, 1])}, ValueError, r"users must be a uint64 array as long as keys"),
        ({"keys": np.array([1, 0])}, ValueError, r"keys must be sorted and lie in \[0, 2\)"),
        ({"k": 0}, ValueError, r"k must be at least 1, got 0"),
    ],
)
def test_secondary_suppression_errors(change, error, match):
    arguments = {
        "keys": np.array([0, 1]),
        "users": np.array([0, 1], np.uint64),
        "hidden": np.array([[True, False]]),
        "values": np.array([[1, 1]]),
        "k": 2,
    } | change
    with pytest.raises(error, match=match):
        secondary_suppression(**arguments)


# ------------------------------------------------------------------ statistics


def test_stats_follow_the_precedence_k_then_p_then_nk_then_secondary():
    nonempty = np.array([True, True, True, True, True, True, False])
    below_k = np.array([True, False, False, False, False, False, True])
    p_bad = np.array([True, True, False, False, False, False, True])
    nk_bad = np.array([True, True, True, False, False, False, True])
    added = np.array([False, False, False, True, True, False, True])
    stats = DisclosureStats.from_masks(nonempty, below_k, p_bad, nk_bad, added)
    assert stats.to_dict() == {
        "cells_suppressed_k": 1,
        "cells_suppressed_p_percent": 1,
        "cells_suppressed_nk": 1,
        "cells_suppressed_secondary": 2,
    }
    grid = DisclosureStats.from_masks(
        *(m.reshape(1, 7) for m in (nonempty, below_k, p_bad)), nk_bad, added
    )
    assert grid == stats


def test_stats_errors():
    mask = np.zeros(3, bool)
    with pytest.raises(TypeError, match="below_k must be a boolean mask, got dtype int64"):
        DisclosureStats.from_masks(mask, np.zeros(3, np.int64), mask, mask, mask)
    with pytest.raises(ValueError, match=r"same shape, got nonempty \(3,\), below_k \(4,\)"):
        DisclosureStats.from_masks(mask, np.zeros(4, bool), mask, mask, mask)


# ------------------------------------------------------------------ all together


@given(contribution_lists(max_layers=3, max_cells=8), st.integers(1, 10), rules, st.integers(1, 6))
def test_published_cells_pass_every_rule_and_layer_totals_stay_safe(case, cap, rule, k):
    layers, cells, keys, users, taps = case
    shape = (layers, cells)
    cell_users = np.bincount(keys, minlength=layers * cells).reshape(shape)
    cell_taps = np.bincount(keys, np.minimum(taps, cap), minlength=layers * cells)
    cell_taps = cell_taps.astype(np.int64).reshape(shape)
    nonempty = cell_users > 0
    p_bad, nk_bad = (
        m.reshape(shape) for m in dominance_unsafe(keys, taps, cap, layers * cells, rule)
    )
    below_k = nonempty & (cell_users < k)
    primary = below_k | (nonempty & (p_bad | nk_bad))
    added, layer_hidden = secondary_suppression(keys, users, primary, cell_taps, k)
    assert_layer_totals_are_safe(keys, users, primary, cell_taps, k, added, layer_hidden)
    published = nonempty & ~primary & ~added
    assert (cell_users[published] >= k).all()
    assert not (p_bad | nk_bad)[published].any()
    stats = DisclosureStats.from_masks(nonempty, below_k, p_bad, nk_bad, added)
    assert sum(stats.to_dict().values()) == int((nonempty & ~published).sum())
