"""``llmbudget plan estimate|allocate|accuracy`` as real child processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmbudget import Governor
from llmbudget.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plan.yaml"
HISTORY = ROOT / "examples" / "plan_history.jsonl"
EXE = Path(sys.executable).with_name("llmbudget")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMBUDGET_")}
    return subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


def no_traceback(p: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in p.stderr + p.stdout


def test_estimate_json_reproduces_the_worked_examples() -> None:
    p = cli("plan", "estimate", str(EXAMPLE), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["tokens"] == 231_250
    assert {x["project"]: x["tokens"] for x in doc["projects"]} == {
        "M-006": 92_500,
        "large-integration": 138_750,
    }


def test_estimate_table() -> None:
    p = cli("plan", "estimate", str(EXAMPLE))
    assert p.returncode == 0, p.stderr
    assert "92,500" in p.stdout
    assert "138,750" in p.stdout
    assert "231,250" in p.stdout


def test_allocate_writes_budgets_a_policy_loads(tmp_path: Path) -> None:
    out = tmp_path / "budgets.yaml"
    p = cli("plan", "allocate", str(EXAMPLE), "--total", "200k", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "wrote 16 budgets" in p.stdout
    assert "emergency reserve" in p.stdout
    policy = load_policy(out)
    limits = {b.name: b.limit for b in policy.budgets}
    assert limits["plan-session"] == 200_000
    assert limits["plan-orchestrator"] == 10_000
    assert [
        limits[f"plan-phase-{ph}"] for ph in ("strategy", "development", "qa", "deployment")
    ] == [
        30_000,
        100_000,
        30_000,
        15_000,
    ]
    assert limits["plan-M-006-development"] == 40_000
    # the written file governs calls
    gov = Governor(out, "memory://", log_events=False)
    d = gov.check(
        prompt_tokens=44_001, max_completion_tokens=0, project="M-006", phase="development"
    )
    assert not d.allowed
    assert d.action.value == "approve"


def test_allocate_prints_yaml_or_json() -> None:
    p = cli(
        "plan",
        "allocate",
        str(EXAMPLE),
        "-t",
        "200000",
        "--per",
        "run",
        "--match",
        "team=alpha",
        "--prefix",
        "s1",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("# Budgets for the plan")
    assert "name: s1-session" in p.stdout
    assert "team: alpha" in p.stdout
    j = cli("plan", "allocate", str(EXAMPLE), "-t", "200000", "--json")
    assert j.returncode == 0, j.stderr
    doc = json.loads(j.stdout)
    assert doc["allocation"]["orchestrator"] == 10_000
    assert doc["allocation"]["emergency"] == 15_000
    assert doc["allocation"]["projects"] == {"M-006": 70_000, "large-integration": 105_000}
    assert doc["policy"]["budgets"][0]["name"] == "plan-session"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--total", "lots"], "--total: expected a number of tokens"),
        (["--total", "0"], "--total: expected a positive whole number"),
        (["--total", "100.5"], "--total: expected a positive whole number"),
        (["--total", "200k", "--match", "nope"], "--match: expected LABEL=VALUE"),
        (["--total", "200k", "--warn-at", "120"], "warn_at"),
        (["--total", "200k", "--prefix", "bad name"], "budget name"),
    ],
)
def test_allocate_bad_options(args: list[str], message: str) -> None:
    p = cli("plan", "allocate", str(EXAMPLE), *args)
    assert p.returncode == 2
    assert message in p.stderr
    no_traceback(p)


def test_bad_plans_exit_2_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "projects:\n  a:\n    complexity: medium\n    extends: b\n  b:\n    extends: a\n",
        encoding="utf-8",
    )
    for cmd in (["estimate", str(bad)], ["allocate", str(bad), "--total", "1000"]):
        p = cli("plan", *cmd)
        assert p.returncode == 2
        assert f"{bad}:6: projects.b.extends: extends forms a cycle: a → b → a" in p.stderr
        no_traceback(p)
    p = cli("plan", "estimate", str(tmp_path / "missing.yaml"))
    assert p.returncode == 2
    assert "not found" in p.stderr
    no_traceback(p)


def test_accuracy_from_a_usage_log(tmp_path: Path) -> None:
    tables = tmp_path / "learned.yaml"
    p = cli("plan", "accuracy", "--usage-log", str(HISTORY), "--json", "--tables-out", str(tables))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    static, learned = doc["held_out"]["static"], doc["held_out"]["learned"]
    for level in ("observation", "phase", "project"):
        assert learned[level]["within"] > static[level]["within"]
        assert learned[level]["mape"] < static[level]["mape"]
    assert doc["learned_tables"]["phases"]["strategy"] == 1.0
    # the learned tables plug into a plan
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        tables.read_text(encoding="utf-8")
        + "projects:\n  x:\n    complexity: medium\n    phases:\n      development: [dev_lead]\n",
        encoding="utf-8",
    )
    e = cli("plan", "estimate", str(plan), "--json")
    assert e.returncode == 0, e.stderr
    dev = (
        doc["learned_tables"]["roles"]["dev_lead"] * doc["learned_tables"]["phases"]["development"]
    )
    assert json.loads(e.stdout)["tokens"] == pytest.approx(dev, rel=0.01)
    h = cli("plan", "accuracy", "--usage-log", str(HISTORY))
    assert h.returncode == 0, h.stderr
    assert "within ±20 %" in h.stdout
    assert "learned tables" in h.stdout


def test_accuracy_from_the_ledger_with_a_plan(tmp_path: Path) -> None:
    from llmbudget.plans import synthetic_history

    ledger = tmp_path / "ledger.db"
    gov = Governor({"budgets": []}, f"sqlite:///{ledger}", log_events=False)
    comp = {}
    for r in synthetic_history(6):
        labels = dict(r["labels"])
        comp[labels["project"]] = labels.pop("complexity")  # the plan gives complexities
        gov.record(
            prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"], **labels
        )
    gov.close()
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "projects:\n" + "".join(f"  {p}:\n    complexity: {c}\n" for p, c in comp.items()),
        encoding="utf-8",
    )
    p = cli("--ledger", f"sqlite:///{ledger}", "plan", "accuracy", "--plan", str(plan), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["observations"] > 30
    assert doc["skipped"] == {}
    assert len(doc["test_projects"]) == 2


def test_accuracy_without_labelled_usage(tmp_path: Path) -> None:
    log = tmp_path / "u.jsonl"
    log.write_text(
        '{"time": "2026-01-01T00:00:00Z", "model": "gpt-4o", "prompt_tokens": 5, '
        '"completion_tokens": 1}\n',
        encoding="utf-8",
    )
    p = cli("plan", "accuracy", "--usage-log", str(log))
    assert p.returncode == 2
    assert "no usage labelled with project, phase and a role" in p.stderr
    assert "1 no project label" in p.stderr
    no_traceback(p)
    one = tmp_path / "one.jsonl"
    one.write_text(
        '{"time": "2026-01-01T00:00:00Z", "project": "a", "phase": "qa", "agent": "qa",'
        ' "complexity": "medium", "prompt_tokens": 5, "completion_tokens": 1}\n',
        encoding="utf-8",
    )
    p = cli("plan", "accuracy", "--usage-log", str(one))
    assert p.returncode == 2
    assert "at least 2 projects" in p.stderr
    p = cli("plan", "accuracy", "--usage-log", str(tmp_path / "nope.jsonl"))
    assert p.returncode == 2
    assert "not found" in p.stderr
    p = cli("plan", "accuracy", "--usage-log", str(HISTORY), "--holdout", "2")
    assert p.returncode == 2
    assert "holdout must be between 0 and 1" in p.stderr
    no_traceback(p)
