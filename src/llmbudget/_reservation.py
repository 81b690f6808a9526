"""A granted reservation: the handle a caller commits, extends or releases."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ._errors import InvalidUsage, ReservationError
from .core.decide import Decision, Target, charges, evaluate
from .core.ledger import Usage

if TYPE_CHECKING:
    from .governor import Governor

log = logging.getLogger("llmbudget")


class Reservation:
    """Tokens held for one call until it settles.

    ``prompt_tokens`` / ``completion_tokens`` are what is currently held (extensions add to
    ``completion_tokens``); ``decision`` is how every budget stood when it was granted.
    As a context manager (``with`` / ``async with``): an exception releases it; leaving
    without :meth:`commit` settles it at its estimate (conservative) and logs a warning.
    """

    def __init__(
        self,
        gov: Governor,
        rid: str,
        labels: dict[str, str],
        targets: Sequence[Target],
        prompt_tokens: int,
        completion_tokens: int,
        decision: Decision | Callable[[], Decision],
        lease_seconds: float,
        *,
        counted: bool = False,
    ) -> None:
        self.id = rid
        self.labels = labels
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self._decision = decision
        self.usage: Usage | None = None
        self._gov = gov
        self._targets = tuple(targets)
        self._lease = lease_seconds
        self._open = True
        self._counted = counted  # the prompt was counted by us: compare with the provider

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return (
            f"<Reservation {self.id[:8]} {state} prompt={self.prompt_tokens} "
            f"completion={self.completion_tokens}>"
        )

    @property
    def decision(self) -> Decision:
        """How every budget stood when this reservation was granted (built on first use)."""
        if not isinstance(self._decision, Decision):
            self._decision = self._decision()
        return self._decision

    @property
    def state(self) -> str:
        """The ledger's view: ``active``, ``committed``, ``released`` or ``expired``."""
        return self._gov.store.reservation_state(self.id) or "unknown"

    def extend(self, completion_tokens: int) -> Decision:
        """Hold ``completion_tokens`` more (a stream outran its reservation), atomically
        against every budget. Raises :class:`~llmbudget.BudgetExceeded` if any refuses — the
        caller should then stop the stream and :meth:`commit` what it used."""
        from .governor import check_tokens

        more = check_tokens("completion_tokens", completion_tokens)
        if not self._open:
            raise ReservationError(f"reservation {self.id} is already settled")
        gov = self._gov
        now = gov.clock.now()
        amounts = gov._amounts(self._targets, self.labels, 0, more)
        chs = charges(gov.policy, self._targets, amounts)
        out = gov.store.extend(self.id, chs, now.timestamp() + self._lease, now.timestamp())
        decision = evaluate(
            gov.policy,
            self._targets,
            [c.amount for c in chs],
            out.counters,
            applied=out.ok,
            refused_key=out.refused,
        )
        if not out.ok:
            gov._refuse(decision, self.labels, now)
        self.completion_tokens += more
        gov._announce(decision, self.labels, now.timestamp())
        return decision

    def commit(
        self,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        *,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
        confidence: float | None = None,
    ) -> Decision:
        """Replace the reservation with what the call used (prompt and completion apart).
        Omitted counts default to the reserved estimate. Idempotent: a second commit changes
        nothing and returns the same standing. ``confidence`` (0 to 1) is how sure the agent
        is of its result: it closes every budget whose ``confidence_threshold`` it reaches,
        for the rest of that counter's window (further calls raise ConfidenceReached)."""
        from .governor import check_usage

        if confidence is not None and (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not 0.0 <= confidence <= 1.0  # NaN fails this too
        ):
            raise InvalidUsage(f"confidence must be a number from 0 to 1, got {confidence!r}")

        p, c, cached, reasoning = check_usage(
            self.prompt_tokens if prompt_tokens is None else prompt_tokens,
            self.completion_tokens if completion_tokens is None else completion_tokens,
            cached_tokens,
            reasoning_tokens,
        )
        gov = self._gov
        if self._counted and prompt_tokens is not None and "model" in self.labels:
            from .tokens import check_prompt_mismatch

            check_prompt_mismatch(self.labels["model"], self.prompt_tokens, p)
        amounts = gov._amounts(self._targets, self.labels, p, c, cached, settle=True)
        actual = {t.key: amounts.of(t.budget) for t in self._targets}
        usage = Usage(p, c, cached, reasoning, amounts.cost_micros)
        now = gov.clock.now().timestamp()
        if confidence is not None:  # close first: a crash in between errs on refusing
            gov._gate(self._targets, float(confidence), self.labels, now)
        out = gov.store.commit(self.id, actual, usage, now)
        self._open = False
        if not out.duplicate:
            self.usage = usage
        counters = out.counters
        if not counters and out.duplicate:  # a repeated commit: read where things stand
            counters = tuple(gov.store.counters([t.key for t in self._targets]))
        return gov._settled(self._targets, counters, self.labels, now)

    def release(self) -> None:
        """Give the held tokens back (the call failed or was not made). Safe to repeat."""
        if not self._open:
            return
        self._gov.store.release(self.id, self._gov.clock.now().timestamp())
        self._open = False

    @property
    def settled(self) -> bool:
        """True once committed or released through this handle."""
        return not self._open

    # -- context managers ---------------------------------------------------------------------
    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._open:
            return
        if exc_type is not None:
            self.release()
        else:
            log.warning(
                "reservation %s left without commit: settled at its estimate "
                "(%d prompt + %d completion tokens)",
                self.id[:8],
                self.prompt_tokens,
                self.completion_tokens,
            )
            self.commit()

    async def __aenter__(self) -> Reservation:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await asyncio.to_thread(self.__exit__, exc_type, exc, tb)


async def reserve_off_loop(make: Callable[[], Reservation]) -> Reservation:
    """Run a blocking ``reserve`` in a worker thread. If the awaiting task is cancelled while
    the thread still runs, the reservation it then makes is released at once (in that
    thread) instead of being held until its lease ends."""
    abandoned = threading.Event()

    def run() -> Reservation:
        res = make()
        if abandoned.is_set():
            res.release()
        return res

    task = asyncio.ensure_future(asyncio.to_thread(run))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        abandoned.set()

        def release(t: asyncio.Future[Reservation]) -> None:  # it landed just before
            if not t.cancelled() and t.exception() is None:
                t.result().release()

        task.add_done_callback(release)
        raise
