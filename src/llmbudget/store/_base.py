"""The store interface: the one place that holds counters, reservations, events, approvals.

Stores only count; they do not know budgets, levels or modes. Each method is one atomic step
(one lock hold in memory, one ``BEGIN IMMEDIATE`` transaction in SQLite; one Lua script in Redis
and one transaction in PostgreSQL), so a step is either applied whole or not at all.

Reservation lifecycle (``rid`` is the reservation id)::

    reserve ──► active ──commit──► committed       (idempotent: a second commit changes nothing)
                  │  ▲   release──► released
                  │  └── extend (more for a running stream, same all-or-none rule)
                  └── lease expires ──sweep──► expired: charged at its estimate, unsettled;
                                               a late commit then corrects it to the actuals
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence

from .._errors import StoreError
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
)
from ..core.samples import EstimateSample

SCHEMA_VERSION = 1


class Store(abc.ABC):
    """Abstract ledger store. See the module docstring for the lifecycle.

    ``now`` arguments are POSIX seconds from the governor's clock, so tests can move time.
    """

    url: str = ""
    #: whether this store implements pools (``Charge.borrow``) and confidence gates
    #: (:meth:`close_counters`); the governor refuses a policy that needs them otherwise
    supports_pools: bool = False

    # -- the atomic steps -------------------------------------------------------------------
    @abc.abstractmethod
    def reserve(
        self,
        rid: str,
        charges: Sequence[Charge],
        meta: ReservationMeta,
        lease_until: float,
        now: float,
    ) -> ReserveOutcome:
        """Apply every charge to its counter's ``reserved``, or none if any does not
        :func:`~llmbudget.core.ledger.fits`. Expired leases are swept first."""

    @abc.abstractmethod
    def extend(
        self, rid: str, charges: Sequence[Charge], lease_until: float, now: float
    ) -> ReserveOutcome:
        """Add more to an active reservation (same all-or-none rule) and renew its lease.
        Raises :class:`~llmbudget.ReservationError` if ``rid`` is not active."""

    @abc.abstractmethod
    def commit(
        self, rid: str, actual: Mapping[str, int], usage: Usage, now: float
    ) -> CommitOutcome:
        """Replace the reservation with actual usage: for each counter key, ``reserved -=``
        what was reserved and ``used +=`` ``actual[key]``; write one usage event. The event is
        stamped with the reservation's creation time (the ``now`` given to :meth:`reserve`),
        not with this ``now``, so it falls in the same window as its counters; so is the event
        a sweep writes for an expired lease, and a late commit that corrects it. A second
        commit of the same ``rid`` changes nothing (``duplicate=True``; its ``counters`` may
        then be empty). A commit after the lease expired corrects the estimate it was charged
        at."""

    @abc.abstractmethod
    def release(self, rid: str, now: float) -> tuple[CounterState, ...]:
        """Free an active reservation (the call failed or was not made) and return the
        counters it changed. Releasing an *expired* one (already charged at its estimate)
        takes that charge back and settles its event at zero: the caller says the call did not
        happen. Releasing a released or committed reservation changes nothing (the result may
        then be empty)."""

    @abc.abstractmethod
    def record(
        self,
        event_id: str,
        charges: Sequence[Charge],
        labels: Mapping[str, str],
        usage: Usage,
        now: float,
    ) -> CommitOutcome:
        """Add usage that already happened (no reservation, never refused). ``event_id`` is an
        idempotency key: recording it twice changes nothing the second time."""

    @abc.abstractmethod
    def sweep(self, now: float) -> int:
        """Settle every reservation whose lease ended before ``now`` at its estimate (its event
        is stamped with the reservation's creation time, as in :meth:`commit`); return how
        many were settled."""

    # -- reading ------------------------------------------------------------------------------
    @abc.abstractmethod
    def counters(
        self, keys: Sequence[str] | None = None, *, active_at: float | None = None
    ) -> list[CounterState]:
        """Counters by key (missing ones omitted), or all counters whose window has not ended
        at ``active_at`` (all of them when ``None``)."""

    @abc.abstractmethod
    def events(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Iterable[UsageEvent]:
        """Usage events in time order, optionally in ``[since, until)`` and matching labels
        exactly."""

    @abc.abstractmethod
    def estimate_samples(
        self, *, model: str | None = None, operation: str | None = None, limit: int = 1000
    ) -> list[EstimateSample]:
        """The most recent settled events that carry an estimate, newest first."""

    @abc.abstractmethod
    def reservation_state(self, rid: str) -> str | None:
        """``active``/``committed``/``released``/``expired``, or ``None`` if unknown. An id
        that only names a recorded event (``record``) is ``committed``."""

    # -- levels, audit, approvals ---------------------------------------------------------------
    def close_counters(self, keys: Sequence[str]) -> list[str]:
        """Close these counters for the rest of their window (a confidence gate): every
        later charge on them is refused. Returns the keys that were open until now."""
        raise StoreError(
            f"the {type(self).__name__} store ({self.url}) has no confidence "
            "gates yet; use the memory or SQLite store for this policy"
        )

    @abc.abstractmethod
    def raise_level(self, key: str, level: int) -> int:
        """Set the counter's announced level to ``max(current, level)``; return the previous
        value, so exactly one caller announces each level."""

    @abc.abstractmethod
    def audit(self, event: AuditEvent) -> None:
        """Append a governance event."""

    @abc.abstractmethod
    def audit_events(self, *, kind: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """The most recent governance events, newest first."""

    @abc.abstractmethod
    def request_approval(self, approval: Approval) -> Approval:
        """Store a pending approval request, unless one is already pending or denied for the
        same counter: then return that one instead (one request per counter and window)."""

    @abc.abstractmethod
    def approvals(self, *, state: str | None = None, key: str | None = None) -> list[Approval]:
        """Approval requests, newest first, optionally filtered."""

    @abc.abstractmethod
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
        """Approve (adding ``tokens``, default the requested amount, to the counter's
        ``granted``) or deny a request. Raises :class:`~llmbudget.NotFound` for an unknown id
        and :class:`~llmbudget.InvalidUsage` for one already approved."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the store is unusable afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
