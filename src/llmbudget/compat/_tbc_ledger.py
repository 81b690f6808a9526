"""``Ledger`` and ``Reallocator`` of the tbcontracts API.

Both work two ways. Made by a :class:`~llmbudget.compat.tbcontracts.BudgetManager`
(``manager.ledger`` / ``manager.reallocator``) they read and write the manager's llmbudget
store: durable with SQLite, atomic across threads and processes. Made by hand (``Ledger()``,
``Reallocator(contracts, ledger)``) they keep thread-safe in-memory books, as tbcontracts does,
and borrow by the same rule as the store (:func:`llmbudget.core.ledger.plan_borrow`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .._errors import InvalidUsage
from ..core.ledger import Charge, CounterState, Donor, plan_borrow
from ..governor import check_tokens
from ._tbc_errors import UnknownAgentError
from ._tbc_telemetry import TelemetryRecorder

__all__ = ["Ledger", "LedgerEntry", "Reallocator"]


@dataclass
class LedgerEntry:
    """One recorded use of tokens: who, how many, when (POSIX seconds), and a note."""

    agent_name: str
    tokens: int
    timestamp: float
    note: str = ""


class _Backend(Protocol):
    """What a manager-bound ledger and reallocator ask of their manager."""

    def _ledger_register(self, agent_name: str, allocated_tokens: int) -> None: ...
    def _ledger_record(self, agent_name: str, tokens: int, note: str) -> None: ...
    def _ledger_numbers(self, agent_name: str) -> tuple[int, int, int]: ...
    def _ledger_adjust(self, agent_name: str, delta: int) -> None: ...
    def _ledger_history(self, agent_name: str | None) -> list[LedgerEntry]: ...
    def _ledger_agents(self) -> list[str]: ...
    def _find_donors(self, exclude: str) -> list[str]: ...
    def _reallocate(self, needy_agent: str, shortfall: int) -> int: ...
    def report(self) -> dict[str, dict[str, int]]: ...


def _unknown(agent_name: str) -> UnknownAgentError:
    return UnknownAgentError(f"Unknown agent '{agent_name}'. Register it first.")


class Ledger:
    """Allocated and consumed tokens per agent: ``remaining = allocated - consumed``.

    Allocations change when tokens are reallocated; consumption only goes up. Unknown agents
    raise :class:`UnknownAgentError` (a ``KeyError``, as tbcontracts raises).
    """

    def __init__(self) -> None:
        self._backend: _Backend | None = None
        self._lock = threading.RLock()
        self._allocated: dict[str, int] = {}
        self._consumed: dict[str, int] = {}
        self._history: list[LedgerEntry] = []

    @classmethod
    def _bound(cls, backend: _Backend) -> Ledger:
        ledger = cls()
        ledger._backend = backend
        return ledger

    def register(self, agent_name: str, allocated_tokens: int) -> None:
        """Set ``agent_name``'s allocation (consumption so far is kept)."""
        allocated = check_tokens("allocated_tokens", allocated_tokens)
        if self._backend is not None:
            self._backend._ledger_register(agent_name, allocated)
            return
        with self._lock:
            self._allocated[agent_name] = allocated
            self._consumed.setdefault(agent_name, 0)

    def record(self, agent_name: str, tokens: int, note: str = "") -> None:
        """Record exact usage (e.g. ``response.usage.total_tokens``). Never refused — the
        tokens are spent — so the agent may end up over its allocation (negative remaining).
        Negative or non-integer counts raise :class:`~llmbudget.InvalidUsage`."""
        n = check_tokens("tokens", tokens)
        if self._backend is not None:
            self._backend._ledger_record(agent_name, n, str(note))
            return
        with self._lock:
            if agent_name not in self._allocated:
                raise _unknown(agent_name)
            self._consumed[agent_name] += n
            self._history.append(LedgerEntry(agent_name, n, time.time(), str(note)))

    def _numbers(self, agent_name: str) -> tuple[int, int, int]:
        """(allocated, consumed, in flight) of ``agent_name``."""
        if self._backend is not None:
            return self._backend._ledger_numbers(agent_name)
        with self._lock:
            if agent_name not in self._allocated:
                raise _unknown(agent_name)
            return self._allocated[agent_name], self._consumed[agent_name], 0

    def remaining(self, agent_name: str) -> int:
        """Allocated minus consumed (minus tokens held by calls in flight); may be negative
        after :meth:`record` of usage beyond the allocation."""
        allocated, consumed, held = self._numbers(agent_name)
        return allocated - consumed - held

    def consumed(self, agent_name: str) -> int:
        """Tokens recorded for ``agent_name``."""
        return self._numbers(agent_name)[1]

    def allocated(self, agent_name: str) -> int:
        """``agent_name``'s allocation, with what it borrowed and minus what it lent."""
        return self._numbers(agent_name)[0]

    def adjust_allocation(self, agent_name: str, delta: int) -> None:
        """Raise (``delta > 0``) or lower an agent's allocation. On a manager's ledger this
        changes the agent's limit in the manager's policy (moves between agents are made by
        the :class:`Reallocator`, atomically); an allocation never goes below zero."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise InvalidUsage(f"delta must be a whole number of tokens, got {delta!r}")
        if self._backend is not None:
            self._backend._ledger_adjust(agent_name, delta)
            return
        with self._lock:
            if agent_name not in self._allocated:
                raise _unknown(agent_name)
            self._allocated[agent_name] += delta

    def history(self, agent_name: str | None = None) -> list[LedgerEntry]:
        """Every recorded use, oldest first (only ``agent_name``'s when given)."""
        if self._backend is not None:
            return self._backend._ledger_history(agent_name)
        with self._lock:
            return [e for e in self._history if agent_name is None or e.agent_name == agent_name]

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{agent: {"allocated", "consumed", "remaining"}}`` for every agent."""
        if self._backend is not None:
            return self._backend.report()
        with self._lock:
            return {
                name: {
                    "allocated": self._allocated[name],
                    "consumed": self._consumed[name],
                    "remaining": self._allocated[name] - self._consumed[name],
                }
                for name in self._allocated
            }


class Reallocator:
    """Moves spare allocation to an agent that is short, under tbcontracts' rules: donors of
    lower or equal priority only, the lowest priority and most idle (least used share of its
    allocation) first, never below a donor's ``min_reserve``."""

    def __init__(self, contracts: Mapping[str, Any], ledger: Ledger, telemetry: Any = None) -> None:
        self.contracts = contracts
        self.ledger = ledger
        self.telemetry: TelemetryRecorder = (
            telemetry if isinstance(telemetry, TelemetryRecorder) else TelemetryRecorder()
        )

    def _spare(self, name: str) -> int:
        min_reserve = int(getattr(self.contracts[name], "min_reserve", 0) or 0)
        return self.ledger.remaining(name) - min_reserve

    def _idle_order(self, names: list[str]) -> list[str]:
        def key(n: str) -> tuple[int, float]:
            allocated, consumed, held = self.ledger._numbers(n)
            return int(self.contracts[n].priority), (consumed + held) / max(1, allocated)

        return sorted(names, key=key)

    def find_donors(self, exclude: str) -> list[str]:
        """Agents (other than ``exclude``) with spare tokens above their reserve, in the
        order they are drawn from: lowest priority first, then most idle."""
        backend = self.ledger._backend
        if backend is not None:
            return backend._find_donors(exclude)
        with self.ledger._lock:
            names = [n for n in self.contracts if n != exclude and self._spare(n) > 0]
            return self._idle_order(names)

    def reallocate(self, needy_agent: str, shortfall: int) -> int:
        """Move up to ``shortfall`` tokens of allocation to ``needy_agent`` from eligible
        donors; returns how many moved (less than ``shortfall`` when donors cannot cover it).
        """
        if needy_agent not in self.contracts:
            raise _unknown(needy_agent)
        if isinstance(shortfall, bool) or not isinstance(shortfall, int):
            raise InvalidUsage(f"shortfall must be a whole number of tokens, got {shortfall!r}")
        if shortfall <= 0:
            return 0
        backend = self.ledger._backend
        if backend is not None:
            return backend._reallocate(needy_agent, shortfall)
        with self.ledger._lock:
            mine = int(self.contracts[needy_agent].priority)
            donors: list[tuple[Donor, CounterState | None]] = []
            for n in self.contracts:
                if n == needy_agent or int(self.contracts[n].priority) > mine:
                    continue
                allocated, consumed, held = self.ledger._numbers(n)
                reserve = int(getattr(self.contracts[n], "min_reserve", 0) or 0)
                donors.append(
                    (
                        Donor(n, n, max(0, allocated), reserve, int(self.contracts[n].priority)),
                        CounterState(n, n, used=consumed, reserved=held),
                    )
                )
            spare = sum(max(0, d.cap - s.total - d.min_reserve) for d, s in donors if s)
            want = min(shortfall, spare)
            if want <= 0:
                return 0
            plan = plan_borrow(None, Charge(needy_agent, needy_agent, want, 0), donors) or []
            for donor, amount in plan:
                self.ledger.adjust_allocation(donor.key, -amount)
                self.ledger.adjust_allocation(needy_agent, amount)
                self.telemetry.event_reallocation(needy_agent, donor.key, amount, shortfall)
            return sum(a for _, a in plan)
