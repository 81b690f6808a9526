"""An in-process store: dictionaries behind one lock. Thread-safe, not shared across
processes, gone when the process ends. For tests, backtests (``replay``) and single-process
apps that keep nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from .._errors import InvalidUsage, NotFound, ReservationError
from ..core.ledger import (
    Approval,
    AuditEvent,
    Charge,
    CommitOutcome,
    CounterState,
    ReservationMeta,
    ReserveOutcome,
    Usage,
    UsageEvent,
    apply_reserve,
    evolve,
)
from ..core.samples import EstimateSample
from ._base import Store


@dataclass
class _Reservation:
    charges: dict[str, int]
    meta: ReservationMeta
    lease_until: float
    created: float
    state: str = "active"
    event_index: int | None = None
    actual: dict[str, int] = field(default_factory=dict)


class MemoryStore(Store):
    """Counters, reservations and events in memory. ``MemoryStore()`` or ``memory://``."""

    supports_pools = True

    def __init__(self) -> None:
        self.url = "memory://"
        self._lock = threading.Lock()
        self._counters: dict[str, CounterState] = {}
        self._res: dict[str, _Reservation] = {}
        self._events: list[UsageEvent] = []
        self._event_ids: dict[str, int] = {}
        self._audit: list[AuditEvent] = []
        self._approvals: dict[str, Approval] = {}
        self._active: dict[str, _Reservation] = {}  # reservations that hold tokens now
        self._next_expiry = float("inf")  # no active lease ends before this

    # -- helpers (lock held) ------------------------------------------------------------------
    def _counter(self, ch: Charge) -> CounterState:
        st = self._counters.get(ch.key)
        if st is None:
            st = CounterState(ch.key, ch.budget, ch.window_id, ch.window_end, ch.partition)
            self._counters[ch.key] = st
        return st

    def _add(self, key: str, used: int = 0, reserved: int = 0) -> CounterState:
        st = self._counters[key]
        st = evolve(st, used=st.used + used, reserved=st.reserved + reserved)
        self._counters[key] = st
        return st

    def _try(self, charges: Sequence[Charge]) -> ReserveOutcome:
        counters = self._counters
        out = apply_reserve(
            {c.key: counters[c.key] for c in charges if c.key in counters},
            charges,
            lambda keys: {k: counters[k] for k in keys if k in counters},
        )
        if out.ok:
            for st in out.touched:
                self._counters[st.key] = st
        return out

    def _sweep(self, now: float) -> int:
        if now <= self._next_expiry:  # nothing can have expired yet
            return 0
        n = 0
        nxt = float("inf")
        for rid, r in list(self._active.items()):
            if r.lease_until >= now:
                nxt = min(nxt, r.lease_until)
                continue
            for key, amount in r.charges.items():
                self._add(key, used=amount, reserved=-amount)
            r.state = "expired"
            del self._active[rid]
            r.event_index = self._append_event(
                UsageEvent(
                    rid,
                    r.created,  # the reservation's window, like its counters
                    dict(r.meta.labels),
                    r.meta.prompt_tokens,
                    r.meta.completion_tokens,
                    estimated_prompt=r.meta.prompt_tokens,
                    estimated_completion=r.meta.completion_tokens,
                    settled=False,
                )
            )
            n += 1
        self._next_expiry = nxt
        return n

    def _append_event(self, ev: UsageEvent) -> int:
        self._events.append(ev)
        self._event_ids[ev.id] = len(self._events) - 1
        return len(self._events) - 1

    # -- atomic steps -------------------------------------------------------------------------
    def reserve(
        self,
        rid: str,
        charges: Sequence[Charge],
        meta: ReservationMeta,
        lease_until: float,
        now: float,
    ) -> ReserveOutcome:
        with self._lock:
            if rid in self._res:
                raise ReservationError(f"reservation id {rid!r} is already in use")
            self._sweep(now)
            out = self._try(charges)
            if out.ok:
                held: dict[str, int] = {}
                for c in charges:  # a counter charged twice holds both amounts
                    held[c.key] = held.get(c.key, 0) + c.amount
                r = _Reservation(held, meta, lease_until, now)
                self._res[rid] = self._active[rid] = r
                self._next_expiry = min(self._next_expiry, lease_until)
            return out

    def extend(
        self, rid: str, charges: Sequence[Charge], lease_until: float, now: float
    ) -> ReserveOutcome:
        with self._lock:
            r = self._res.get(rid)
            if r is None or r.state != "active":
                state = r.state if r else "unknown"
                raise ReservationError(f"cannot extend reservation {rid!r}: it is {state}")
            out = self._try(charges)
            if out.ok:
                for c in charges:
                    r.charges[c.key] = r.charges.get(c.key, 0) + c.amount
                r.lease_until = lease_until
                self._next_expiry = min(self._next_expiry, lease_until)
            return out

    def commit(
        self, rid: str, actual: Mapping[str, int], usage: Usage, now: float
    ) -> CommitOutcome:
        with self._lock:
            r = self._res.get(rid)
            if r is None:
                raise ReservationError(f"cannot commit reservation {rid!r}: unknown id")
            if r.state == "committed":
                return CommitOutcome(tuple(self._counters[k] for k in r.charges), True)
            if r.state == "released":
                raise ReservationError(f"cannot commit reservation {rid!r}: it was released")
            for key, reserved in r.charges.items():
                amount = actual.get(key, 0)
                if r.state == "expired":  # charged at the estimate already: correct it
                    self._add(key, used=amount - reserved)
                else:
                    self._add(key, used=amount, reserved=-reserved)
            ev = UsageEvent(
                rid,
                r.created,  # the window it was reserved in, like its counters
                dict(r.meta.labels),
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens,
                usage.reasoning_tokens,
                usage.cost_micros,
                r.meta.prompt_tokens,
                r.meta.completion_tokens,
                True,
            )
            if r.event_index is not None:
                self._events[r.event_index] = ev
            else:
                r.event_index = self._append_event(ev)
            r.state = "committed"
            self._active.pop(rid, None)
            return CommitOutcome(tuple(self._counters[k] for k in r.charges))

    def release(self, rid: str, now: float) -> tuple[CounterState, ...]:
        with self._lock:
            r = self._res.get(rid)
            if r is None:
                raise ReservationError(f"cannot release reservation {rid!r}: unknown id")
            if r.state == "active":
                for key, amount in r.charges.items():
                    self._add(key, reserved=-amount)
                r.state = "released"
                self._active.pop(rid, None)
            elif r.state == "expired":  # charged at its estimate; the call did not happen
                for key, amount in r.charges.items():
                    self._add(key, used=-amount)
                if r.event_index is not None:
                    ev = self._events[r.event_index]
                    self._events[r.event_index] = UsageEvent(
                        ev.id,
                        ev.at,
                        ev.labels,
                        0,
                        0,
                        estimated_prompt=ev.estimated_prompt,
                        estimated_completion=ev.estimated_completion,
                        settled=True,
                    )
                r.state = "released"
            return tuple(self._counters[k] for k in r.charges)

    def record(
        self,
        event_id: str,
        charges: Sequence[Charge],
        labels: Mapping[str, str],
        usage: Usage,
        now: float,
    ) -> CommitOutcome:
        with self._lock:
            if event_id in self._event_ids:
                return CommitOutcome(
                    tuple(self._counters[c.key] for c in charges if c.key in self._counters),
                    True,
                )
            after = []
            for ch in charges:
                self._counter(ch)
                after.append(self._add(ch.key, used=ch.amount))
            self._append_event(
                UsageEvent(
                    event_id,
                    now,
                    dict(labels),
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.cached_tokens,
                    usage.reasoning_tokens,
                    usage.cost_micros,
                )
            )
            return CommitOutcome(tuple(after))

    def sweep(self, now: float) -> int:
        with self._lock:
            return self._sweep(now)

    # -- reading ------------------------------------------------------------------------------
    def counters(
        self, keys: Sequence[str] | None = None, *, active_at: float | None = None
    ) -> list[CounterState]:
        with self._lock:
            if keys is not None:
                return [self._counters[k] for k in keys if k in self._counters]
            return [
                c
                for c in self._counters.values()
                if active_at is None or c.window_end is None or c.window_end > active_at
            ]

    def events(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Iterable[UsageEvent]:
        with self._lock:
            evs = sorted(self._events, key=lambda e: e.at)
        for e in evs:
            if since is not None and e.at < since:
                continue
            if until is not None and e.at >= until:
                continue
            if labels and any(e.labels.get(k) != v for k, v in labels.items()):
                continue
            yield e

    def estimate_samples(
        self, *, model: str | None = None, operation: str | None = None, limit: int = 1000
    ) -> list[EstimateSample]:
        with self._lock:
            evs = list(reversed(self._events))
        out = []
        for e in evs:
            if not e.settled or e.estimated_completion is None or e.estimated_prompt is None:
                continue
            m, op = e.labels.get("model", ""), e.labels.get("operation", "")
            if (model is not None and m != model) or (operation is not None and op != operation):
                continue
            out.append(
                EstimateSample(
                    m,
                    op,
                    e.estimated_prompt,
                    e.prompt_tokens,
                    e.estimated_completion,
                    e.completion_tokens,
                    e.at,
                )
            )
            if len(out) >= limit:
                break
        return out

    def reservation_state(self, rid: str) -> str | None:
        with self._lock:
            r = self._res.get(rid)
            if r is None:
                return "committed" if rid in self._event_ids else None
            return r.state

    # -- levels, audit, approvals ---------------------------------------------------------------
    def close_counters(self, keys: Sequence[str]) -> list[str]:
        with self._lock:
            newly = []
            for k in keys:
                st = self._counters.get(k)
                if st is not None and not st.closed:
                    self._counters[k] = replace(st, closed=True)
                    newly.append(k)
            return newly

    def raise_level(self, key: str, level: int) -> int:
        with self._lock:
            st = self._counters.get(key)
            if st is None:
                return level
            prev = st.level
            if level > prev:
                self._counters[key] = replace(st, level=level)
            return prev

    def audit(self, event: AuditEvent) -> None:
        with self._lock:
            self._audit.append(event)

    def audit_events(self, *, kind: str | None = None, limit: int = 100) -> list[AuditEvent]:
        with self._lock:
            evs = [e for e in reversed(self._audit) if kind is None or e.kind == kind]
        return evs[:limit]

    def request_approval(self, approval: Approval) -> Approval:
        with self._lock:
            for a in self._approvals.values():
                if a.key == approval.key and a.state in ("pending", "denied"):
                    return a
            self._approvals[approval.id] = approval
            return approval

    def approvals(self, *, state: str | None = None, key: str | None = None) -> list[Approval]:
        with self._lock:
            out = [
                a
                for a in self._approvals.values()
                if (state is None or a.state == state) and (key is None or a.key == key)
            ]
        return sorted(out, key=lambda a: a.created_at, reverse=True)

    def resolve_approval(
        self,
        approval_id: str,
        *,
        approve: bool,
        tokens: int | None,
        by: str,
        note: str,
        now: float,
    ) -> Approval:
        with self._lock:
            a = self._approvals.get(approval_id)
            if a is None:
                raise NotFound(
                    f"no approval request {approval_id!r}; list them with `llmbudget approvals`"
                )
            if a.state == "approved":
                raise InvalidUsage(f"approval request {approval_id!r} was already approved")
            grant = (a.requested if tokens is None else tokens) if approve else 0
            a = replace(
                a,
                state="approved" if approve else "denied",
                granted=grant,
                resolved_at=now,
                resolved_by=by,
                note=note,
            )
            self._approvals[approval_id] = a
            if approve:
                st = self._counters.get(a.key) or CounterState(
                    a.key, a.budget, a.window_id, a.window_end, a.partition
                )
                self._counters[a.key] = replace(st, granted=st.granted + grant)
            return a
