"""OpenAI (``openai.OpenAI`` / ``AsyncOpenAI`` / Azure): chat completions (``create`` and
``parse``), responses (``create`` and ``parse``) and embeddings (``create``). Groq's SDK
reuses the chat parts.

Imports nothing from ``openai``: requests and responses are read by attribute/key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sized
from typing import Any

from ._calls import Spec, governed
from ._core import (
    Plan,
    ProviderUsage,
    Routes,
    Settings,
    as_dict,
    make_plan,
    norm_messages,
    norm_tools,
    openai_usage,
    plan_labels,
    rewrap,
)
from ._stream import NOTHING, Piece


def _get(obj: Any, name: str) -> Any:
    if type(obj) is dict:  # the hot path reads SDK model objects: avoid the ABC check
        return obj.get(name)
    v = getattr(obj, name, None)
    if v is None and isinstance(obj, Mapping):
        return obj.get(name)
    return v


def _given(v: Any) -> bool:
    """The SDKs use a NOT_GIVEN / Omit sentinel for absent arguments."""
    return v is not None and type(v).__name__ not in ("NotGiven", "Omit")


def _arg(kwargs: Mapping[str, Any], name: str) -> Any:
    v = kwargs.get(name)
    return v if _given(v) else None


def ask_for_stream_usage(kwargs: dict[str, Any]) -> bool:
    """Merge ``include_usage: true`` into the caller's ``stream_options``; True when the
    caller had not asked for it (so the usage-only chunk is hidden from them)."""
    opts = _arg(kwargs, "stream_options")
    opts = dict(as_dict(opts)) if isinstance(as_dict(opts), Mapping) else {}
    asked = bool(opts.get("include_usage"))
    opts["include_usage"] = True
    kwargs["stream_options"] = opts
    return not asked


# -- chat completions ----------------------------------------------------------------------
def chat_plan(provider: str, *, stream_options: bool = True) -> Any:
    """``stream_options``: the SDK takes ``stream_options`` (OpenAI's does; Groq's SDK has
    no such argument and Groq reports stream usage in ``x_groq.usage`` unasked)."""

    def plan(settings: Settings, kwargs: dict[str, Any]) -> Plan:
        tools = _arg(kwargs, "tools")
        functions = _arg(kwargs, "functions")  # the legacy shape
        if tools is None and functions is not None:
            tools = [{"type": "function", "function": as_dict(f)} for f in functions]
        max_tokens = _arg(kwargs, "max_completion_tokens")
        if max_tokens is None:
            max_tokens = _arg(kwargs, "max_tokens")
        p = make_plan(
            settings,
            kwargs,
            provider=provider,
            operation="chat.completions",
            messages=norm_messages(_arg(kwargs, "messages")),
            tools=norm_tools(tools),
            max_tokens=max_tokens,
            choices=_arg(kwargs, "n"),
        )
        if p.stream and stream_options:
            p.hide_usage_chunk = ask_for_stream_usage(kwargs)
        return p

    return plan


def chat_response_usage(resp: Any) -> ProviderUsage | None:
    return openai_usage(_get(resp, "usage"))


class ChatReader:
    """Chat completion chunks: content, refusal and tool-call argument deltas count as
    output; the usage chunk (no choices) carries the provider's usage."""

    __slots__ = ("hide",)

    def __init__(self, plan: Plan) -> None:
        self.hide = plan.hide_usage_chunk

    def usage_of(self, chunk: Any) -> ProviderUsage | None:
        return openai_usage(_get(chunk, "usage"))

    def read(self, chunk: Any) -> Piece:
        choices = _get(chunk, "choices") or ()
        parts: list[str] = []
        for ch in choices:
            delta = _get(ch, "delta")
            if delta is None:
                continue
            for key in ("content", "refusal", "reasoning", "reasoning_content"):
                v = _get(delta, key)
                if isinstance(v, str) and v:
                    parts.append(v)
            for call in _get(delta, "tool_calls") or ():
                fn = _get(call, "function")
                if fn is None:
                    continue
                for key in ("name", "arguments"):
                    v = _get(fn, key)
                    if isinstance(v, str) and v:
                        parts.append(v)
        usage = self.usage_of(chunk)
        if not parts and usage is None:
            return NOTHING
        return Piece("".join(parts), usage, hide=self.hide and usage is not None and not choices)


CHAT = Spec(chat_plan("openai"), chat_response_usage, ChatReader)


