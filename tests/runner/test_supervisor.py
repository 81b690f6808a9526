"""The supervisor in process (real child processes, a memory ledger), and Ctrl-C on the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from llmbudget import Governor
from llmbudget.runner.budgets import run_policy
from llmbudget.runner.config import InstanceSpec
from llmbudget.runner.supervisor import RunnerEvent, Snapshot, Supervisor

from ._helpers import EXE, agent, claude_transcript


def test_supervisor_records_reports_and_snapshots(tmp_path: Path) -> None:
    t = claude_transcript(tmp_path / "t.jsonl")
    policy, budgets = run_policy(overall=100_000, commands={"/test": 50_000}, mode="block")
    gov = Governor(policy, "memory://", labels={"run": "r1"}, log_events=False)
    events: list[RunnerEvent] = []
    snaps: list[Snapshot] = []
    specs = [
        InstanceSpec("a", tuple(agent("replay.py", str(t.path), "--delay", "0.01")), "/test x"),
        InstanceSpec("b", tuple(agent("quick_exit.py")), None),
    ]
    sup = Supervisor(
        gov,
        specs,
        budgets=budgets,
        status_interval=0.05,
        on_event=events.append,
        on_status=snaps.append,
    )
    report = sup.run()
    assert report.exit_code == 0
    assert report.total.total == t.total
    assert report.by_command() == {
        "/test": report.instances[0].usage,
        "-": report.instances[1].usage,
    }
    assert sum(e.prompt_tokens + e.completion_tokens for e in gov.store.events()) == t.total
    assert {e.labels["command"] for e in gov.store.events()} == {"/test"}
    assert {e.labels["model"] for e in gov.store.events()} == {"claude-sonnet-4"}
    assert snaps, "a status snapshot every interval"
    last = sup.snapshot()
    assert [(b.kind, b.label, b.used) for b in last.budgets] == [
        ("overall", "Overall", t.total),
        ("command", "/test", t.total),
    ]
    assert any(e.kind == "garbage" for e in events)
    assert any(e.kind == "restart" and e.level == "info" for e in events)
    data = report.as_dict()
    assert json.loads(json.dumps(data)) == data


def test_ctrl_c_stops_every_instance_and_still_reports(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    env = {**os.environ, "LLMBUDGET_LEDGER": f"sqlite:///{tmp_path}/l.db"}
    env.pop("LLMBUDGET_POLICY", None)
    report = tmp_path / "r.json"
    argv = [str(EXE), "run", "--no-policy", "--report-json", str(report), "--grace-period", "0.5"]
    argv += ["--status-report-interval", "0", "--"]
    argv += agent("replay.py", str(empty), "--ignore-sigterm", "--forever", "0.05")
    p = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path
    )
    try:
        assert p.stderr is not None
        for line in p.stderr:  # wait until the agent runs
            if b"started agent" in line:
                break
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    data = json.loads(report.read_text())
    inst = data["instances"][0]
    assert inst["state"] == "interrupted" and inst["killed"] and inst["usage"]["total_tokens"] > 0
    assert b"BUDGET STATUS" in out
