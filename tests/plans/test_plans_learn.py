"""Learning the tables from usage: known true multipliers are recovered, the learned tables
beat the static formula on held-out (later) projects, sparse history stays near the seed."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import pytest

from llmbudget import Governor
from llmbudget.plans import (
    DEFAULT_TABLES,
    TRUE_TABLES,
    UsageRow,
    accuracy,
    accuracy_report,
    fit_tables,
    observations,
    parse_plan,
    rows_from_events,
    rows_from_records,
    split_by_project,
    synthetic_history,
)
from llmbudget.replay import read_usage_log
from llmbudget.testing import FakeClock


def rows(records: list[dict[str, object]]) -> list[UsageRow]:
    out = []
    for r in records:
        at = datetime.fromisoformat(str(r["time"]).replace("Z", "+00:00")).timestamp()
        tokens = int(r["prompt_tokens"]) + int(r["completion_tokens"])  # type: ignore[call-overload]
        out.append(UsageRow(at, r["labels"], tokens))  # type: ignore[arg-type]
    return out


def test_learning_recovers_known_true_multipliers() -> None:
    obs, skipped = observations(rows(synthetic_history(80, noise=0.1, seed=11)))
    assert not skipped
    fit = fit_tables(obs)
    for kind in ("roles", "phases", "complexity"):
        true = getattr(TRUE_TABLES, kind)
        got = getattr(fit.tables, kind)
        for k, v in true.items():
            assert got[k] == pytest.approx(v, rel=0.10), f"{kind}.{k}"
    # the anchors keep the seed's baselines
    assert fit.tables.phases["strategy"] == 1.0
    assert fit.tables.complexity["medium"] == 1.0
    assert "phases.strategy" not in fit.free
    assert fit.residual_sd == pytest.approx(0.1, abs=0.03)


def test_learned_tables_beat_the_static_formula_on_held_out_projects() -> None:
    obs, _ = observations(rows(synthetic_history(40, seed=7)))
    rep = accuracy_report(obs, holdout=0.3)
    assert len(rep.test_projects) == 12
    assert len(rep.train_projects) == 28
    # time order: every held-out project starts after every training project
    first = {o.project: o.at for o in reversed(obs)}
    assert max(first[p] for p in rep.train_projects) < min(first[p] for p in rep.test_projects)
    for level in ("observation", "phase", "project"):
        s, learned = rep.static[level], rep.learned[level]
        assert learned.mape < s.mape / 2, level
        assert learned.within > s.within + 0.3, level
    assert rep.learned["phase"].within >= 0.75  # the seed's ±20 % for most phases
    assert rep.learned["project"].within == 1.0
    d = rep.to_dict()
    assert d["held_out"]["learned"]["project"]["within"] == 1.0
    assert d["method"]["anchors"] == ["phases.strategy", "complexity.medium"]


def test_history_that_matches_the_seed_keeps_the_seed() -> None:
    obs, _ = observations(rows(synthetic_history(30, tables=DEFAULT_TABLES, noise=0.05)))
    rep = accuracy_report(obs)
    assert rep.static["project"].within == 1.0
    for k, v in DEFAULT_TABLES.roles.items():
        assert rep.fit_all.tables.roles[k] == pytest.approx(v, rel=0.05)


def test_sparse_history_is_pulled_towards_the_prior() -> None:
    # one observation: dev leads spent twice the seed's prediction
    obs, _ = observations(
        [
            UsageRow(
                0.0,
                {
                    "project": "a",
                    "phase": "development",
                    "agent": "dev_lead",
                    "complexity": "medium",
                },
                120_000,
            )
        ]
    )
    strong = fit_tables(obs, prior_weight=1000.0)
    assert strong.tables.roles["dev_lead"] == pytest.approx(20_000, rel=0.01)
    weak = fit_tables(obs, prior_weight=1e-6)
    assert obs[0].predict(weak.tables) == pytest.approx(120_000, rel=1e-3)
    one = fit_tables(obs, prior_weight=1.0)
    # two free parameters share the log-correction log 2 with the prior: each moves by a third
    assert one.tables.roles["dev_lead"] == pytest.approx(20_000 * 2 ** (1 / 3), rel=1e-9)
    assert one.tables.phases["development"] == pytest.approx(3.0 * 2 ** (1 / 3), rel=1e-9)
    assert one.tables.roles["architect"] == 10_000  # unobserved: the prior


@pytest.mark.parametrize("weight", [0, -1, math.nan, math.inf])
def test_prior_weight_must_be_positive(weight: float) -> None:
    with pytest.raises(ValueError, match="prior_weight"):
        fit_tables([], prior_weight=weight)


def test_accuracy_measures() -> None:
    acc = accuracy([(120, 100), (80, 100), (121, 100), (100, 100)])
    assert acc.n == 4
    assert acc.within == 0.75  # ±20 % inclusive
    assert acc.mape == pytest.approx((0.2 + 0.2 + 0.21 + 0) / 4)
    assert acc.median_ape == pytest.approx(0.2)
    assert acc.ratio == pytest.approx(1.1)
    empty = accuracy([(5, 0)])
    assert empty.n == 0
    assert math.isnan(empty.within)


def test_split_needs_two_projects_and_a_share() -> None:
    obs, _ = observations(rows(synthetic_history(1)))
    with pytest.raises(ValueError, match="at least 2 projects"):
        split_by_project(obs, 0.3)
    with pytest.raises(ValueError, match="holdout"):
        split_by_project(obs, 1.5)
    obs2, _ = observations(rows(synthetic_history(2)))
    train, test = split_by_project(obs2, 0.9)
    assert {o.project for o in train} == {"P-001"}
    assert {o.project for o in test} == {"P-002"}


PLAN = """
projects:
  web:
    complexity: complex
    phases:
      strategy: [architect]
      development: [{role: dev_lead, count: 2, name: coder}]
