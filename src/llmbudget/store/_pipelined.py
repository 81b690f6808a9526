"""The I/O-free half of pipelined commits (``?commit=pipelined`` on the Redis store).

A pipelined commit is written to the server and not waited for: its reply is read before the
next step on the same connection (or at ``close()``). The commit must still answer with the
counters after it, so the store remembers, for each reservation it made and has not settled,
what its reserve answered: the charged counters after the reserve, the amount held on each,
and the lease end. The counters after the commit are then those plus this call's settlement
(``used + actual``, ``reserved - held``); what other clients did since the reserve is not in
them (it is in the next step's answer).

Anything unusual commits synchronously instead (the store gets ``None``): a reservation this
object did not make or already settled (a repeated commit, an unknown or released id: their
errors and duplicate answers come back at once), and one whose lease is within
``LEASE_MARGIN`` seconds of ending (the server may settle it at its estimate first; a late
commit's correction is the server's to compute).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..core.ledger import Charge, CounterState, evolve

__all__ = ["LEASE_MARGIN", "Held"]

LEASE_MARGIN = 2.0  # seconds before its lease ends that a reservation commits synchronously


@dataclass(slots=True)
class _Entry:
    lease_until: float
    counters: dict[str, CounterState]  # charged counters after the reserve / last extend
    held: dict[str, int]  # amount held per counter key


class Held:
    """Reservations made through one store object and not yet settled by it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_rid: dict[str, _Entry] = {}
        self._prune_at = 1024

    def __len__(self) -> int:
        return len(self._by_rid)

    def reserved(
        self,
        rid: str,
        lease_until: float,
        charges: Sequence[Charge],
        after: Sequence[CounterState],
        now: float,
    ) -> None:
        """A granted reserve (``after``: the charged counters after it, in charge order).
        Reservations whose lease ended before ``now`` are forgotten from time to time (never
        settled through this object: abandoned, or settled by another process)."""
        held: dict[str, int] = {}
        for c in charges:
            held[c.key] = held.get(c.key, 0) + int(c.amount)
        entry = _Entry(lease_until, {c.key: c for c in after}, held)
        with self._lock:
            self._by_rid[rid] = entry
            if len(self._by_rid) >= self._prune_at:
                ended = [r for r, e in self._by_rid.items() if e.lease_until < now]
                for r in ended:
                    del self._by_rid[r]
                self._prune_at = max(1024, 2 * len(self._by_rid))

    def extended(
        self,
        rid: str,
        lease_until: float,
        charges: Sequence[Charge],
        after: Sequence[CounterState],
    ) -> None:
        """A granted extend: more held, a later lease, newer counters."""
        with self._lock:
            entry = self._by_rid.get(rid)
            if entry is None:
                return
            for c in charges:
                entry.held[c.key] = entry.held.get(c.key, 0) + int(c.amount)
            entry.counters.update((c.key, c) for c in after)
            entry.lease_until = lease_until

    def forget(self, rid: str) -> None:
        """Released, or committed synchronously: nothing to remember."""
        with self._lock:
            self._by_rid.pop(rid, None)

    def settle(
        self, rid: str, actual: Mapping[str, int], now: float
    ) -> tuple[CounterState, ...] | None:
        """The counters after committing ``actual`` (per counter key), or ``None`` when this
        commit must wait for the server's answer (see the module docstring). Either way the
        reservation is no longer remembered."""
        with self._lock:
            entry = self._by_rid.pop(rid, None)
        if entry is None or now >= entry.lease_until - LEASE_MARGIN:
            return None
        out = []
        for key, c in entry.counters.items():
            held = entry.held.get(key, 0)
            out.append(
                evolve(c, used=c.used + int(actual.get(key, 0)), reserved=max(0, c.reserved - held))
            )
        return tuple(out)
