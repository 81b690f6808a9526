"""Anthropic (``anthropic.Anthropic`` / ``AsyncAnthropic``): ``messages.create`` (plain and
``stream=True``) and the ``messages.stream(...)`` context manager.

Anthropic's ``input_tokens`` excludes cache reads and writes; the committed prompt is their
sum (all billed input), with ``cached_tokens`` = cache reads. Imports nothing from
``anthropic``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

from ._calls import Spec, governed
from ._core import (
    Plan,
    ProviderUsage,
    Routes,
    Settings,
    anthropic_usage,
    areserve,
    as_dict,
    make_plan,
    norm_tools,
    reserve,
    rewrap,
    settle_error,
)
from ._openai import _arg, _get
from ._stream import NOTHING, AsyncGovernedStream, GovernedStream, Meter, Piece


def _block(b: Any) -> Any:
    b = as_dict(b)
    if isinstance(b, Mapping) and b.get("type") == "image":
        # counted by the image rule, not as the JSON of its base64 data
        return {"type": "image_url", "image_url": {"url": "anthropic-image"}}
    return b


def _content(c: Any) -> Any:
    if c is None or isinstance(c, str):
        return c if c is not None else ""
    return [_block(b) for b in c]


def plan(settings: Settings, kwargs: dict[str, Any]) -> Plan:
    msgs: list[dict[str, Any]] = []
    system = _arg(kwargs, "system")
    if system is not None:
        msgs.append({"role": "system", "content": _content(system)})
    for m in _arg(kwargs, "messages") or ():
        m = as_dict(m)
        if isinstance(m, Mapping):
            msgs.append({"role": m.get("role") or "user", "content": _content(m.get("content"))})
    if not msgs:
        msgs.append({"role": "user", "content": ""})
    return make_plan(
        settings,
        kwargs,
        provider="anthropic",
        operation="messages",
        messages=msgs,
        tools=norm_tools(_arg(kwargs, "tools")),
        max_tokens=_arg(kwargs, "max_tokens"),
    )


def response_usage(resp: Any) -> ProviderUsage | None:
    return anthropic_usage(_get(resp, "usage"))


_DELTA_TEXT = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
}


class MessagesReader:
    """Raw stream events: ``message_start`` carries the input usage, ``content_block_delta``
    the output text / tool JSON / thinking, ``message_delta`` the final (cumulative) output
    usage. The helper stream's derived events (``text``, ``input_json``...) are skipped so
    nothing is counted twice."""

    __slots__ = ("start",)

    def __init__(self, plan: Plan) -> None:
        self.start: Any = None

    def read(self, event: Any) -> Piece:
        kind = _get(event, "type")
        if kind == "content_block_delta":
            delta = _get(event, "delta")
            key = _DELTA_TEXT.get(_get(delta, "type") or "")
            v = _get(delta, key) if key else None
            return Piece(v) if isinstance(v, str) and v else NOTHING
        if kind == "message_start":
            u = _get(_get(event, "message"), "usage")
            self.start = as_dict(u)
            early = anthropic_usage(u)
            return Piece(prompt=early.prompt_tokens) if early is not None else NOTHING
        if kind == "message_delta":
            u = as_dict(_get(event, "usage"))
            if not isinstance(u, Mapping):
                return NOTHING
            merged = dict(self.start) if isinstance(self.start, Mapping) else {}
            merged.update({k: v for k, v in u.items() if v is not None})
            return Piece(usage=anthropic_usage(merged))
        return NOTHING


MESSAGES = Spec(plan, response_usage, MessagesReader)


# -- messages.stream(...) --------------------------------------------------------------------
class GovernedMessageStream(GovernedStream):
    """``messages.stream(...)``'s stream, governed: iterate it for events, or use
    ``text_stream`` / ``get_final_message()`` / ``get_final_text()`` as with the SDK."""

    @property
    def text_stream(self) -> Iterator[str]:
        for ev in self:
            if _get(ev, "type") == "content_block_delta":
                d = _get(ev, "delta")
                if _get(d, "type") == "text_delta":
                    yield _get(d, "text")

    def get_final_message(self) -> Any:
        self.until_done()
        if self.cut_off:
            return self._inner.current_message_snapshot
        return self._inner.get_final_message()

    def get_final_text(self) -> str:
        self.until_done()
        return self.text if self.cut_off else str(self._inner.get_final_text())


class AsyncGovernedMessageStream(AsyncGovernedStream):
    @property
    def text_stream(self) -> Any:
        async def gen() -> Any:
            async for ev in self:
                if _get(ev, "type") == "content_block_delta":
                    d = _get(ev, "delta")
                    if _get(d, "type") == "text_delta":
                        yield _get(d, "text")

        return gen()

    async def get_final_message(self) -> Any:
        await self.until_done()
        if self.cut_off:
            return self._inner.current_message_snapshot
        return await self._inner.get_final_message()

    async def get_final_text(self) -> str:
        await self.until_done()
        return self.text if self.cut_off else str(await self._inner.get_final_text())


class GovernedStreamManager:
    """Reserves when entered (``with``), so :class:`~llmbudget.BudgetExceeded` is raised
    before anything is sent; leaving commits and closes."""

    def __init__(self, settings: Settings, method: Any, args: Any, kwargs: dict[str, Any]):
        self._settings = settings
        self._plan = plan(settings, kwargs)
        self._plan.stream = True
        self._method = method
        self._args = args
        self._kwargs = kwargs
        self._stream: Any = None

    def __enter__(self) -> GovernedMessageStream:
        p = self._plan
        res = reserve(self._settings, p)
        try:
            self._mgr = self._method(*self._args, **self._kwargs)
            inner = self._mgr.__enter__()
        except BaseException as e:
            settle_error(res, p, e)
            raise
        self._stream = GovernedMessageStream(
            inner, Meter(res, p), MessagesReader(p), self._settings.on_cutoff
        )
        return self._stream  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.close()

    async def __aenter__(self) -> AsyncGovernedMessageStream:
        p = self._plan
        res = await areserve(self._settings, p)
        try:
            self._mgr = self._method(*self._args, **self._kwargs)
            inner = await self._mgr.__aenter__()
        except BaseException as e:
            await asyncio.to_thread(settle_error, res, p, e)
            raise
        self._stream = AsyncGovernedMessageStream(
            inner, Meter(res, p), MessagesReader(p), self._settings.on_cutoff
        )
        return self._stream  # type: ignore[no-any-return]

    async def __aexit__(self, *exc: object) -> None:
        if self._stream is not None:
            await self._stream.close()


def _stream_route(settings: Settings, method: Any) -> Any:
    def stream(*args: Any, **kwargs: Any) -> GovernedStreamManager:
        return GovernedStreamManager(settings, method, args, kwargs)

    return stream


def routes() -> Routes:
    r: dict[str, Any] = {"messages": {"create": governed(MESSAGES), "stream": _stream_route}}
    r["with_options"] = rewrap(r)
    r["copy"] = rewrap(r)
    return r