"""


def test_observations_from_a_ledger_with_a_plan(tmp_path: Path) -> None:
    plan = parse_plan(PLAN)
    clock = FakeClock("2026-03-10T12:00:00Z")
    gov = Governor({"budgets": []}, f"sqlite:///{tmp_path}/l.db", clock=clock, log_events=False)
    gov.record(
        prompt_tokens=9_000,
        completion_tokens=6_000,
        project="web",
        phase="strategy",
        agent="architect",
    )
    clock.advance(60)
    # named agents map to roles through the plan; the plan says there are two of them
    gov.record(
        prompt_tokens=50_000,
        completion_tokens=10_000,
        project="web",
        phase="Phase 2",
        agent="coder",
    )
    gov.record(
        prompt_tokens=40_000,
        completion_tokens=20_000,
        project="web",
        phase="development",
        agent="coder",
    )
    gov.record(prompt_tokens=1, completion_tokens=1, agent="orchestrator")
    gov.record(
        prompt_tokens=1, completion_tokens=1, project="web", phase="strategy", agent="intern"
    )
    gov.record(
        prompt_tokens=1, completion_tokens=1, project="web", phase="retro", agent="architect"
    )
    gov.record(
        prompt_tokens=1, completion_tokens=1, project="other", phase="qa", agent="qa_engineer"
    )
    obs, skipped = observations(rows_from_events(gov.store.events()), plan)
    gov.close()
    assert [(o.phase, o.role, o.count, o.tokens, o.calls) for o in obs] == [
        ("strategy", "architect", 1, 15_000, 1),
        ("development", "dev_lead", 2, 120_000, 2),
    ]
    assert obs[0].static_prediction == 10_000 * 1.0 * 1.5
    assert obs[1].static_prediction == 2 * 20_000 * 3.0 * 1.5
    assert skipped == {
        "no project label": 1,
        "no known role (label role or agent)": 1,
        "unknown phase": 1,
        "no complexity (label or plan)": 1,
    }


def test_usage_logs_in_csv_and_jsonl(tmp_path: Path) -> None:
    records = synthetic_history(3)
    jl = tmp_path / "h.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    csv = tmp_path / "h.csv"
    lines = ["time,project,phase,agent,role,complexity,prompt_tokens,completion_tokens"]
    for r in records:
        lab = r["labels"]
        assert isinstance(lab, dict)
        lines.append(
            f"{r['time']},{lab['project']},{lab['phase']},{lab['agent']},{lab['role']},"
            f"{lab['complexity']},"
            f"{r['prompt_tokens']},{r['completion_tokens']}"
        )
    csv.write_text("\n".join(lines), encoding="utf-8")
    a, _ = observations(rows_from_records(read_usage_log(jl)))
    b, _ = observations(rows_from_records(read_usage_log(csv)))
    assert [(o.project, o.phase, o.role, o.tokens) for o in a] == [
        (o.project, o.phase, o.role, o.tokens) for o in b
    ]
    assert len(a) > 10


def test_numeric_complexity_labels_are_fixed_factors() -> None:
    obs, _ = observations(
        [UsageRow(0, {"project": "a", "phase": "qa", "agent": "qa", "complexity": "1.2"}, 9_000)]
    )
    assert obs[0].complexity == 1.2
    assert obs[0].static_prediction == pytest.approx(10_000 * 1.5 * 1.2)
    fit = fit_tables(obs)
    assert not any(f.startswith("complexity.") for f in fit.free)
