"""The strategy seed's formula, its default tables and its two worked examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbudget.plans import (
    DEFAULT_TABLES,
    Agent,
    Plan,
    Project,
    estimate_plan,
    estimate_project,
    formula,
    load_plan,
    parse_plan,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plan.yaml"

SEED_TEAM = {
    "strategy": (Agent("business_strategist"), Agent("architect")),
    "development": (Agent("dev_lead"),),
    "qa": (Agent("qa_engineer"),),
    "deployment": (Agent("devops"),),
}


def test_default_tables_are_the_seeds() -> None:
    assert dict(DEFAULT_TABLES.roles) == {
        "business_strategist": 5_000,
        "architect": 10_000,
        "dev_lead": 20_000,
        "qa_engineer": 10_000,
        "devops": 5_000,
        "security_auditor": 5_000,
        "support": 3_000,
    }
    assert dict(DEFAULT_TABLES.phases) == {
        "input": 0.5,
        "strategy": 1.0,
        "development": 3.0,
        "qa": 1.5,
        "deployment": 0.5,
    }
    assert dict(DEFAULT_TABLES.complexity) == {
        "simple": 0.8,
        "medium": 1.0,
        "complex": 1.5,
        "expert": 2.0,
    }


def test_formula_is_a_product() -> None:
    assert formula(20_000, 3.0, 1.5) == 90_000


def test_worked_example_1_m006_medium_is_92_5k() -> None:
    est = estimate_project(Project("M-006", "medium", SEED_TEAM))
    assert [(p.phase, p.tokens) for p in est.phases] == [
        ("strategy", 15_000),
        ("development", 60_000),
        ("qa", 15_000),
        ("deployment", 2_500),
    ]
    assert est.tokens == 92_500


def test_worked_example_2_large_integration_complex_is_138_75k() -> None:
    est = estimate_project(Project("large-integration", "complex", SEED_TEAM))
    assert [(p.phase, p.tokens) for p in est.phases] == [
        ("strategy", 22_500),
        ("development", 90_000),
        ("qa", 22_500),
        ("deployment", 3_750),
    ]
    assert est.tokens == 138_750


def test_the_example_plan_file_reproduces_both() -> None:
    plan = load_plan(EXAMPLE)
    est = estimate_plan(plan)
    assert {p.project: p.tokens for p in est.projects} == {
        "M-006": 92_500,
        "large-integration": 138_750,
    }
    assert est.tokens == 231_250
    d = est.to_dict()
    assert d["tokens"] == 231_250
    assert d["projects"][1]["phases"][1] == {
        "phase": "development",
        "multiplier": 3.0,
        "tokens": 90_000,
        "agents": [{"role": "dev_lead", "count": 1, "base": 20_000.0, "tokens": 90_000}],
    }


def test_seed_spellings_and_numbers_are_accepted() -> None:
    plan = parse_plan(
        """
projects:
  p:
    complexity: 1.25
    phases:
      Phase 1: [Business Strategist, Architect]
      phase2: [{role: Dev-Lead, count: 2, name: backend}]
      "3": [QA, security]
      Phase 0: [support agents]
"""
    )
    (est,) = estimate_plan(plan).projects
    assert est.factor == 1.25
    assert [p.phase for p in est.phases] == ["input", "strategy", "development", "qa"]
    assert est.phase("input") == 3_000 * 0.5 * 1.25
    assert est.phase("development") == 2 * 20_000 * 3.0 * 1.25
    assert est.phase("qa") == (10_000 + 5_000) * 1.5 * 1.25
    assert plan.agent_roles() == {"backend": "dev_lead"}


def test_overrides_replace_and_add_entries() -> None:
    plan = parse_plan(
        """
tables:
  roles: {dev_lead: 18K, data_scientist: 12k}
  phases: {development: 2.5x, research: 2}
  complexity: {expert: 2.2}
allocation:
  phases: {strategy: 15, research: 10, development: 40, qa: 15, deployment: 7.5}
projects:
  a:
    complexity: expert
    phases:
      research: [data_scientist]
      development: [dev_lead]
  b:
    extends: a
    tables:
      roles: {data_scientist: 6000}
"""
    )
    a, b = estimate_plan(plan).projects
    assert a.phase("research") == 12_000 * 2 * 2.2
    assert a.phase("development") == 18_000 * 2.5 * 2.2
    assert b.phase("research") == 6_000 * 2 * 2.2
    assert plan.allocation.phases["research"] == 10


def test_templates_are_not_estimated_and_children_override_phases() -> None:
    plan = parse_plan(
        """
projects:
  team:
    template: true
    phases:
      strategy: [architect]
      development: [dev_lead]
  small:
    extends: team
    complexity: simple
    phases:
      development: []
"""
    )
    assert [p.name for p in plan.projects] == ["small"]
    (est,) = estimate_plan(plan).projects
    assert est.tokens == pytest.approx(10_000 * 0.8)


def test_learned_tables_replace_entries_they_have() -> None:
    plan = Plan((Project("x", "medium", SEED_TEAM),))
    learned = DEFAULT_TABLES.merged(roles={"dev_lead": 10_000})
    assert estimate_plan(plan, learned).projects[0].phase("development") == 30_000