# -- responses -----------------------------------------------------------------------------
def _responses_messages(kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``instructions`` + ``input`` (a string or a list of items) as chat messages."""
    msgs: list[dict[str, Any]] = []
    instructions = _arg(kwargs, "instructions")
    if isinstance(instructions, str) and instructions:
        msgs.append({"role": "system", "content": instructions})
    inp = _arg(kwargs, "input")
    if isinstance(inp, str):
        msgs.append({"role": "user", "content": inp})
    elif inp is not None:
        for item in inp:
            item = as_dict(item)
            if not isinstance(item, Mapping):
                continue
            role = item.get("role")
            if isinstance(role, str) and role:
                content = item.get("content")
                msgs.append({"role": role, "content": content if content is not None else ""})
            else:  # function_call, function_call_output, reasoning...: count their JSON
                import json

                msgs.append({"role": "tool", "content": json.dumps(dict(item), default=str)})
    if not msgs:
        msgs.append({"role": "user", "content": ""})
    return msgs


def responses_plan(settings: Settings, kwargs: dict[str, Any]) -> Plan:
    return make_plan(
        settings,
        kwargs,
        provider="openai",
        operation="responses",
        messages=_responses_messages(kwargs),
        tools=norm_tools(_arg(kwargs, "tools")),
        max_tokens=_arg(kwargs, "max_output_tokens"),
    )


_RESPONSE_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
        "response.custom_tool_call_input.delta",
    }
)
_RESPONSE_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesReader:
    """Responses API events: ``*.delta`` text counts; the final ``response.completed`` /
    ``incomplete`` / ``failed`` event carries the usage."""

    __slots__ = ()

    def __init__(self, plan: Plan) -> None:
        pass

    def read(self, event: Any) -> Piece:
        kind = _get(event, "type")
        if kind in _RESPONSE_DELTAS:
            d = _get(event, "delta")
            return Piece(d) if isinstance(d, str) else NOTHING
        if kind in _RESPONSE_ENDS:
            return Piece(usage=openai_usage(_get(_get(event, "response"), "usage")))
        return NOTHING


RESPONSES = Spec(responses_plan, chat_response_usage, ResponsesReader)


# -- embeddings ----------------------------------------------------------------------------
def _is_token_id(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (not isinstance(v, str) and hasattr(v, "__index__"))


def _embedding_input(kwargs: dict[str, Any]) -> list[Any]:
    """``input`` as a list of items (strings, token ids, or lists of token ids). One-shot
    iterables (generators) are materialized and put back, so the SDK sends what we counted."""
    inp = _arg(kwargs, "input")
    if inp is None:
        return []
    if isinstance(inp, str) or not isinstance(inp, Iterable):
        return [inp]
    items = list(inp)
    one_shot = not isinstance(inp, Sized)
    if any(isinstance(x, Iterable) and not isinstance(x, Sized) for x in items):
        items = [
            list(x) if isinstance(x, Iterable) and not isinstance(x, Sized) else x for x in items
        ]
        one_shot = True
    if one_shot:
        kwargs["input"] = items
    return items


def embeddings_plan(settings: Settings, kwargs: dict[str, Any]) -> Plan:
    """Prompt: every input string counted with the model's tokenizer, token ids as
    themselves (one token each); completion: 0. Embeddings are never streamed."""
    from ..tokens import counter_for

    model, labels = plan_labels(settings, kwargs, provider="openai", operation="embeddings")
    counter = counter_for(model)
    prompt = 0
    for item in _embedding_input(kwargs):
        if isinstance(item, str):
            prompt += counter.count_text(item)
        elif _is_token_id(item):
            prompt += 1
        elif isinstance(item, Sized):  # a list of token ids
            prompt += len(item)
        else:  # not a shape the API takes; the provider will refuse it
            prompt += counter.count_text(str(item))
    return Plan(model, labels, prompt, 0, counter)


EMBEDDINGS = Spec(embeddings_plan, chat_response_usage, ChatReader)


def routes() -> Routes:
    r: dict[str, Any] = {
        "chat": {"completions": {"create": governed(CHAT), "parse": governed(CHAT)}},
        "responses": {"create": governed(RESPONSES), "parse": governed(RESPONSES)},
        "embeddings": {"create": governed(EMBEDDINGS)},
    }
    r["with_options"] = rewrap(r)
    r["copy"] = rewrap(r)
    return r
