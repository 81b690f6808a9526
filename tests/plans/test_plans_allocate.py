"""The seed's 200K session split, per-project shares, and the budgets a policy takes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmbudget import Governor
from llmbudget.plans import PlanError, allocate, allocation_policy, load_plan, parse_plan, split
from llmbudget.policy import policy_from_mapping

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plan.yaml"


def one_project() -> str:
    return """
projects:
  M-006:
    complexity: medium
    phases:
      strategy: [business_strategist, architect]
      development: [dev_lead]
      qa: [qa_engineer]
      deployment: [devops]
"""


def test_200k_session_is_split_as_the_seed_says() -> None:
    alloc = allocate(parse_plan(one_project()), 200_000)
    assert alloc.orchestrator == 10_000
    assert [(p.phase, p.tokens) for p in alloc.phases] == [
        ("strategy", 30_000),
        ("development", 100_000),
        ("qa", 30_000),
        ("deployment", 15_000),
    ]
    assert alloc.emergency == 15_000
    assert alloc.orchestrator + sum(p.tokens for p in alloc.phases) + alloc.emergency == 200_000


def test_phase_pools_go_to_projects_in_proportion_to_predictions() -> None:
    alloc = allocate(load_plan(EXAMPLE), 200_000)
    # M-006 predicts 2/5 of each phase (92.5K vs 138.75K: 1.0 vs 1.5 complexity)
    by_phase = {p.phase: {s.project: s.tokens for s in p.projects} for p in alloc.phases}
    assert by_phase == {
        "strategy": {"M-006": 12_000, "large-integration": 18_000},
        "development": {"M-006": 40_000, "large-integration": 60_000},
        "qa": {"M-006": 12_000, "large-integration": 18_000},
        "deployment": {"M-006": 6_000, "large-integration": 9_000},
    }
    assert alloc.project_totals() == {"M-006": 70_000, "large-integration": 105_000}
    assert any("development: 100,000 allocated, 150,000 predicted" in n for n in alloc.notes)
    assert any("below the plan's prediction 231,250" in n for n in alloc.notes)
    d = alloc.to_dict()
    assert d["total"] == 200_000
    assert d["predicted"] == 231_250


def test_odd_totals_still_add_up_exactly() -> None:
    alloc = allocate(load_plan(EXAMPLE), 199_999)
    assert alloc.orchestrator + sum(p.tokens for p in alloc.phases) + alloc.emergency == 199_999
    for ph in alloc.phases:
        assert sum(s.tokens for s in ph.projects) == ph.tokens


@given(
    st.integers(min_value=0, max_value=10**12),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=8),
)
def test_split_is_exact_and_within_one_of_proportional(total: int, weights: list[int]) -> None:
    parts = split(total, weights)
    if sum(weights) == 0:
        assert parts == [0] * len(weights)
        return
    assert sum(parts) == total
    for p, w in zip(parts, weights, strict=True):
        assert abs(p - Fraction(total * w, sum(weights))) < 1


def test_budgets_validate_as_a_policy_and_carry_the_seed_levels() -> None:
    alloc = allocate(load_plan(EXAMPLE), 200_000)
    mapping = allocation_policy(alloc)
    policy = policy_from_mapping(mapping)
    by_name = {b.name: b for b in policy.budgets}
    assert by_name["plan-session"].limit == 200_000
    assert by_name["plan-orchestrator"].limit == 10_000
    assert by_name["plan-phase-development"].limit == 100_000
    assert by_name["plan-M-006"].limit == 70_000
    dev = by_name["plan-M-006-development"]
    assert dev.limit == 40_000
    assert dict(dev.match.patterns) == {"project": ("M-006",), "phase": ("development",)}
    assert [(lv.at, lv.action.value, lv.percent) for lv in dev.levels] == [
        (90.0, "warn", True),
        (110.0, "approve", True),
    ]
    assert dev.cap == 44_000  # pauses for approval at 110 %
    # the session budget blocks at its limit
    assert by_name["plan-session"].cap == 200_000


def test_budget_options_per_and_match() -> None:
    alloc = allocate(load_plan(EXAMPLE), 200_000)
    mapping = allocation_policy(alloc, prefix="s42", per=["run"], match={"team": "alpha"})
    policy = policy_from_mapping(mapping)
    for b in policy.budgets:
        assert b.name.startswith("s42-")
        assert b.per == ("run",)
        assert b.match.patterns["team"] == ("alpha",)


def test_the_budgets_govern_calls() -> None:
    alloc = allocate(load_plan(EXAMPLE), 200_000)
    gov = Governor(allocation_policy(alloc), "memory://", log_events=False)
    labels = {"project": "M-006", "phase": "development", "model": "gpt-4o"}
    d = gov.record(prompt_tokens=30_000, completion_tokens=6_001, **labels)  # past 90 %
    assert d.action.value == "warn"
    ok = gov.check(prompt_tokens=7_999, max_completion_tokens=0, **labels)  # 44,000: 110 %
    assert ok.allowed
    no = gov.check(prompt_tokens=8_000, max_completion_tokens=0, **labels)  # past 110 %
    assert not no.allowed
    assert no.refusing is not None
    assert no.refusing.budget.name == "plan-M-006-development"
    assert no.action.value == "approve"


def test_work_in_a_phase_without_a_share_is_refused() -> None:
    plan = parse_plan(
        "projects:\n  p:\n    complexity: medium\n    phases:\n      input: [support]\n"
    )
    with pytest.raises(PlanError, match=r"phase 'input'.*add allocation.phases.input"):
        allocate(plan, 100_000)


@pytest.mark.parametrize("total", [0, -5, True, 10**16])
def test_bad_totals(total: int) -> None:
    with pytest.raises(ValueError, match="session total"):
        allocate(load_plan(EXAMPLE), total)
