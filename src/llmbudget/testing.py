"""Helpers for testing code that uses llmbudget: a clock you move by hand, and a sink that
captures every governance event. Shipped with the package, as users need them too.

>>> from llmbudget.testing import FakeClock
>>> clock = FakeClock("2026-01-31T23:59:00Z")
>>> clock.advance(minutes=2).isoformat()
'2026-02-01T00:01:00+00:00'
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from .core.ledger import AuditEvent

__all__ = ["CapturedEvents", "FakeClock"]


class FakeClock:
    """A clock that only moves when told. Thread-safe.

    ``start`` is an aware datetime or an ISO-8601 string (``Z`` allowed); default
    2026-01-01T00:00:00Z.
    """

    def __init__(self, start: datetime | str = "2026-01-01T00:00:00Z") -> None:
        self._lock = threading.Lock()
        self._now = self._parse(start)

    @staticmethod
    def _parse(value: datetime | str) -> datetime:
        dt = (
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            if isinstance(value, str)
            else value
        )
        if dt.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime (add a UTC offset or 'Z')")
        return dt.astimezone(UTC)

    def now(self) -> datetime:
        """The clock's current instant."""
        with self._lock:
            return self._now

    def set(self, when: datetime | str) -> datetime:
        """Jump to ``when`` (forwards or backwards) and return it."""
        with self._lock:
            self._now = self._parse(when)
            return self._now

    def advance(self, seconds: float = 0, **kwargs: float) -> datetime:
        """Move forwards by ``seconds`` plus any ``timedelta`` keywords; return the new now."""
        with self._lock:
            self._now += timedelta(seconds=seconds, **kwargs)
            return self._now


class CapturedEvents:
    """A governance-event sink that keeps every event in ``events``; pass it as
    ``Governor(..., on_event=captured)``."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: AuditEvent) -> None:
        with self._lock:
            self.events.append(event)

    def kinds(self) -> list[str]:
        """The kinds of the captured events, in order."""
        with self._lock:
            return [e.kind for e in self.events]
