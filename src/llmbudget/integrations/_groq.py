"""Groq (``groq.Groq`` / ``AsyncGroq``): OpenAI-compatible chat completions. Groq reports
stream usage in the last chunk's ``x_groq.usage`` (and, with ``stream_options``, in
``usage``); both are read."""

from __future__ import annotations

from typing import Any

from ._calls import Spec, governed
from ._core import ProviderUsage, Routes, openai_usage, rewrap
from ._openai import ChatReader, _get, chat_plan, chat_response_usage


class GroqChatReader(ChatReader):
    __slots__ = ()

    def usage_of(self, chunk: Any) -> ProviderUsage | None:
        u = openai_usage(_get(chunk, "usage"))
        if u is None:
            x = _get(chunk, "x_groq")
            u = openai_usage(_get(x, "usage")) if x is not None else None
        return u


CHAT = Spec(chat_plan("groq", stream_options=False), chat_response_usage, GroqChatReader)


def routes() -> Routes:
    r: dict[str, Any] = {"chat": {"completions": {"create": governed(CHAT)}}}
    r["with_options"] = rewrap(r)
    r["copy"] = rewrap(r)
    return r
