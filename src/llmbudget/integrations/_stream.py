"""Streaming accounting shared by every SDK: count deltas as they arrive with the model's
tokenizer, extend the reservation in steps when the stream outruns it, cut the stream off
when an extension is refused, and commit what was used.

The cut-off contract (INV-TOK-003), the same for every provider:

* the delta that would overrun the budget is *withheld*: it is neither yielded nor counted,
  so what is committed is exactly what the caller received (prompt + counted deltas), which
  never exceeds what the budgets granted;
* the SDK stream is closed at once (the HTTP response is closed, so the provider stops
  generating);
* iteration ends with :class:`~llmbudget.BudgetExceeded` whose ``.partial`` is a
  :class:`PartialResult` (text so far, its usage, ``finish_reason="budget"``) — or, on a
  client made with ``.with_cutoff("stop")``, ends quietly; either way the stream object's
  ``.cut_off`` is true and ``.partial`` holds the same result.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import BudgetExceeded
from ._core import OnCutoff, Plan, ProviderUsage

if TYPE_CHECKING:
    from .._reservation import Reservation

__all__ = ["AsyncGovernedStream", "GovernedStream", "PartialResult", "Piece"]

log = logging.getLogger("llmbudget")
MIN_STEP = 256  # extend by max(25% of the original completion reservation, 256 tokens)


@dataclass(frozen=True, slots=True)
class PartialResult:
    """What a stream delivered before it ended early (cut at the budget, closed by the
    caller, or broken).

    ``text``: the streamed text (and tool-call argument fragments) in order;
    ``prompt_tokens`` / ``completion_tokens``: what was committed for it;
    ``usage_source``: ``"provider"`` when the provider's usage block arrived, else
    ``"counted"`` (our count of the prompt and of every delivered delta);
    ``finish_reason``: ``"budget"`` when cut off, ``"closed"`` when the caller closed it,
    ``"error"`` when it broke; ``chunks``: items delivered to the caller.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    usage_source: str
    chunks: int


@dataclass(frozen=True, slots=True)
class Piece:
    """What one streamed item means for the budget: ``text`` to count (output deltas),
    ``usage`` when the provider's final usage is in it, ``prompt`` when the provider
    reported the input count early (Anthropic's message_start), and ``hide`` when the item
    exists only because we asked for usage (the caller never asked for it)."""

    text: str = ""
    usage: ProviderUsage | None = None
    prompt: int | None = None
    hide: bool = False


NOTHING = Piece()


class Reader(Protocol):
    def read(self, item: Any) -> Piece: ...


