"""`llmbudget run` stopped by a signal leaves no agent behind; a reused --run-id adds usage."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from ._helpers import EXE, agent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not running: read its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_sigterm_stops_the_agents_too(tmp_path: Path) -> None:
    marker = f"{uuid.uuid4().hex}"
    pidfile = tmp_path / "agent.pid"
    script = tmp_path / "agent.py"
    script.write_text(
        "import os, sys, time\n"
        f"open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(300)\n"
    )
    env = {**os.environ, "LLMBUDGET_LEDGER": f"sqlite:///{tmp_path}/ledger.db"}
    with subprocess.Popen(
        [
            str(EXE),
            "run",
            "--no-policy",
            "--grace-period",
            "0.5",
            "--status-report-interval",
            "0",
            "--name",
            marker,
            "--",
            *agent("silent.py", "1")[:1],
            str(script),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    ) as proc:
        deadline = time.monotonic() + 20
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline, "the agent never started"
            time.sleep(0.05)
        child = int(pidfile.read_text())
        assert _alive(child)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the agent outlived llmbudget run"


def test_reusing_a_run_id_adds_the_second_runs_usage(
    tmp_path: Path, run_cli, ledger_totals
) -> None:  # type: ignore[no-untyped-def]
    from ._helpers import claude_transcript, write_config

    t = claude_transcript(tmp_path / "t.jsonl")
    cfg = write_config(
        tmp_path / "agents.json",
        [{"name": "nightly", "command": "/test", "program": agent("replay.py", str(t.path))}],
    )
    for _ in range(2):
        run_cli(
            "--no-policy",
            "--config",
            str(cfg),
            "--run-id",
            "nightly",
            "--status-report-interval",
            "0",
        )
    assert ledger_totals("nightly") == {"nightly": 2 * t.total}
