"""Helpers for ``llmbudget run`` tests: transcripts with a known true usage, the CLI as a real
child process, and the ledger read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llmbudget.store import open_store

EXE = Path(sys.executable).with_name("llmbudget")
AGENTS = Path(__file__).resolve().parent / "agents"
PY = sys.executable


def agent(name: str, *args: str) -> list[str]:
    """argv for a stand-in agent script."""
    return [PY, str(AGENTS / name), *args]


@dataclass
class Transcript:
    path: Path
    total: int  # the true usage: every token once
    lines: int


def _usage(i: int, o: int, cc: int = 0, cr: int = 0) -> dict[str, int]:
    return {
        "input_tokens": i,
        "output_tokens": o,
        "cache_creation_input_tokens": cc,
        "cache_read_input_tokens": cr,
    }


def claude_transcript(path: Path, *, scale: int = 1) -> Transcript:
    """Claude-Code-style per-message usage with every hazard: one line per content block
    (duplicates), a stale copy arriving late, garbage, a restart with a new session, partial
    stream events, and results whose totals agree with the messages."""
    out: list[str] = []
    total = 0

    def msg(mid: str, sid: str, u: dict[str, int]) -> str:
        m = {"id": mid, "type": "message", "model": "claude-sonnet-4", "usage": u}
        return json.dumps({"type": "assistant", "message": m, "session_id": sid})

    for sid, n in (("s1", 4), ("s2", 3)):
        out.append(json.dumps({"type": "system", "subtype": "init", "session_id": sid}))
        session = [0, 0, 0, 0]
        for k in range(n):
            u = _usage(10 * scale, 20 * scale + k, 5 * scale, 30 * scale)
            mid = f"{sid}-m{k}"
            out += [msg(mid, sid, u), msg(mid, sid, u)]  # two content blocks
            if k == 1:
                out.append(msg(mid, sid, _usage(10 * scale, 3)))  # stale partial copy
                out.append("Traceback (most recent call last): not json")
            total += sum(u.values())
            for j, key in enumerate(u):
                session[j] += u[key]
        start = {"type": "message_start", "message": {"id": f"{sid}-p", "usage": _usage(7, 0)}}
        out.append(json.dumps({"type": "stream_event", "session_id": sid, "event": start}))
        d = {"type": "message_delta", "usage": {"output_tokens": 9}}
        out.append(json.dumps({"type": "stream_event", "session_id": sid, "event": d}))
        out.append(msg(f"{sid}-p", sid, _usage(7, 9)))
        total += 16
        session[0] += 7
        session[1] += 9
        res = {
            "type": "result",
            "subtype": "success",
            "session_id": sid,
            "total_cost_usd": 0.01,
            "usage": dict(zip(_usage(0, 0), session, strict=True)),
        }
        out.append(json.dumps(res))
    out.append("[not, an, object")
    path.write_text("\n".join(out) + "\n")
    return Transcript(path, total, len(out))


def cumulative_transcript(
    path: Path, steps: list[int], restart_at: int | None = None
) -> Transcript:
    """Running totals without session ids (``{"type": "usage", "usage": {...}}``): each value
    in ``steps`` is a running total of output tokens (input fixed at 10); a repeated line after
    each; a restart (totals from zero again) before ``restart_at``."""
    out: list[str] = []
    total = 0
    last = 0
    for k, t in enumerate(steps):
        if k == restart_at:
            total += last
            last = 0
        line = json.dumps({"type": "usage", "usage": {"input_tokens": 10, "output_tokens": t}})
        out += [line, line]
        last = 10 + t
    total += last
    path.write_text("\n".join(out) + "\n")
    return Transcript(path, total, len(out))


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None

    def instance(self, name: str) -> dict[str, Any]:
        assert self.report is not None
        return next(i for i in self.report["instances"] if i["name"] == name)


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., Result]:
    def run(*args: str, policy: Path | None = None, timeout: float = 60) -> Result:
        env = {
            **os.environ,
            "LLMBUDGET_LEDGER": f"sqlite:///{tmp_path}/ledger.db",
            "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
            "COLUMNS": "160",
        }
        env.pop("LLMBUDGET_POLICY", None)
        report = tmp_path / "report.json"
        report.unlink(missing_ok=True)
        pre = ["--policy", str(policy)] if policy else []
        argv = [str(EXE), *pre, "run", "--report-json", str(report), "--grace-period", "0.5"]
        p = subprocess.run(
            [*argv, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=timeout,
            check=False,
        )
        data = json.loads(report.read_text()) if report.exists() else None
        return Result(p.returncode, p.stdout, p.stderr, data)

    return run


@pytest.fixture
def ledger_totals(tmp_path: Path) -> Callable[..., dict[str, int]]:
    """Total tokens in the ledger per instance, for one run."""

    def totals(run: str) -> dict[str, int]:
        store = open_store(f"sqlite:///{tmp_path}/ledger.db")
        try:
            out: dict[str, int] = {}
            for e in store.events(labels={"run": run}):
                name = e.labels["instance"]
                out[name] = out.get(name, 0) + e.prompt_tokens + e.completion_tokens
            return out
        finally:
            store.close()

    return totals


def write_config(path: Path, instances: list[dict[str, Any]], **top: Any) -> Path:
    path.write_text(json.dumps({**top, "instances": instances}, indent=2))
    return path
