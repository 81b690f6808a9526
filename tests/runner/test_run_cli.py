"""``llmbudget run`` end to end: real child processes printing recorded transcripts, a real
SQLite ledger, warn and block with per-command and overall budgets, the SIGKILL, the report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ._helpers import (
    Result,
    agent,
    claude_transcript,
    cumulative_transcript,
    write_config,
)

RunCli = Callable[..., Result]
Totals = Callable[..., dict[str, int]]


def test_warn_mode_counts_every_token_once_and_warns(
    tmp_path: Path, run_cli: RunCli, ledger_totals: Totals
) -> None:
    a = claude_transcript(tmp_path / "a.jsonl")
    b = cumulative_transcript(tmp_path / "b.jsonl", [5, 40, 90, 20, 70], restart_at=3)
    cfg = write_config(
        tmp_path / "agents.json",
        [
            {
                "name": "tester",
                "command": "/test --real-services",
                "program": agent("replay.py", str(a.path)),
            },
            {
                "name": "analyst",
                "command": "/analyze deep",
                "program": agent("replay.py", str(b.path)),
            },
        ],
    )
    r = run_cli(
        "--config", str(cfg), "--run-id", "warn1",
        "--overall-token-budget", "100000",
        "--command-budget", "/test=400", "--command-budget", "/analyze=1k",
        "--status-report-interval", "0",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    # the ledger holds exactly the transcripts' true usage: nothing twice, nothing lost
    assert ledger_totals("warn1") == {"tester": a.total, "analyst": b.total}
    assert r.report is not None
    assert r.report["usage"]["total_tokens"] == a.total + b.total
    assert r.report["commands"]["/test"]["total_tokens"] == a.total
    assert r.report["commands"]["/analyze"]["total_tokens"] == b.total
    tester = r.instance("tester")
    assert tester["state"] == "ok" and tester["exit_code"] == 0
    s = tester["stream"]
    assert s["lines"] == a.lines and s["sessions"] == 2 and s["messages"] == 9
    assert s["anomalies"] == {"garbage": 3, "duplicate": 9, "out_of_order": 2, "restart": 1}
    assert s["anomaly_lines"]["garbage"][-1] == a.lines  # the last line is garbage
    analyst = r.instance("analyst")["stream"]
    assert analyst["anomalies"] == {"duplicate": 5, "restart": 1}
    assert analyst["anomaly_lines"]["restart"] == [7]
    # warn mode: logged, never stopped
    assert "WARNING: Budget exceeded for /test command (used: " in r.stderr
    assert "/400 tokens)" in r.stderr
    assert "line 6: not JSON" in r.stderr or "not JSON" in r.stderr
    assert "Traceback" not in r.stderr.replace("Traceback (most recent call last): not json", "")
    # the final status box and report on stdout
    assert "BUDGET STATUS" in r.stdout and "Overall: [" in r.stdout
    assert "Command Budgets:" in r.stdout and "(EXCEEDED)" in r.stdout
    assert "per command" in r.stdout and f"{a.total:,}" in r.stdout


def test_block_mode_stops_the_instance_that_crosses_its_command_budget(
    tmp_path: Path, run_cli: RunCli, ledger_totals: Totals
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    small = claude_transcript(tmp_path / "small.jsonl")
    cfg = write_config(
        tmp_path / "agents.yaml",
        [
            {
                "name": "spender",
                "command": "/test",
                "program": agent("replay.py", str(empty), "--forever", "0.02"),
            },
            {
                "name": "other",
                "command": "/analyze",
                "program": agent("replay.py", str(small.path), "--delay", "0.01"),
            },
        ],
    )
    t0 = time.monotonic()
    r = run_cli(
        "--config", str(cfg), "--run-id", "block1", "--budget-enforcement-mode", "block",
        "--command-budget", "/test=1000", "--status-report-interval", "0",
    )  # fmt: skip
    assert time.monotonic() - t0 < 20
    assert r.code == 3, r.stderr
    spender = r.instance("spender")
    assert spender["state"] == "stopped" and spender["terminated"] and not spender["killed"]
    assert "/test command budget exceeded" in spender["reason"]
    # it crossed 1000 (200 tokens a message) and was stopped soon after
    assert 1000 < spender["usage"]["total_tokens"] <= 3000
    assert r.instance("other")["state"] == "ok"
    assert "BLOCK MODE: Budget exceeded for /test command" in r.stderr
    assert "SIGTERM" in r.stderr
    assert ledger_totals("block1") == {
        "spender": spender["usage"]["total_tokens"],
        "other": small.total,
    }


def test_an_agent_that_ignores_sigterm_is_sigkilled_after_the_grace_period(
    tmp_path: Path, run_cli: RunCli
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = run_cli(
        "--budget-enforcement-mode", "block", "--overall-token-budget", "500",
        "--command", "/stubborn", "--name", "stubborn", "--status-report-interval", "0",
        "--", *agent("replay.py", str(empty), "--ignore-sigterm", "--forever", "0.05"),
    )  # fmt: skip
    assert r.code == 3, r.stderr
    s = r.instance("stubborn")
    assert s["state"] == "stopped" and s["terminated"] and s["killed"]
    assert s["exit_code"] == -9
    assert s["duration_seconds"] < 10
    assert "did not exit 0.5s after SIGTERM: SIGKILL" in r.stderr
    assert "stopped (SIGKILL)" in r.stdout


def test_an_overall_budget_stops_every_instance_even_a_silent_one(
    tmp_path: Path, run_cli: RunCli
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cfg = write_config(
        tmp_path / "agents.json",
        [
            {
                "name": "spender",
                "command": "/a",
                "program": agent("replay.py", str(empty), "--forever", "0.02"),
            },
            {"name": "silent", "command": "/b", "program": agent("silent.py", "30")},
        ],
    )
    r = run_cli(
        "--config", str(cfg), "--budget-enforcement-mode", "block",
        "--overall-token-budget", "1000", "--status-report-interval", "0",
    )  # fmt: skip
    assert r.code == 3, r.stderr
    assert r.instance("spender")["state"] == "stopped"
    silent = r.instance("silent")
    assert silent["state"] == "stopped" and silent["usage"]["total_tokens"] == 0
    assert "overall session budget exceeded" in silent["reason"]
    assert silent["duration_seconds"] < 10


def test_block_mode_refuses_to_start_an_instance_whose_budget_is_exhausted(
    tmp_path: Path, run_cli: RunCli
) -> None:
    big = claude_transcript(tmp_path / "big.jsonl", scale=10)
    small = claude_transcript(tmp_path / "small.jsonl")
    cfg = write_config(
        tmp_path / "agents.json",
        [
            {"name": "first", "command": "/test a", "program": agent("replay.py", str(big.path))},
            {
                "name": "second",
                "command": "/test b",
                "program": agent("replay.py", str(small.path)),
            },
            {
                "name": "third",
                "command": "/analyze",
                "program": agent("replay.py", str(small.path)),
            },
        ],
        budget_enforcement_mode="block",
        command_budgets={"/test": 1000},
    )
    r = run_cli("--config", str(cfg), "--max-parallel", "1", "--status-report-interval", "0")
    assert r.code == 3, r.stderr
    assert r.instance("first")["state"] == "stopped"
    second = r.instance("second")
    assert second["state"] == "refused" and second["usage"]["total_tokens"] == 0
    assert "/test command budget exhausted" in second["reason"]
    assert r.instance("third")["state"] == "ok"
    assert "BLOCK MODE: Budget exceeded for instance second" in r.stderr
    assert "Skipping." in r.stderr


def test_policy_file_budgets_also_govern_and_persist_across_runs(
    tmp_path: Path, run_cli: RunCli
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "mode: block\nbudgets:\n"
        "  - {name: daily-agents, match: {instance: '*'}, window: day, limit: 300}\n"
    )
    t = claude_transcript(tmp_path / "t.jsonl")
    argv = ["--status-report-interval", "0", "--name", "a", "--", *agent("replay.py", str(t.path))]
    first = run_cli(*argv, policy=policy)
    assert first.code == 3 and first.instance("a")["state"] == "stopped"
    assert "policy budget daily-agents" in first.stderr
    again = run_cli(*argv, policy=policy)
    assert again.code == 3 and again.instance("a")["state"] == "refused"
    ignored = run_cli("--no-policy", *argv, policy=policy)
    assert ignored.code == 0 and ignored.instance("a")["state"] == "ok"


def test_warn_mode_warns_at_90_percent_then_when_exceeded(tmp_path: Path, run_cli: RunCli) -> None:
    t = cumulative_transcript(tmp_path / "t.jsonl", [400, 450, 600])  # 410, 460, 610
    r = run_cli(
        "--overall-token-budget", "500", "--status-report-interval", "0",
        "--", *agent("replay.py", str(t.path)),
    )  # fmt: skip
    assert r.code == 0
    assert "WARNING: overall session budget at 92% (used: 460/500 tokens)" in r.stderr
    assert "WARNING: Budget exceeded for overall session (used: 610/500 tokens)" in r.stderr


def test_agents_that_exit_at_once_or_fail_or_never_print(tmp_path: Path, run_cli: RunCli) -> None:
    cfg = write_config(
        tmp_path / "agents.json",
        [
            {"name": "quick", "program": agent("quick_exit.py")},
            {"name": "broken", "program": agent("quick_exit.py", "7")},
            {"name": "mute", "program": agent("silent.py", "0.3")},
        ],
    )
    r = run_cli("--config", str(cfg), "--status-report-interval", "0")
    assert r.code == 1, r.stderr
    assert r.instance("quick")["state"] == "ok"
    broken = r.instance("broken")
    assert broken["state"] == "failed" and broken["exit_code"] == 7
    assert "exited with code 7" in broken["reason"]
    mute = r.instance("mute")
    assert mute["state"] == "ok" and mute["stream"]["lines"] == 0
    assert r.report is not None and r.report["usage"]["total_tokens"] == 0


def test_timeout_stops_an_agent_that_runs_too_long(tmp_path: Path, run_cli: RunCli) -> None:
    r = run_cli("--timeout", "0.3", "--", *agent("silent.py", "30"))
    assert r.code == 1
    s = r.instance("agent")
    assert s["state"] == "timeout" and s["duration_seconds"] < 10


def test_periodic_status_reports_and_plain_mode(tmp_path: Path, run_cli: RunCli) -> None:
    t = claude_transcript(tmp_path / "t.jsonl")
    argv = ["--overall-token-budget", "5000", "--command", "/t", "--command-budget", "/t=900"]
    prog = ["--", *agent("replay.py", str(t.path), "--delay", "0.02")]
    boxed = run_cli(*argv, "--status-report-interval", "0.1", *prog)
    assert boxed.code == 0
    assert boxed.stdout.count("BUDGET STATUS") >= 2  # periodic + final
    assert "║   /t " in boxed.stdout and "█" in boxed.stdout
    plain = run_cli(*argv, "--disable-budget-visuals", "--status-report-interval", "0.1", *prog)
    assert plain.code == 0
    assert "█" not in plain.stdout and "BUDGET STATUS" not in plain.stdout
    assert "Budget status: Overall " in plain.stdout and "; /t " in plain.stdout


def test_report_json_on_stdout(tmp_path: Path, run_cli: RunCli) -> None:
    t = claude_transcript(tmp_path / "t.jsonl")
    r = run_cli(
        "--report-json",
        "-",
        "--status-report-interval",
        "0",
        "--",
        *agent("replay.py", str(t.path)),
    )
    assert r.code == 0
    data = json.loads(r.stdout)
    assert data["usage"]["total_tokens"] == t.total and data["exit_code"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--command-budget", "/test", "--", "true"], "expected COMMAND=TOKENS"),
        (["--command-budget", "/test=lots", "--", "true"], "is not a number of tokens"),
        (["--command-budget", "/test=-5", "--", "true"], "cannot be negative"),
        (["--command-budget", "/t=1", "--command-budget", "/t=2", "--", "true"], "given twice"),
        (["--overall-token-budget", "-100", "--", "true"], "cannot be negative"),
        (["--overall-token-budget", "ten", "--", "true"], "not a number of tokens"),
        (["--budget-enforcement-mode", "strict", "--", "true"], "must be warn or block"),
        (["--", "no-such-agent-program-xyz"], "'no-such-agent-program-xyz' was not found on PATH"),
        (["--", "./missing.py"], "does not exist"),
        ([], "nothing to run"),
        (["--command", "/x"], "none was given"),
        (["--config", "nope.yaml"], "config file nope.yaml not found"),
        (["--status-report-interval", "-1", "--", "true"], "0 or more seconds"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(
    run_cli: RunCli, args: list[str], message: str
) -> None:
    r = run_cli(*args)
    assert r.code == 2, (r.stdout, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr and r.report is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "instances:\n  - name: a\n    program: [x]\n  - command: /b\n    program: [y]\n",
            "agents.yaml:4: instances[1]: `name` is required",
        ),
        (
            "instances:\n  - name: a\n    programme: [x]\n",
            "agents.yaml:3: instances[0].programme: unknown key",
        ),
        (
            "instances:\n  - name: a\n    program: [x]\n  - name: a\n    program: [y]\n",
            "agents.yaml:4: instances[1].name: duplicate instance name 'a'",
        ),
        ("instances: [\n", "agents.yaml:2: not valid YAML"),
        ("instances: []\n", "instances: expected a non-empty list"),
        (
            "command_budgets: {/t: many}\ninstances:\n  - {name: a, program: [x]}\n",
            "agents.yaml:1: command_budgets./t: 'many' is not a number",
        ),
        (
            "budget_enforcement_mode: hard\ninstances:\n  - {name: a, program: [x]}\n",
            "agents.yaml:1: budget_enforcement_mode: expected warn or block",
        ),
        (
            "instances:\n  - {name: a, program: 42}\n",
            "agents.yaml:2: instances[0].program: expected a list",
        ),
        ("instances:\n  - {name: a}\n", "give a `program` to run"),
        ("instances:\n  - {name: a, labels: {run: x}, program: [x]}\n", "instances[0].labels.run"),
    ],
)
def test_config_errors_name_the_line_and_key(
    tmp_path: Path, run_cli: RunCli, text: str, message: str
) -> None:
    (tmp_path / "agents.yaml").write_text(text)
    r = run_cli("--config", "agents.yaml")
    assert r.code == 2, r.stderr
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_json_config_errors_name_the_line(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "agents.json").write_text('{"instances": [\n  {"name": "a",}\n]}\n')
    r = run_cli("--config", "agents.json")
    assert r.code == 2 and "agents.json:2: not valid JSON" in r.stderr
    (tmp_path / "agents.json").write_text(
        '{"instances": [\n  {"name": "a", "program": ["x"], "cwd": 3}\n]}\n'
    )
    r = run_cli("--config", "agents.json")
    assert (
        r.code == 2 and "agents.json:2: instances[0].cwd: expected a non-empty string" in r.stderr
    )


def test_missing_claude_is_explained(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "agents.yaml").write_text("instances:\n  - {name: a, command: /test}\n")
    r = run_cli("--config", "agents.yaml")
    assert r.code == 2 and "program 'claude' was not found on PATH (install Claude Code" in r.stderr
