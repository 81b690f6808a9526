"""The values that cross the store boundary, and the one counting rule every store applies.

These are plain (non-frozen) slotted dataclasses because they are built several times per
governed call and frozen ones cost about five times as much to create; treat them as
read-only values all the same — every step builds new ones.

A *counter* is one budget's total for one partition (e.g. ``run=abc``) in one window (e.g.
``day:2026-11-26``). Its state is ``used`` (committed), ``reserved`` (in flight) and
``granted`` (extra headroom a person approved for this window). A :class:`Charge` asks a store
to add ``amount`` to a counter's ``reserved``; the store grants a set of charges only if every
one of them :func:`fits`, and then applies all of them — one atomic step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class Donor:
    """A pool member a short counter may borrow headroom from, in the same atomic step.

    ``key``/``budget``/``window_id``/``window_end``/``partition`` name the donor's counter
    (created if missing), ``cap`` its refusing threshold, ``min_reserve`` what it always keeps,
    ``priority`` its importance (donors are tried from the lowest priority, most idle first).
    """

    key: str
    budget: str
    cap: int
    min_reserve: int = 0
    priority: int = 0
    window_id: str = "run"
    window_end: float | None = None
    partition: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Transfer:
    """Headroom moved from a donor counter to a borrowing one (an auditable event)."""

    donor: str
    donor_budget: str
    to: str
    to_budget: str
    amount: int


@dataclass(slots=True)
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
    borrow: tuple[Donor, ...] = ()


@dataclass(slots=True)
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
    borrowed: int = 0
    lent: int = 0
    closed: bool = False

    @property
    def total(self) -> int:
        """Committed plus in flight."""
        return self.used + self.reserved

    @property
    def headroom(self) -> int:
        """What this window adds to (or takes from) the cap: approvals plus borrowed minus
        lent."""
        return self.granted + self.borrowed - self.lent


def evolve(
    st: CounterState,
    *,
    used: int | None = None,
    reserved: int | None = None,
    borrowed: int | None = None,
    lent: int | None = None,
) -> CounterState:
    """A copy of ``st`` with new counts (a fast ``dataclasses.replace`` for the hot path)."""
    return CounterState(
        st.key,
        st.budget,
        st.window_id,
        st.window_end,
        st.partition,
        st.used if used is None else used,
        st.reserved if reserved is None else reserved,
        st.granted,
        st.level,
        st.borrowed if borrowed is None else borrowed,
        st.lent if lent is None else lent,
        st.closed,
    )


def fits(state: CounterState | None, amount: int, cap: int | None) -> bool:
    """The counting rule: would adding ``amount`` keep this counter within its cap plus its
    headroom (approvals, borrowed minus lent)? ``cap`` ``None`` never refuses (mode ``warn``,
    or usage being recorded). A counter closed by a confidence gate refuses every enforced
    charge, even of zero. Every store applies exactly this rule inside its atomic step (Redis
    and PostgreSQL re-state it in Lua and SQL).
    """
    if cap is None:
        return True
    if state is None:
        return amount <= cap
    if state.closed:
        return False
    return amount <= 0 or state.used + state.reserved + amount <= cap + state.headroom


def spare(donor: Donor, state: CounterState | None) -> int:
    """What ``donor`` can lend now without going below its ``min_reserve`` (never negative)."""
    if state is None:
        return max(0, donor.cap - donor.min_reserve)
    return max(0, donor.cap + state.headroom - state.total - donor.min_reserve)


def plan_borrow(
    state: CounterState | None,
    charge: Charge,
    donors: list[tuple[Donor, CounterState | None]],
) -> list[tuple[Donor, int]] | None:
    """How to cover a charge that does not :func:`fits` by borrowing from its pool: donors
    of the lowest priority first and, among equals, the most idle (least used share of their
    cap) first, each down to its ``min_reserve`` at most. ``None`` when they cannot cover it
    (or the counter is closed). Every store applies exactly this rule in its atomic step."""
    if charge.cap is None or (state is not None and state.closed):
        return None
    total = state.total if state else 0
    headroom = state.headroom if state else 0
    short = total + charge.amount - (charge.cap + headroom)
    if short <= 0:
        return []

    def order(item: tuple[Donor, CounterState | None]) -> tuple[int, float]:
        d, st = item
        used = st.total if st else 0
        return d.priority, used / max(1, d.cap + (st.headroom if st else 0))

    plan = []
    for d, st in sorted(donors, key=order):
        take = min(short, spare(d, st))
        if take > 0:
            plan.append((d, take))
            short -= take
        if short == 0:
            return plan
    return None


@dataclass(slots=True)
class ReserveOutcome:
    """The result of an atomic reserve (or extend).

    ``ok``: granted (all charges applied) or refused (none applied). ``counters`` holds each
    charged counter's state *after* the step when granted, *as found* when refused, in charge
    order. ``refused`` is the key of the first counter that did not fit (its state says
    whether it was ``closed``). ``transfers``: headroom borrowed from pool members.
    ``touched``: every counter the step changed, donors included (for stores to write back).
    """

    ok: bool
    counters: tuple[CounterState, ...]
    refused: str | None = None
    transfers: tuple[Transfer, ...] = ()
    touched: tuple[CounterState, ...] = ()


@dataclass(slots=True)
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


@dataclass(slots=True)
class ReservationMeta:
    """What a store keeps about a reservation besides its charges, so that any process can
    settle it: its labels and the estimate it was made with."""

    labels: tuple[tuple[str, str], ...]
    prompt_tokens: int
    completion_tokens: int


@dataclass(slots=True)
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


@dataclass(slots=True)
class CommitOutcome:
    """Counters after a commit/record; ``duplicate`` when the id was already settled (the
    step changed nothing: commits are idempotent)."""

    counters: tuple[CounterState, ...]
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Approval:
    """A request for a person to grant more headroom to one counter in its window
    (``window_end`` and ``partition`` describe that counter, so a grant can create it)."""

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
    window_end: float | None = None
    partition: tuple[tuple[str, str], ...] = ()


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


def _blank(
    key: str,
    budget: str,
    window_id: str,
    window_end: float | None,
    partition: tuple[tuple[str, str], ...],
) -> CounterState:
    return CounterState(key, budget, window_id, window_end, partition)


def apply_reserve(
    found: Mapping[str, CounterState],
    charges: Sequence[Charge],
    load: Callable[[list[str]], Mapping[str, CounterState]] | None = None,
) -> ReserveOutcome:
    """The whole atomic reserve as a pure function over the counters a store read (by key:
    the charged counters; donors are fetched through ``load`` only when a charge must borrow,
    else they must already be in ``found``; missing ones are new). Returns the outcome, whose
    ``counters`` are the charged counters after (or as found), and ``touched`` every counter
    the step changed (donors too).

    Memory and SQLite call this inside their lock / transaction; Redis and PostgreSQL restate
    it in Lua and SQL.
    """
    work: dict[str, CounterState] = {}

    def get(key: str) -> CounterState | None:
        return work.get(key) or found.get(key)

    def own(ch: Charge) -> CounterState:
        st = get(ch.key)
        if st is None:
            return _blank(ch.key, ch.budget, ch.window_id, ch.window_end, ch.partition)
        if st.window_end is None and ch.window_end is not None:  # made by an approval
            return CounterState(
                st.key,
                st.budget,
                ch.window_id,
                ch.window_end,
                ch.partition,
                st.used,
                st.reserved,
                st.granted,
                st.level,
                st.borrowed,
                st.lent,
                st.closed,
            )
        return st

    transfers: list[Transfer] = []
    after = []
    for ch in charges:  # each charge is applied before the next is checked: a donor that
        st = get(ch.key)  # this same call also charges is seen with that charge held
        if not fits(st, ch.amount, ch.cap):
            plan = None
            if ch.borrow and ch.amount > 0:
                if load is not None:  # donors are read only when a charge has to borrow
                    missing = [d.key for d in ch.borrow if d.key not in found and d.key not in work]
                    if missing:
                        found = {**found, **load(missing)}
                plan = plan_borrow(st, ch, [(d, get(d.key)) for d in ch.borrow])
            if plan is None:
                as_found = tuple(
                    found.get(c.key)
                    or _blank(c.key, c.budget, c.window_id, c.window_end, c.partition)
                    for c in charges
                )
                return ReserveOutcome(False, as_found, ch.key)
            me = own(ch)
            for d, amount in plan:
                ds = get(d.key) or _blank(d.key, d.budget, d.window_id, d.window_end, d.partition)
                work[d.key] = evolve(ds, lent=ds.lent + amount)
                me = evolve(me, borrowed=me.borrowed + amount)
                transfers.append(Transfer(d.key, d.budget, ch.key, ch.budget, amount))
            work[ch.key] = me
        me = own(ch)
        me = evolve(me, reserved=me.reserved + ch.amount)
        work[ch.key] = me
        after.append(me)
    return ReserveOutcome(True, tuple(after), None, tuple(transfers), tuple(work.values()))
