"""Backtesting a policy: run a usage log through it on a scratch ledger and say what would
have been warned, alerted, flagged, blocked or sent for approval — before enforcing it.

A usage log is JSON Lines or CSV. Each record has a ``time`` (ISO 8601; ``Z`` or an offset;
a naive time is taken as UTC), ``prompt_tokens``, ``completion_tokens`` (optionally
``cached_tokens``, part of the prompt, for cached-input prices) and labels — either in
a ``labels`` object (JSONL) or as the remaining fields/columns (``model``, ``agent``, ...).
Records are replayed in time order; a refused call is not recorded (it would not have run).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._errors import ApprovalRequired, BudgetExceeded, ConfigError, InvalidUsage
from .core.ledger import AuditEvent
from .core.policy import Policy
from .governor import Governor, check_labels, check_tokens, check_usage
from .store.memory import MemoryStore
from .testing import FakeClock

__all__ = ["ReplayReport", "UsageRecord", "read_usage_log", "replay"]

_RESERVED = {"time", "prompt_tokens", "completion_tokens", "labels", "cached_tokens"}


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One line of a usage log: when, which labels, how many tokens."""

    line: int
    time: datetime
    labels: dict[str, str]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


def _parse_time(value: object, where: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise InvalidUsage(f"{where}: 'time' must be an ISO-8601 string, got {value!r}")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidUsage(
            f"{where}: 'time' {value!r} is not ISO 8601 (e.g. 2026-02-25T10:00:00Z)"
        ) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _record(raw: dict[str, object], where: str, line: int) -> UsageRecord:
    for k in ("time", "prompt_tokens", "completion_tokens"):
        if k not in raw or raw[k] in ("", None):
            raise InvalidUsage(f"{where}: missing '{k}'")
    labels_obj = raw.get("labels")
    if labels_obj is not None and not isinstance(labels_obj, dict):
        raise InvalidUsage(f"{where}: 'labels' must be an object, got {labels_obj!r}")
    flat = {k: v for k, v in raw.items() if k not in _RESERVED and v not in ("", None)}
    merged = {**flat, **(labels_obj or {})}
    try:
        labels = check_labels(
            {str(k): v if isinstance(v, str) else str(v) for k, v in merged.items()}
        )

        def num(k: str) -> int:
            v = raw[k]
            if isinstance(v, str):
                try:
                    v = float(v) if "." in v or "e" in v.lower() else int(v)
                except ValueError:
                    raise InvalidUsage(f"{k} must be a whole number, got {raw[k]!r}") from None
            return check_tokens(k, v)

        prompt, completion = num("prompt_tokens"), num("completion_tokens")
        cached = num("cached_tokens") if raw.get("cached_tokens") not in (None, "") else 0
        prompt, completion, cached, _ = check_usage(prompt, completion, cached)
    except InvalidUsage as e:
        raise InvalidUsage(f"{where}: {e}") from None
    return UsageRecord(line, _parse_time(raw["time"], where), labels, prompt, completion, cached)


def read_usage_log(path: str | os.PathLike[str]) -> list[UsageRecord]:
    """Read a JSONL or CSV usage log (by extension; ``.csv`` is CSV, anything else JSONL).
    Errors name the file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"usage log {p} not found") from None
    except UnicodeDecodeError as e:
        raise InvalidUsage(f"{p}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"cannot read usage log {p}: {e.strerror}") from None
    return list(
        _parse_csv(text, str(p)) if p.suffix.lower() == ".csv" else _parse_jsonl(text, str(p))
    )


def _parse_jsonl(text: str, name: str) -> Iterator[UsageRecord]:
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{name}:{n}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidUsage(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(raw, dict):
            raise InvalidUsage(f"{where}: expected a JSON object, got {type(raw).__name__}")
        yield _record(raw, where, n)


def _parse_csv(text: str, name: str) -> Iterator[UsageRecord]:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"time", "prompt_tokens", "completion_tokens"} - set(reader.fieldnames or [])
    if missing:
        raise InvalidUsage(f"{name}:1: the CSV header lacks {', '.join(sorted(missing))}")
    for row in reader:
        n = reader.line_num
        if None in row:
            raise InvalidUsage(f"{name}:{n}: more fields than the header has")
        yield _record(dict(row), f"{name}:{n}", n)


@dataclass
class BudgetTally:
    """What happened to one budget during a replay."""

    calls: int = 0
    tokens: int = 0
    peak_percent: float = 0.0
    events: Counter[str] = field(default_factory=Counter)


@dataclass
class ReplayReport:
    """The outcome of a replay: per-budget tallies, every incident, and totals."""

    records: int = 0
    allowed: int = 0
    blocked: int = 0
    approvals: int = 0
    budgets: dict[str, BudgetTally] = field(default_factory=lambda: defaultdict(BudgetTally))
    incidents: list[dict[str, object]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "records": self.records,
            "allowed": self.allowed,
            "blocked": self.blocked,
            "approvals": self.approvals,
            "budgets": {
                k: {
                    "calls": v.calls,
                    "tokens": v.tokens,
                    "peak_percent": round(v.peak_percent, 1),
                    **dict(v.events),
                }
                for k, v in self.budgets.items()
            },
            "incidents": self.incidents,
        }


def replay(policy: Policy, records: Iterable[UsageRecord]) -> ReplayReport:
    """Run ``records`` through ``policy`` on an in-memory ledger with a replayed clock."""
    ordered = sorted(records, key=lambda r: r.time)
    clock = FakeClock(ordered[0].time if ordered else "2026-01-01T00:00:00Z")
    report = ReplayReport()
    current: list[UsageRecord] = []

    def on_event(ev: AuditEvent) -> None:
        if ev.kind == "approval_requested":
            return  # reported once, from the refusal itself
        r = current[0]
        report.budgets[ev.budget].events[ev.kind] += 1
        report.incidents.append(
            {
                "line": r.line,
                "time": r.time.isoformat(),
                "kind": ev.kind,
                "budget": ev.budget,
                "message": ev.message,
            }
        )

    gov = Governor(
        policy,
        MemoryStore(),
        clock=clock,
        labels={"run": "replay"},
        on_event=on_event,
        log_events=False,
    )
    for r in ordered:
        current[:] = [r]
        clock.set(r.time)
        report.records += 1
        labels: dict[str, Any] = r.labels
        try:
            res = gov.reserve(
                prompt_tokens=r.prompt_tokens, max_completion_tokens=r.completion_tokens, **labels
            )
        except BudgetExceeded as e:
            kind = "approval" if isinstance(e, ApprovalRequired) else "blocked"
            report.approvals += kind == "approval"
            report.blocked += kind == "blocked"
            report.budgets[e.budget].events[kind] += 1
            report.incidents.append(
                {
                    "line": r.line,
                    "time": r.time.isoformat(),
                    "kind": kind,
                    "budget": e.budget,
                    "message": str(e).split(". ")[0],
                }
            )
            continue
        decision = res.commit(
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            cached_tokens=r.cached_tokens,
        )
        report.allowed += 1
        for c in decision.checks:
            t = report.budgets[c.budget.name]
            t.calls += 1
            t.tokens += _amount(c.budget.unit.value, r)
            t.peak_percent = max(t.peak_percent, c.percent)
    return report


def _amount(unit: str, r: UsageRecord) -> int:
    """Tokens this record adds to a budget of ``unit`` (``usd`` budgets: total tokens)."""
    if unit == "prompt_tokens":
        return r.prompt_tokens
    if unit == "completion_tokens":
        return r.completion_tokens
    return r.prompt_tokens + r.completion_tokens