class Meter:
    """The budget side of one stream; no I/O of its own besides the reservation's store
    calls (which the async face runs in a worker thread)."""

    def __init__(self, res: Reservation, plan: Plan) -> None:
        self.res = res
        self.plan = plan
        self.step = max(MIN_STEP, math.ceil(res.completion_tokens / 4))
        self.counted = 0
        self.chunks = 0
        self.parts: list[str] = []
        self.usage: ProviderUsage | None = None
        self.provider_prompt: int | None = None
        self.prompt_excess = 0
        self.error: BudgetExceeded | None = None
        self.finish_reason = ""
        self.settled = False

    def note(self, piece: Piece) -> None:
        if piece.usage is not None:
            self.usage = piece.usage
        if piece.prompt is not None:
            self.provider_prompt = piece.prompt
            # the provider counts more input than we reserved: that excess must fit too
            self.prompt_excess = max(0, piece.prompt - self.plan.prompt_tokens)

    def measure(self, text: str) -> int:
        return self.plan.counter.count_text(text) if text else 0

    def overrun(self, n: int) -> int:
        """Tokens the reservation lacks to hold ``n`` more (0 when it fits)."""
        return max(0, self.counted + self.prompt_excess + n - self.res.completion_tokens)

    def grow(self, need: int) -> bool:
        """Extend by a step (or at least ``need``); when refused, try exactly ``need`` so
        the budget is used to the last token. False (and ``error`` set) when cut."""
        try:
            self.res.extend(max(self.step, need))
            return True
        except BudgetExceeded as e:
            if need >= self.step:
                self.error = e
                return False
        try:
            self.res.extend(need)
            return True
        except BudgetExceeded as e:
            self.error = e
            return False

    def accept(self, text: str, n: int) -> None:
        self.counted += n
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def totals(self) -> tuple[int, int]:
        if self.usage is not None:
            return self.usage.prompt_tokens, self.usage.completion_tokens
        prompt = (
            self.provider_prompt if self.provider_prompt is not None else self.plan.prompt_tokens
        )
        return prompt, self.counted

    def partial(self) -> PartialResult:
        p, c = self.totals()
        return PartialResult(
            self.text,
            p,
            c,
            self.finish_reason or "stop",
            "provider" if self.usage is not None else "counted",
            self.chunks,
        )

    def settle(self) -> None:
        """Commit once: the provider's usage if it arrived, else our own count."""
        if self.settled:
            return
        self.settled = True
        u = self.usage
        if u is not None:
            self.res.commit(
                prompt_tokens=u.prompt_tokens,
                completion_tokens=u.completion_tokens,
                cached_tokens=u.cached_tokens,
                reasoning_tokens=u.reasoning_tokens,
            )
            return
        if not self.finish_reason:
            log.warning(
                "llmbudget: %s stream for %s ended without a usage block; charged our count",
                self.plan.labels.get("provider"),
                self.plan.model,
            )
        p, c = self.totals()
        self.res.commit(prompt_tokens=p, completion_tokens=c)

    def safe_settle(self) -> None:
        try:
            self.settle()
        except Exception:
            log.exception("llmbudget: could not settle stream reservation %s", self.res.id[:8])


class _Base:
    """State and read-only views shared by both faces."""

    def __init__(self, inner: Any, meter: Meter, reader: Reader, on_cutoff: OnCutoff) -> None:
        self._inner = inner
        self._meter = meter
        self._reader = reader
        self._on_cutoff = on_cutoff
        self._done = False

    @property
    def cut_off(self) -> bool:
        """True when the budget refused an extension and the stream was cut."""
        return self._meter.finish_reason == "budget"

    @property
    def text(self) -> str:
        """The text (and tool-argument fragments) streamed so far."""
        return self._meter.text

    @property
    def partial(self) -> PartialResult:
        """What was delivered so far and its usage (final once the stream has ended)."""
        return self._meter.partial()

    @property
    def usage(self) -> ProviderUsage | None:
        """The provider's usage block, once it has arrived."""
        return self._meter.usage

    @property
    def budget_error(self) -> BudgetExceeded | None:
        """The refusal that cut the stream, if it was cut."""
        return self._meter.error

    @property
    def reservation(self) -> Reservation:
        return self._meter.res

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _step(self, item: Any) -> tuple[bool, int, Piece]:
        """(needs more budget?, tokens, piece) for one item; counts nothing yet."""
        piece = self._reader.read(item)
        self._meter.note(piece)
        n = self._meter.measure(piece.text)
        return self._meter.overrun(n) > 0, n, piece

    def _cut_signal(self) -> BudgetExceeded | None:
        err = self._meter.error
        if self._on_cutoff == "stop" or err is None:
            return None
        return err.with_partial(self._meter.partial())


