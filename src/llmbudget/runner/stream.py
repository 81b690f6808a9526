"""Reading an agent's stream-json output: from lines to usage *deltas*, nothing counted twice.

A Claude-Code-style agent prints one JSON object per line. Assistant messages carry
``message.usage`` (``input_tokens``, ``output_tokens``, ``cache_creation_input_tokens``,
``cache_read_input_tokens``), partial-message stream events carry growing usage for the message
being streamed, and a final ``{"type": "result", "usage": {...}, "total_cost_usd": ...}`` carries
the session's totals. Other agents print a running (cumulative) total instead.

:class:`StreamTracker` accepts all of these and hands back only *positive deltas*:

* **per message** (mode ``auto`` or ``message``): usage is keyed by message id; a line repeating a
  message (Claude Code prints one line per content block, each with the message's usage) or a
  stale, smaller copy arriving late adds nothing; a larger copy adds the difference, field by
  field;
* **cumulative** (a ``result`` line, a line with a top-level ``usage``, or every usage line in
  mode ``cumulative``): a running total for the session; only its growth counts. A total that
  goes *down* is a restart (a new session, counted from zero, never negative) — unless the line
  names the same ``session_id`` as a larger total seen before, in which case it is an
  out-of-order line and adds nothing;
* a session's recorded total is, field by field, the larger of the sum of its messages and its
  cumulative total, so a ``result`` that agrees with the messages adds nothing and one that
  reports more adds exactly the difference.

Garbage (not JSON, not an object, a usage that is not whole non-negative numbers, an overlong
line) is skipped and *reported*: every anomaly is counted by kind, with its line number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "ANOMALY_KINDS",
    "Anomaly",
    "Delta",
    "StreamTracker",
    "TokenUsage",
    "UsageMode",
]

#: Kinds of anomalies a tracker reports.
ANOMALY_KINDS = ("garbage", "bad_usage", "duplicate", "out_of_order", "restart", "too_long")
_MAX_EXAMPLES = 20
_MAX_TOKENS = 10**12


class UsageMode(StrEnum):
    """How usage on assistant messages is read: ``auto`` (per message, deduplicated by id;
    ``result`` lines and top-level ``usage`` objects are cumulative session totals),
    ``message`` (only messages count; a ``result``'s totals are compared, not added) or
    ``cumulative`` (every usage seen is the session's running total)."""

    AUTO = "auto"
    MESSAGE = "message"
    CUMULATIVE = "cumulative"


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts as Anthropic reports them: ``input`` excludes the cache fields."""

    input: int = 0
    output: int = 0
    cache_creation: int = 0
    cache_read: int = 0

    @property
    def prompt(self) -> int:
        """Every prompt-side token: input plus cache creation plus cache reads."""
        return self.input + self.cache_creation + self.cache_read

    @property
    def total(self) -> int:
        """Prompt plus output."""
        return self.prompt + self.output

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input + other.input,
            self.output + other.output,
            self.cache_creation + other.cache_creation,
            self.cache_read + other.cache_read,
        )

    def max(self, other: TokenUsage) -> TokenUsage:
        """Field-by-field maximum."""
        return TokenUsage(
            max(self.input, other.input),
            max(self.output, other.output),
            max(self.cache_creation, other.cache_creation),
            max(self.cache_read, other.cache_read),
        )

    def minus(self, other: TokenUsage) -> TokenUsage:
        """Field-by-field difference, never below zero."""
        return TokenUsage(
            max(0, self.input - other.input),
            max(0, self.output - other.output),
            max(0, self.cache_creation - other.cache_creation),
            max(0, self.cache_read - other.cache_read),
        )

    def covers(self, other: TokenUsage) -> bool:
        """Every field at least ``other``'s."""
        return (
            self.input >= other.input
            and self.output >= other.output
            and self.cache_creation >= other.cache_creation
            and self.cache_read >= other.cache_read
        )

    def as_dict(self) -> dict[str, int]:
        """The four fields plus ``total``, for reports."""
        return {
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
            "total_tokens": self.total,
        }


ZERO = TokenUsage()

_FIELDS = {
    "input": ("input_tokens", "prompt_tokens"),
    "output": ("output_tokens", "completion_tokens"),
    "cache_creation": ("cache_creation_input_tokens",),
    "cache_read": ("cache_read_input_tokens",),
}


class _BadUsage(ValueError):
    pass


def parse_usage(obj: object) -> TokenUsage | None:
    """A usage object as :class:`TokenUsage`; ``None`` when it has no token field.

    Accepts Anthropic names and OpenAI's ``prompt_tokens``/``completion_tokens``. Raises
    ``ValueError`` for a field that is not a whole, non-negative number."""
    if not isinstance(obj, Mapping):
        raise _BadUsage(f"usage is a {type(obj).__name__}, not an object")
    values: dict[str, int] = {}
    found = False
    for name, keys in _FIELDS.items():
        v: Any = 0
        for k in keys:
            if k in obj and obj[k] is not None:
                v, found = obj[k], True
                break
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _BadUsage(f"usage field for {name} tokens is {v!r}, not a number")
        if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
            raise _BadUsage(f"usage field for {name} tokens is {v!r}, not a whole number")
        if not 0 <= v <= _MAX_TOKENS:
            raise _BadUsage(f"usage field for {name} tokens is {v!r}, out of range")
        values[name] = int(v)
    return TokenUsage(**values) if found else None


@dataclass(frozen=True, slots=True)
class Delta:
    """New usage to record: how much, for which model (when known), from which line."""

    usage: TokenUsage
    model: str | None
    line_no: int
    source: str  # "message" or "cumulative"
    session: str


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A line that was skipped or added nothing unexpected: its kind, line number, why."""

    kind: str
    line_no: int
    detail: str


@dataclass
class _Session:
    key: str
    messages: TokenUsage = ZERO  # sum over this session's messages (max per message)
    cumulative: TokenUsage = ZERO  # the largest running total reported
    recorded: TokenUsage = ZERO  # what was handed out as deltas
    cost_usd: float | None = None
    results: int = 0
    has_cumulative: bool = False


@dataclass
class StreamTracker:
    """Turns the lines of one agent instance into deltas. Feed every stdout line to
    :meth:`feed`; read :attr:`total`, :attr:`anomalies` and :attr:`counts` for the report."""

    mode: UsageMode = UsageMode.AUTO
    lines: int = 0
    total: TokenUsage = ZERO
    model: str | None = None
    messages: int = 0
    results: int = 0
    last_result: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ANOMALY_KINDS, 0))
    anomalies: list[Anomaly] = field(default_factory=list)
    _msgs: dict[str, tuple[_Session, TokenUsage]] = field(default_factory=dict)
    _sessions: dict[str, _Session] = field(default_factory=dict)
    _current: str = ""
    _anon: int = 0
    _streaming_id: str | None = None

    # -- reporting ----------------------------------------------------------------------------
    def _anomaly(self, kind: str, line_no: int, detail: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= _MAX_EXAMPLES:
            self.anomalies.append(Anomaly(kind, line_no, detail))

    @property
    def sessions(self) -> int:
        """How many sessions reported anything (restarts + 1)."""
        return sum(1 for s in self._sessions.values() if self._active(s))

    @property
    def cost_usd(self) -> float | None:
        """The agent's own cost figure (``total_cost_usd``), summed over sessions."""
        costs = [s.cost_usd for s in self._sessions.values() if s.cost_usd is not None]
        return sum(costs) if costs else None

    # -- sessions -----------------------------------------------------------------------------
    def _session(self, session_id: str | None, line_no: int) -> _Session:
        cur = self._sessions.get(self._current)
        if session_id is None:
            return cur if cur is not None else self._new_anon()
        key = f"id:{session_id}"
        if key in self._sessions:
            return self._sessions[key]  # the current one, or a late line of an earlier one
        if cur is not None and cur.key.startswith("anon:"):
            # lines without a session id came first: they were this session all along
            del self._sessions[cur.key]
            cur.key = key
        else:
            if cur is not None and self._active(cur):
                self._anomaly("restart", line_no, f"new session {session_id} (was {self._label()})")
            cur = _Session(key)
        self._sessions[key] = cur
        self._current = key
        return cur

    def _label(self) -> str:
        return self._current.removeprefix("id:") if self._current else "-"

    @staticmethod
    def _active(s: _Session) -> bool:
        return s.recorded != ZERO or s.results > 0 or s.messages != ZERO

    def _new_anon(self) -> _Session:
        self._anon += 1
        key = f"anon:{self._anon}"
        self._sessions[key] = _Session(key)
        self._current = key
        return self._sessions[key]

    def _settle(self, s: _Session, line_no: int, source: str, model: str | None) -> list[Delta]:
        target = s.messages.max(s.cumulative)
        delta = target.minus(s.recorded)
        if delta == ZERO:
            return []
        s.recorded = s.recorded + delta
        self.total = self.total + delta
        return [Delta(delta, model or self.model, line_no, source, s.key)]

    # -- feeding ------------------------------------------------------------------------------
    def feed(self, line: str | bytes, line_no: int | None = None) -> list[Delta]:
        """Read one line; return the deltas it adds (usually none or one)."""
        self.lines += 1
        n = self.lines if line_no is None else line_no
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        text = line.strip()
        if not text:
            return []
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            self._anomaly("garbage", n, f"not JSON: {_clip(text)}")
            return []
        if not isinstance(obj, dict):
            self._anomaly("garbage", n, f"not a JSON object: {_clip(text)}")
            return []
        try:
            return self._feed_obj(obj, n)
        except _BadUsage as e:
            self._anomaly("bad_usage", n, str(e))
            return []

    def overlong(self, line_no: int | None = None, size: int = 0) -> None:
        """Report a line that was too long to read (its bytes were skipped)."""
        self.lines += 1
        n = self.lines if line_no is None else line_no
        self._anomaly("too_long", n, f"line of {size:,}+ bytes skipped")

    def _feed_obj(self, obj: dict[str, Any], n: int) -> list[Delta]:
        kind = obj.get("type")
        sid = obj.get("session_id")
        sid = sid if isinstance(sid, str) and sid else None
        if kind == "system" and obj.get("subtype") == "init":
            model = obj.get("model")
            if isinstance(model, str) and model:
                self.model = model
            self._session(sid, n)
            return []
        if kind == "assistant" and isinstance(obj.get("message"), dict):
            msg = obj["message"]
            usage = parse_usage(msg["usage"]) if "usage" in msg else None
            model = msg.get("model") if isinstance(msg.get("model"), str) else None
            mid = msg.get("id") if isinstance(msg.get("id"), str) and msg.get("id") else None
            if model:
                self.model = model
            if usage is None:
                return []
            if self.mode is UsageMode.CUMULATIVE:
                return self._cumulative(usage, sid, n, model)
            return self._message(mid, usage, sid, n, model)
        if kind == "stream_event" and isinstance(obj.get("event"), dict):
            return self._stream_event(obj["event"], sid, n)
        if kind == "result":
            self.results += 1
            self.last_result = {k: v for k, v in obj.items() if k != "result"}
            s = self._session(sid, n)
            s.results += 1
            cost = obj.get("total_cost_usd")
            if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
                s.cost_usd = max(s.cost_usd or 0.0, float(cost))
            usage = parse_usage(obj["usage"]) if "usage" in obj else None
            if usage is None or self.mode is UsageMode.MESSAGE:
                return []
            return self._cumulative(usage, sid, n, None)
        if "usage" in obj:
            usage = parse_usage(obj["usage"])
            if usage is None:
                return []
            return self._cumulative(usage, sid, n, None)
        return []

    def _stream_event(self, ev: dict[str, Any], sid: str | None, n: int) -> list[Delta]:
        et = ev.get("type")
        if et == "message_start" and isinstance(ev.get("message"), dict):
            msg = ev["message"]
            mid = msg.get("id") if isinstance(msg.get("id"), str) and msg.get("id") else None
            self._streaming_id = mid
            model = msg.get("model") if isinstance(msg.get("model"), str) else None
            if model:
                self.model = model
            usage = parse_usage(msg["usage"]) if "usage" in msg else None
            if usage is None or self.mode is UsageMode.CUMULATIVE:
                return []
            return self._message(mid, usage, sid, n, model)
        if et == "message_delta" and "usage" in ev:
            usage = parse_usage(ev["usage"])
            if usage is None or self.mode is UsageMode.CUMULATIVE:
                return []
            return self._message(self._streaming_id, usage, sid, n, None, partial=True)
        return []

    def _message(
        self,
        mid: str | None,
        usage: TokenUsage,
        sid: str | None,
        n: int,
        model: str | None,
        *,
        partial: bool = False,
    ) -> list[Delta]:
        if mid is None:  # no id: nothing to deduplicate by, so it counts as a new message
            mid = f"line:{n}"
        known = self._msgs.get(mid)
        if known is None:
            s = self._session(sid, n)
            self._msgs[mid] = (s, usage)
            self.messages += 1
            s.messages = s.messages + usage
            return self._settle(s, n, "message", model)
        s, old = known
        if old.covers(usage):
            if not partial:
                kind = "duplicate" if old == usage else "out_of_order"
                what = "repeats" if old == usage else "is smaller than an earlier copy of"
                self._anomaly(kind, n, f"usage {what} message {mid}")
            return []
        new = old.max(usage)
        self._msgs[mid] = (s, new)
        s.messages = s.messages + new.minus(old)
        return self._settle(s, n, "message", model)

    def _cumulative(
        self, usage: TokenUsage, sid: str | None, n: int, model: str | None
    ) -> list[Delta]:
        s = self._session(sid, n)
        if s.has_cumulative and not usage.covers(s.cumulative):
            if sid is not None:
                self._anomaly(
                    "out_of_order",
                    n,
                    f"running total {usage.total:,} below {s.cumulative.total:,} already "
                    f"seen for session {sid}",
                )
                return []
            self._anomaly(
                "restart",
                n,
                f"running total went down ({s.cumulative.total:,} → {usage.total:,}): "
                "counted as a new session",
            )
            s = self._new_anon()
        elif s.has_cumulative and usage == s.cumulative:
            self._anomaly("duplicate", n, f"running total {usage.total:,} repeated")
            return []
        s.cumulative = s.cumulative.max(usage)
        s.has_cumulative = True
        return self._settle(s, n, "cumulative", model)

    def summary(self) -> dict[str, Any]:
        """Everything the final report needs, JSON-ready."""
        return {
            "lines": self.lines,
            "messages": self.messages,
            "results": self.results,
            "sessions": self.sessions,
            "model": self.model,
            "usage": self.total.as_dict(),
            "cost_usd": self.cost_usd,
            "anomalies": {k: v for k, v in self.counts.items() if v},
            "anomaly_lines": {
                k: [a.line_no for a in self.anomalies if a.kind == k]
                for k in ANOMALY_KINDS
                if self.counts[k]
            },
        }


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
