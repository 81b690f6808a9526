"""The rules of budgets, levels and selectors (core, no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbudget.core.decide import level_of
from llmbudget.core.policy import (
    MAX_LIMIT,
    Action,
    Budget,
    Level,
    Mode,
    Policy,
    Selector,
)
from llmbudget.core.windows import Window


def sel(**patterns: str | tuple[str, ...]) -> Selector:
    return Selector({k: (v,) if isinstance(v, str) else v for k, v in patterns.items()})


# -- Action -----------------------------------------------------------------------------------


def test_action_severity_order():
    order = ["continue", "warn", "alert", "flag", "approve", "block"]
    assert [a.value for a in sorted(Action, key=lambda a: a.severity)] == order
    assert [Action(a).severity for a in order] == list(range(6))
    assert {a for a in Action if a.refuses} == {Action.APPROVE, Action.BLOCK}


# -- Level thresholds -------------------------------------------------------------------------


def test_absolute_and_percent_levels():
    assert Level(10_000, Action.WARN).threshold(100_000) == 10_000
    assert Level(80, Action.ALERT, percent=True).threshold(100_000) == 80_000
    assert Level(110, Action.APPROVE, percent=True).threshold(1_000) == 1_100
    assert Level(33, Action.WARN, percent=True).threshold(10) == 3  # rounded down


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(1, MAX_LIMIT), tenths=st.integers(0, 3000))
def test_percent_threshold_is_exact(limit: int, tenths: int):
    """Regression: thresholds were computed in floats (69.6 % of 1,875 gave 1,304)."""
    assert Level(tenths / 10, Action.WARN, percent=True).threshold(limit) == limit * tenths // 1000


def test_percent_threshold_regressions():
    assert Level(69.6, Action.WARN, percent=True).threshold(1_875) == 1_305
    assert Level(233, Action.WARN, percent=True).threshold(846_037_938_004_421) == (
        846_037_938_004_421 * 233 // 100
    )


# -- Budget validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "levels",
    [
        (Level(50, Action.WARN), Level(50, Action.FLAG)),  # equal
        (Level(50, Action.FLAG), Level(10, Action.WARN)),  # decreasing
        (Level(60, Action.WARN, percent=True), Level(500, Action.FLAG)),  # 600 then 500
    ],
)
def test_levels_must_strictly_increase(levels: tuple[Level, ...]):
    with pytest.raises(ValueError, match=r"levels\[1\]\.at .* must be above the previous"):
        Budget("b", 1_000, levels=levels)


def test_percent_and_absolute_levels_mix_by_threshold():
    b = Budget("b", 1_000, levels=(Level(50, Action.WARN, percent=True), Level(600, Action.FLAG)))
    assert [lv.threshold(b.limit) for lv in b.levels] == [500, 600, 1_000]


def test_negative_level_rejected():
    with pytest.raises(ValueError, match=r"levels\[0\]\.at must not be negative"):
        Budget("b", 1_000, levels=(Level(-1, Action.WARN),))


@pytest.mark.parametrize("limit", [0, -5, MAX_LIMIT + 1, 1.5, True, "100"])
def test_limit_must_be_a_positive_whole_number(limit: object):
    with pytest.raises(ValueError, match="limit"):
        Budget("b", limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", "semi;colon", "é"])
def test_budget_name_rules(name: str):
    with pytest.raises(ValueError, match="budget name"):
        Budget(name, 10)


def test_per_must_name_labels():
    with pytest.raises(ValueError, match="per: 'Run' is not a label name"):
        Budget("b", 10, per=("Run",))


# -- the implicit block, cap ------------------------------------------------------------------


def test_implicit_block_at_the_limit_when_nothing_refuses():
    b = Budget("b", 1_000, levels=(Level(50, Action.WARN, percent=True),))
    assert [(lv.action, lv.threshold(1_000)) for lv in b.levels] == [
        (Action.WARN, 500),
        (Action.BLOCK, 1_000),
    ]
    assert b.levels[-1].name == "limit"
    assert b.cap == 1_000


def test_implicit_block_without_levels():
    b = Budget("b", 42)
    assert [(lv.action, lv.threshold(42)) for lv in b.levels] == [(Action.BLOCK, 42)]
    assert b.cap == 42


def test_implicit_block_keeps_levels_sorted_when_some_are_above_the_limit():
    b = Budget("b", 1_000, levels=(Level(90, Action.WARN, True), Level(120, Action.ALERT, True)))
    assert [(lv.action, lv.threshold(1_000)) for lv in b.levels] == [
        (Action.WARN, 900),
        (Action.BLOCK, 1_000),
        (Action.ALERT, 1_200),
    ]


def test_level_exactly_at_the_limit_comes_before_the_implicit_block():
    """Regression: the block was inserted first, so past the limit level_of reported warn."""
    b = Budget("b", 100, levels=(Level(100, Action.WARN, percent=True),))
    assert [lv.action for lv in b.levels] == [Action.WARN, Action.BLOCK]
    assert level_of(b, 101, 0)[1] == b.levels[-1]
    assert level_of(b, 101, 0)[1].action is Action.BLOCK  # type: ignore[union-attr]


@pytest.mark.parametrize("action", [Action.APPROVE, Action.BLOCK])
def test_no_implicit_block_when_a_level_refuses_even_above_100_percent(action: Action):
    """'warn at 90 %, pause at 110 %' (the strategy seed): the 110 % level is the cap."""
    levels = (Level(90, Action.WARN, percent=True), Level(110, action, percent=True))
    b = Budget("b", 1_000, levels=levels)
    assert b.levels == levels
    assert b.cap == 1_100


def test_cap_is_the_lowest_refusing_threshold():
    b = Budget(
        "b", 1_000, levels=(Level(800, Action.APPROVE), Level(100, Action.BLOCK, percent=True))
    )
    assert b.cap == 800


# -- level_of and grants ----------------------------------------------------------------------


SEED_RUN = Budget(
    "run",
    100_000,
    per=("run",),
    levels=(
        Level(10_000, Action.WARN),
        Level(50_000, Action.FLAG),
        Level(100_000, Action.APPROVE),
    ),
)


@pytest.mark.parametrize(
    ("projected", "index", "action"),
    [
        (0, 0, None),
        (10_000, 0, None),  # a level fires when its threshold is *passed*
        (10_001, 1, Action.WARN),
        (50_000, 1, Action.WARN),
        (50_001, 2, Action.FLAG),
        (100_000, 2, Action.FLAG),
        (100_001, 3, Action.APPROVE),
    ],
)
def test_level_of(projected: int, index: int, action: Action | None):
    idx, lv = level_of(SEED_RUN, projected, 0)
    assert idx == index
    assert (lv.action if lv else None) == action


def test_grants_raise_refusing_levels_only():
    # a person approved 20k more: approve now fires past 120k; warn/flag are unchanged
    assert level_of(SEED_RUN, 100_001, 20_000)[1].action is Action.FLAG  # type: ignore[union-attr]
    assert level_of(SEED_RUN, 120_000, 20_000)[1].action is Action.FLAG  # type: ignore[union-attr]
    assert level_of(SEED_RUN, 120_001, 20_000)[1].action is Action.APPROVE  # type: ignore[union-attr]
    assert level_of(SEED_RUN, 10_001, 20_000)[1].action is Action.WARN  # type: ignore[union-attr]


# -- selectors, partitions --------------------------------------------------------------------


def test_match_globs():
    b = Budget("b", 10, match=sel(model=("gpt-4o", "gpt-4o-20*"), provider="openai"))
    assert b.applies_to({"model": "gpt-4o", "provider": "openai"})
    assert b.applies_to({"model": "gpt-4o-2024-08-06", "provider": "openai"})
    assert not b.applies_to({"model": "gpt-4o-mini", "provider": "openai"})
    assert not b.applies_to({"model": "gpt-4o"})  # a key of the selector is missing
    assert not b.applies_to({"model": "GPT-4O", "provider": "openai"})  # case-sensitive


def test_exclude_any_key_excludes():
    b = Budget("b", 10, match=sel(provider="groq"), exclude=sel(model="llama-3.*", agent="ci"))
    assert b.applies_to({"provider": "groq", "model": "mixtral-8x7b"})
    assert not b.applies_to({"provider": "groq", "model": "llama-3.1-8b-instant"})
    assert not b.applies_to({"provider": "groq", "model": "mixtral-8x7b", "agent": "ci"})


def test_empty_selectors():
    b = Budget("b", 10)
    assert b.applies_to({})
    assert b.applies_to({"model": "anything"})
    assert not Selector().matches_any({"model": "x"})


def test_per_partitions_with_missing_labels_as_dash():
    b = Budget("b", 10, per=("run", "agent"))
    assert b.partition({"run": "r1", "agent": "writer", "model": "m"}) == ("r1", "writer")
    assert b.partition({"run": "r1"}) == ("r1", "-")
    assert b.partition({}) == ("-", "-")
    assert Budget("c", 10).partition({"run": "r1"}) == ()


# -- Policy -----------------------------------------------------------------------------------


def test_policy_rules():
    a = Budget("a", 10, match=sel(model="x"), mode=Mode.WARN)
    b = Budget("b", 10, window=Window.DAY)
    p = Policy(budgets=(a, b), mode=Mode.BLOCK)
    assert p.matching({"model": "x"}) == [a, b]
    assert p.matching({"model": "y"}) == [b]
    assert (p.mode_of(a), p.mode_of(b)) == (Mode.WARN, Mode.BLOCK)
    assert p.budget("b") is b
    with pytest.raises(KeyError):
        p.budget("nope")
    with pytest.raises(ValueError, match=r"budgets\[1\]\.name: duplicate budget name 'a'"):
        Policy(budgets=(a, a))
    with pytest.raises(ValueError, match="lease_seconds"):
        Policy(lease_seconds=0)