class GovernedStream(_Base):
    """A governed synchronous stream: iterate it like the SDK's stream (same items); it is
    also a context manager, and ``close()`` closes the SDK stream and commits."""

    def __init__(
        self, inner: Any, meter: Meter, reader: Reader, on_cutoff: OnCutoff = "raise"
    ) -> None:
        super().__init__(inner, meter, reader, on_cutoff)
        self._it: Iterator[Any] = iter(inner)

    def __iter__(self) -> GovernedStream:
        return self

    def __next__(self) -> Any:
        m = self._meter
        while not self._done:
            try:
                item = next(self._it)
            except StopIteration:
                self._done = True
                m.settle()
                raise
            except BaseException:
                self._done = True
                m.finish_reason = "error"
                m.safe_settle()
                raise
            try:
                more, n, piece = self._step(item)
                if more and not m.grow(m.overrun(n)):
                    self._cut()
                    err = self._cut_signal()
                    if err is not None:
                        raise err
                    raise StopIteration
                if piece.text:
                    m.accept(piece.text, n)
            except (BudgetExceeded, StopIteration):
                raise
            except BaseException:
                self._abort()
                raise
            if piece.hide:
                continue
            m.chunks += 1
            return item
        raise StopIteration

    def _cut(self) -> None:
        self._done = True
        self._meter.finish_reason = "budget"
        self._close_inner()
        self._meter.settle()

    def _abort(self) -> None:
        self._done = True
        self._meter.finish_reason = "error"
        self._close_inner()
        self._meter.safe_settle()

    def _close_inner(self) -> None:
        try:
            self._inner.close()
        except Exception:
            log.debug("llmbudget: closing the SDK stream failed", exc_info=True)

    def __del__(self) -> None:
        # abandoned (e.g. `break` out of the loop, never closed): close the SDK stream and
        # commit what was delivered, rather than holding the reservation until its lease ends
        if not self.__dict__.get("_done", True):
            self._done = True
            self._meter.finish_reason = self._meter.finish_reason or "abandoned"
            self._close_inner()
            self._meter.safe_settle()

    def close(self) -> None:
        """Stop reading, close the SDK stream and commit what was used."""
        if not self._done:
            self._done = True
            self._meter.finish_reason = self._meter.finish_reason or "closed"
            self._close_inner()
            self._meter.settle()

    def until_done(self) -> None:
        """Read the stream to its end."""
        for _ in self:
            pass

    def __enter__(self) -> GovernedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGovernedStream(_Base):
    """The asyncio face of :class:`GovernedStream` (``async for``, ``async with``,
    ``await close()``); store calls run in a worker thread."""

    def __init__(
        self, inner: Any, meter: Meter, reader: Reader, on_cutoff: OnCutoff = "raise"
    ) -> None:
        super().__init__(inner, meter, reader, on_cutoff)
        self._it: AsyncIterator[Any] = inner.__aiter__()

    def __aiter__(self) -> AsyncGovernedStream:
        return self

    async def __anext__(self) -> Any:
        m = self._meter
        while not self._done:
            try:
                item = await self._it.__anext__()
            except StopAsyncIteration:
                self._done = True
                await asyncio.to_thread(m.settle)
                raise
            except BaseException:
                self._done = True
                m.finish_reason = "error"
                await asyncio.to_thread(m.safe_settle)
                raise
            try:
                more, n, piece = self._step(item)
                if more and not await asyncio.to_thread(m.grow, m.overrun(n)):
                    await self._cut()
                    err = self._cut_signal()
                    if err is not None:
                        raise err
                    raise StopAsyncIteration
                if piece.text:
                    m.accept(piece.text, n)
            except (BudgetExceeded, StopAsyncIteration):
                raise
            except BaseException:
                self._done = True
                m.finish_reason = "error"
                await self._close_inner()
                await asyncio.to_thread(m.safe_settle)
                raise
            if piece.hide:
                continue
            m.chunks += 1
            return item
        raise StopAsyncIteration

    async def _cut(self) -> None:
        self._done = True
        self._meter.finish_reason = "budget"
        await self._close_inner()
        await asyncio.to_thread(self._meter.settle)

    async def _close_inner(self) -> None:
        try:
            await self._inner.close()
        except Exception:
            log.debug("llmbudget: closing the SDK stream failed", exc_info=True)

    def __del__(self) -> None:
        # abandoned without `await close()`: commit what was delivered (the SDK's async stream
        # is left to its own finaliser)
        if not self.__dict__.get("_done", True):
            self._done = True
            self._meter.finish_reason = self._meter.finish_reason or "abandoned"
            self._meter.safe_settle()

    async def close(self) -> None:
        """Stop reading, close the SDK stream and commit what was used."""
        if not self._done:
            self._done = True
            self._meter.finish_reason = self._meter.finish_reason or "closed"
            await self._close_inner()
            await asyncio.to_thread(self._meter.settle)

    async def until_done(self) -> None:
        """Read the stream to its end."""
        async for _ in self:
            pass

    async def __aenter__(self) -> AsyncGovernedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
