"""The values that cross the store boundary, and the one counting rule every store applies.

A *counter* is one budget's total for one partition (e.g. ``run=abc``) in one window (e.g.
``day:2026-11-26``). Its state is ``used`` (committed), ``reserved`` (in flight) and
``granted`` (extra headroom a person approved for this window). A :class:`Charge` asks a store
to add ``amount`` to a counter's ``reserved``; the store grants a set of charges only if every
one of them :func:`fits`, and then applies all of them — one atomic step.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Charge:
    """``amount`` units against counter ``key`` of budget ``budget``.

    ``cap`` is the refusing threshold (the store refuses if the counter would pass
    ``cap + granted``); ``None`` means never refuse (mode ``warn``, or a plain ``record``).
    ``window_id`` / ``window_end`` (POSIX seconds, ``None`` for lifetime) and ``partition``
    describe the counter so a store can create it and later expire it.
    """

    key: str
    budget: str
    amount: int
    cap: int | None
    window_id: str = "run"
    window_end: float | None = None
    partition: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CounterState:
    """A counter as a store holds it. ``level`` is the highest level index ever announced for
    this counter in its window (so each level is announced once); ``flagged`` marks it for
    review."""

    key: str
    budget: str
    window_id: str = "run"
    window_end: float | None = None
    partition: tuple[tuple[str, str], ...] = ()
    used: int = 0
    reserved: int = 0
    granted: int = 0
    level: int = 0

    @property
    def total(self) -> int:
        """Committed plus in flight."""
        return self.used + self.reserved


def fits(state: CounterState | None, amount: int, cap: int | None) -> bool:
    """The counting rule: would adding ``amount`` keep this counter within ``cap + granted``?

    A zero amount always fits (it reserves nothing). Every store applies exactly this rule,
    inside its atomic step (Redis and PostgreSQL re-state it in Lua and SQL).
    """
    if cap is None or amount <= 0:
        return True
    used = state.used if state else 0
    reserved = state.reserved if state else 0
    granted = state.granted if state else 0
    return used + reserved + amount <= cap + granted


@dataclass(frozen=True, slots=True)
class ReserveOutcome:
    """The result of an atomic reserve (or extend).

    ``ok``: granted (all charges applied) or refused (none applied). ``counters`` holds each
    charged counter's state *after* the step when granted, *as found* when refused, in charge
    order. ``refused`` is the key of the first counter that did not fit.
    """

    ok: bool
    counters: tuple[CounterState, ...]
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What a call actually used, prompt and completion apart (cached and reasoning tokens
    are included in prompt and completion respectively, as providers bill them). ``cost_micros``
    is the USD cost in millionths of a dollar, or ``None`` if the price is unknown."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_micros: int | None = None

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ReservationMeta:
    """What a store keeps about a reservation besides its charges, so that any process can
    settle it: its labels and the estimate it was made with."""

    labels: tuple[tuple[str, str], ...]
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One settled call (or recorded usage) as the ledger keeps it.

    ``settled`` is false for a reservation whose lease expired and was charged at its
    estimate. ``at`` is a POSIX timestamp. ``id`` is the reservation id or idempotency key.
    """

    id: str
    at: float
    labels: dict[str, str]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_micros: int | None = None
    estimated_prompt: int | None = None
    estimated_completion: int | None = None
    settled: bool = True


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """Counters after a commit/record; ``duplicate`` when the id was already settled (the
    step changed nothing: commits are idempotent)."""

    counters: tuple[CounterState, ...]
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Approval:
    """A request for a person to grant more headroom to one counter in its window."""

    id: str
    key: str
    budget: str
    window_id: str
    requested: int
    state: str  # "pending" | "approved" | "denied"
    created_at: float
    labels: dict[str, str] = field(default_factory=dict)
    granted: int = 0
    resolved_at: float | None = None
    resolved_by: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """A governance event worth keeping: a level reached (warn/alert/flag), an approval asked,
    granted or denied, a lease expired. ``data`` holds the details."""

    at: float
    kind: str
    budget: str = ""
    key: str = ""
    message: str = ""
    data: dict[str, object] = field(default_factory=dict)
