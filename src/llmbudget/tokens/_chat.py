"""Chat requests -> prompt tokens, per model family. Each rule and its source is in
``docs/tokens.md``; the short version is next to each function here.

Input is the OpenAI chat shape, which the other providers' SDK wrappers convert to:
``[{"role": ..., "content": str | [parts] | None, "name"?: str, "tool_calls"?: [...],
"tool_call_id"?: str}, ...]`` and tools as ``[{"type": "function", "function": {"name",
"description"?, "parameters"?}}]``. Validation names the message index and field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import InvalidUsage, TokenizerError

if TYPE_CHECKING:
    from ._registry import ModelCounter

__all__ = ["count_chat_tokens"]

# OpenAI vision: 85 base tokens + 170 per 512px tile (gpt-4o, gpt-4.1, gpt-4-turbo). Without
# the image size we charge the most tiles an image can need at "high" detail: scaled to fit
# 2048x2048 then the short side to 768 gives at most 2x4 tiles.
_IMAGE_LOW = 85
_IMAGE_HIGH_MAX = 85 + 170 * 8
_IMAGE_MINI_LOW = 2833  # gpt-4o-mini bills images at 33.3x
_IMAGE_MINI_HIGH_MAX = 2833 + 5667 * 8
_TOOL_CALL_OVERHEAD = 10  # per assistant tool call, undocumented: a conservative allowance
_HARMONY_SYSTEM = (
    "You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\nCurrent date: 2025-06-28\n\nReasoning: medium\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message."
)


@dataclass(slots=True)
class _Msg:
    role: str
    text: str  # all text of the message (parts joined)
    simple: bool  # content was a plain string (or absent), no parts/tools
    name: str | None = None
    tool_call_id: str | None = None
    images: list[str] = field(default_factory=list)  # detail of each image part
    other: list[str] = field(default_factory=list)  # JSON of parts we cannot count exactly
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, arguments)


def _type(v: object) -> str:
    return "null" if v is None else type(v).__name__


def _parse(messages: object) -> list[_Msg]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise InvalidUsage(f"messages must be a list of message objects, got {_type(messages)}")
    if not messages:
        raise InvalidUsage("messages must not be empty")
    out: list[_Msg] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, Mapping):
            raise InvalidUsage(
                f"{where}: expected an object with 'role' and 'content', got {_type(m)}"
            )
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise InvalidUsage(f"{where}.role: expected a non-empty string, got {_type(role)}")
        name = m.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidUsage(f"{where}.name: expected a string, got {_type(name)}")
        tcid = m.get("tool_call_id")
        if tcid is not None and not isinstance(tcid, str):
            raise InvalidUsage(f"{where}.tool_call_id: expected a string, got {_type(tcid)}")
        msg = _Msg(role, "", True, name or None, tcid)
        content = m.get("content")
        if isinstance(content, str):
            msg.text = content
        elif content is None:
            if "content" not in m and "tool_calls" not in m:
                raise InvalidUsage(f"{where}.content: missing (give a string or a list of parts)")
        elif isinstance(content, Sequence) and not isinstance(content, bytes):
            msg.simple = False
            texts: list[str] = []
            for j, part in enumerate(content):
                pw = f"{where}.content[{j}]"
                if not isinstance(part, Mapping):
                    raise InvalidUsage(f"{pw}: expected an object with a 'type', got {_type(part)}")
                ptype = part.get("type")
                if ptype in ("text", "input_text"):
                    t = part.get("text")
                    if not isinstance(t, str):
                        raise InvalidUsage(f"{pw}.text: expected a string, got {_type(t)}")
                    texts.append(t)
                elif ptype in ("image_url", "input_image"):
                    iu = part.get("image_url")
                    detail = "auto"
                    if isinstance(iu, Mapping):
                        if not isinstance(iu.get("url"), str):
                            raise InvalidUsage(f"{pw}.image_url.url: expected a string")
                        d = iu.get("detail", "auto")
                        detail = d if isinstance(d, str) else "auto"
                    elif not isinstance(iu, str):
                        raise InvalidUsage(f"{pw}.image_url: expected an object with 'url'")
                    msg.images.append(detail)
                elif isinstance(ptype, str) and ptype:
                    msg.other.append(json.dumps(dict(part), ensure_ascii=False, default=str))
                else:
                    raise InvalidUsage(
                        f"{pw}.type: expected a string such as 'text', got {_type(ptype)}"
                    )
            msg.text = "".join(texts)
        else:
            raise InvalidUsage(
                f"{where}.content: expected a string, a list of parts or null, got {_type(content)}"
            )
        calls = m.get("tool_calls")
        if calls is not None:
            if isinstance(calls, str | bytes) or not isinstance(calls, Sequence):
                raise InvalidUsage(f"{where}.tool_calls: expected a list, got {_type(calls)}")
            msg.simple = False
            for j, call in enumerate(calls):
                cw = f"{where}.tool_calls[{j}]"
                fn = call.get("function") if isinstance(call, Mapping) else None
                if not isinstance(fn, Mapping):
                    raise InvalidUsage(
                        f"{cw}.function: expected an object with 'name' and 'arguments'"
                    )
                fname, args = fn.get("name"), fn.get("arguments", "")
                if not isinstance(fname, str) or not fname:
                    raise InvalidUsage(f"{cw}.function.name: expected a non-empty string")
                if not isinstance(args, str):
                    if isinstance(args, Mapping):
                        args = json.dumps(dict(args), ensure_ascii=False)
                    else:
                        raise InvalidUsage(f"{cw}.function.arguments: expected a JSON string")
                msg.tool_calls.append((fname, args))
        if role in ("tool", "function") or tcid is not None:
            msg.simple = False
        out.append(msg)
    return out


@dataclass(slots=True)
class _Tool:
    name: str
    description: str
    params: Mapping[str, Any]
    raw: str
    standard: bool  # fits the shape the OpenAI cookbook formula was measured on


def _parse_tools(tools: object) -> list[_Tool]:
    if tools is None:
        return []
    if isinstance(tools, str | bytes) or not isinstance(tools, Sequence):
        raise InvalidUsage(f"tools must be a list of tool definitions, got {_type(tools)}")
    out: list[_Tool] = []
    for i, t in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(t, Mapping):
            raise InvalidUsage(f"{where}: expected an object, got {_type(t)}")
        fn = t.get("function", t)  # accept the bare function object too
        if not isinstance(fn, Mapping):
            raise InvalidUsage(f"{where}.function: expected an object, got {_type(fn)}")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidUsage(f"{where}.function.name: expected a non-empty string")
        desc = fn.get("description", "")
        if not isinstance(desc, str):
            raise InvalidUsage(
                f"{where}.function.description: expected a string, got {_type(desc)}"
            )
        params = fn.get("parameters") or {}
        if not isinstance(params, Mapping):
            raise InvalidUsage(f"{where}.function.parameters: expected a JSON-schema object")
        props = params.get("properties") or {}
        if not isinstance(props, Mapping):
            raise InvalidUsage(f"{where}.function.parameters.properties: expected an object")
        standard = bool(desc) and all(
            isinstance(p, Mapping)
            and isinstance(p.get("type"), str)
            and p.get("type") not in ("object", "array")
            and isinstance(p.get("description"), str)
            and set(p) <= {"type", "description", "enum"}
            for p in props.values()
        )
        raw = json.dumps(dict(t), ensure_ascii=False, default=str)
        out.append(_Tool(name, desc, params, raw, standard))
    return out


Count = Callable[[str], int]


def _image_tokens(rule_family: str, model: str, details: list[str]) -> int:
    mini = "mini" in model.lower() and "4o" in model.lower()
    total = 0
    for d in details:
        if d == "low":
            total += _IMAGE_MINI_LOW if mini else _IMAGE_LOW
        else:
            total += _IMAGE_MINI_HIGH_MAX if mini else _IMAGE_HIGH_MAX
    return total


def _openai_tools(tools: list[_Tool], count: Count, func_init: int) -> tuple[int, bool]:
    """The OpenAI cookbook's measured formula for function definitions ("How to count tokens
    with tiktoken", section 7): func_init per function (7 for gpt-4o*, 10 for gpt-4/3.5),
    name:description, 3 per property list, 3 per property, -3 per enum list, 3 + the item per
    enum value, name:type:description per property, 12 at the end. Shapes outside what it was
    measured on (nested objects, arrays, missing descriptions) add their JSON and are flagged."""
    if not tools:
        return 0, True
    n, exact = 0, True
    for t in tools:
        n += func_init
        desc = t.description[:-1] if t.description.endswith(".") else t.description
        n += count(f"{t.name}:{desc}")
        props = t.params.get("properties") or {}
        if props:
            n += 3
            for key, p in props.items():
                n += 3
                p = p if isinstance(p, Mapping) else {}
                ptype = p.get("type", "")
                pdesc = p.get("description", "")
                pdesc = pdesc if isinstance(pdesc, str) else ""
                enum = p.get("enum")
                if isinstance(enum, Sequence) and not isinstance(enum, str):
                    n -= 3
                    for item in enum:
                        n += 3 + count(str(item))
                if pdesc.endswith("."):
                    pdesc = pdesc[:-1]
                n += count(f"{key}:{ptype if isinstance(ptype, str) else ''}:{pdesc}")
        if not t.standard:
            exact = False
            n += count(t.raw)  # conservative: the whole definition again
    return n + 12, exact


def _openai(c: ModelCounter, msgs: list[_Msg], tools: list[_Tool]) -> tuple[int, bool]:
    """OpenAI cookbook ("How to count tokens with tiktoken", section 6), checked there against
    the API: 3 tokens per message (<|start|>{role}<|message|>...<|end|>), every string field
    (role, content, name) encoded, +1 per name, +3 reply priming (<|start|>assistant<|message|>).
    """
    count = c.raw_count
    exact = c.rule.chat_exact
    n = 3
    for m in msgs:
        n += 3 + count(m.role) + count(m.text)
        if m.name:
            n += count(m.name) + 1
        if m.tool_call_id:
            n += count(m.tool_call_id)
        for fname, args in m.tool_calls:
            n += count(fname) + count(args) + _TOOL_CALL_OVERHEAD
        if m.images:
            n += _image_tokens(c.rule.family, c.model, m.images)
        for o in m.other:
            n += c.raw_count(o)
        if not m.simple or m.images or m.other:
            exact = False
    tn, texact = _openai_tools(tools, count, c.rule.func_init)
    return n + tn, exact and texact


def _harmony(c: ModelCounter, msgs: list[_Msg], tools: list[_Tool]) -> tuple[int, bool]:
    """gpt-oss (harmony format): OpenAI's per-message rule plus the system message the
    harmony renderer always adds (model identity, dates, reasoning level, channels)."""
    n, _ = _openai(c, msgs, tools)
    return n + 3 + c.raw_count("system") + c.raw_count(_HARMONY_SYSTEM), False


def _llama3(c: ModelCounter, msgs: list[_Msg], tools: list[_Tool]) -> tuple[int, bool]:
    """Meta Llama 3 chat template (tokenizer_config.json of Meta-Llama-3*-Instruct):
    <|begin_of_text|>, then per message <|start_header_id|>{role}<|end_header_id|> + "\\n\\n" +
    content.strip() + <|eot_id|>; reply priming <|start_header_id|>assistant<|end_header_id|>
    "\\n\\n". Llama 3.1+ always renders a system message starting with the knowledge/today
    dates. Text between special tokens is encoded on its own, so summing segments is exact."""
    count = c.raw_count
    exact = c.rule.chat_exact
    n = 1  # <|begin_of_text|>
    default_system = c.rule.default_system
    body = list(msgs)
    if default_system is not None:
        if body and body[0].role == "system":
            first = body.pop(0)
            sys_text = default_system + first.text.strip()
            exact = exact and first.simple
        else:
            sys_text = default_system
        n += 3 + count("system") + count("\n\n" + sys_text)
    for m in body:
        role = "ipython" if m.role in ("tool", "function") else m.role
        text = m.text.strip()
        for fname, args in m.tool_calls:
            text += json.dumps({"name": fname, "parameters": args}, ensure_ascii=False)
        n += 3 + count(role) + count("\n\n" + text)
        if m.images or m.other:
            n += sum(count(o) for o in m.other) + _image_tokens("", "", m.images)
        if not m.simple or m.images or m.other:
            exact = False
    for t in tools:
        n += count(json.dumps(json.loads(t.raw), indent=4, ensure_ascii=False)) + 2
        exact = False
    if tools:
        n += 40  # the template's tool-use instructions (conservative allowance)
    n += 2 + count("assistant") + count("\n\n")
    return n, exact


def _chatml(c: ModelCounter, msgs: list[_Msg], tools: list[_Tool]) -> tuple[int, bool]:
    """ChatML as in Qwen's chat templates: per message <|im_start|>{role}\\n{content}<|im_end|>
    then "\\n"; reply priming <|im_start|>assistant\\n. Qwen2/2.5 insert a default system
    message when none is given."""
    count = c.raw_count
    exact = c.rule.chat_exact
    n = 0
    if c.rule.default_system is not None and (not msgs or msgs[0].role != "system"):
        n += 2 + count("system\n" + c.rule.default_system) + count("\n")
    for m in msgs:
        text = m.text
        for fname, args in m.tool_calls:
            text += (
                "\n<tool_call>\n"
                + json.dumps({"name": fname, "arguments": args})
                + "\n</tool_call>"
            )
        n += 2 + count(f"{m.role}\n{text}") + count("\n")
        if m.images or m.other:
            n += sum(count(o) for o in m.other) + _image_tokens("", "", m.images)
        if not m.simple or m.images or m.other:
            exact = False
    for t in tools:
        n += count(t.raw) + 1
        exact = False
    if tools:
        n += 80  # the template's "# Tools" instructions (conservative allowance)
    n += 1 + count("assistant\n")
    return n, exact


def _anthropic(c: ModelCounter, msgs: list[_Msg], tools: list[_Tool]) -> tuple[int, bool]:
    """Claude: no public tokenizer. Every text is estimated (see the registry's factor), plus
    an allowance of 5 tokens per message and 5 for the reply, and each tool's JSON + 10
    (Anthropic adds a tool-use system prompt; calibrate from actuals). Always an estimate."""
    count = c.raw_count
    n = 5
    for m in msgs:
        n += 5 + count(m.text)
        if m.name:
            n += count(m.name)
        for fname, args in m.tool_calls:
            n += count(fname) + count(args) + _TOOL_CALL_OVERHEAD
        n += sum(count(o) for o in m.other)
        n += 1600 * len(m.images)  # Anthropic: ~ (w*h)/750, at most ~1600 per image
    for t in tools:
        n += count(t.raw) + 10
    if tools:
        n += 350  # Anthropic's documented tool-use system prompt is 346 tokens for auto choice
    return n, False


def _generic(c: ModelCounter, msgs: list[_Msg], tools: list[_Tool]) -> tuple[int, bool]:
    """Unknown template: every string plus 8 per message and 8 for the reply priming, and each
    tool's JSON; never exact."""
    count = c.raw_count
    n = 8
    for m in msgs:
        n += 8 + count(m.role) + count(m.text)
        if m.name:
            n += count(m.name)
        if m.tool_call_id:
            n += count(m.tool_call_id)
        for fname, args in m.tool_calls:
            n += count(fname) + count(args) + _TOOL_CALL_OVERHEAD
        n += sum(count(o) for o in m.other) + _image_tokens("", "", m.images)
    for t in tools:
        n += count(t.raw) + 8
    return n, False


def _mistral(
    c: ModelCounter,
    msgs: list[_Msg],
    tools: list[_Tool],
    messages: Sequence[Mapping[str, Any]],
    raw_tools: Sequence[Mapping[str, Any]] | None,
) -> tuple[int, bool]:
    """Mistral: mistral-common renders the request exactly as Mistral's API does
    (<s>[INST]...[/INST]..., system prompt before the last user message, [AVAILABLE_TOOLS])."""
    tok = c._chat_cache.get("mistral")
    if tok is None:
        try:
            from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

            from ._engines import tekken_path
        except ImportError as exc:  # pragma: no cover - engine load would have failed first
            raise TokenizerError("Mistral chat counting needs mistral-common") from exc
        path = tekken_path(c.rule.tokenizer.partition(":")[2])
        tok = MistralTokenizer.from_file(str(path))
        c._chat_cache["mistral"] = tok
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    if any(m.images or m.other for m in msgs):
        n, _ = _generic(c, msgs, tools)
        return n, False
    try:
        req = ChatCompletionRequest.from_openai(
            [dict(m) for m in messages], [dict(t) for t in raw_tools] if raw_tools else None
        )
        tokens = tok.encode_chat_completion(req).tokens
    except Exception as exc:  # mistral-common validates conversation order, tool schemas
        raise InvalidUsage(f"Mistral cannot encode this chat: {str(exc).splitlines()[0]}") from exc
    return len(tokens), c.rule.chat_exact and all(m.simple for m in msgs)


_FORMATS: dict[str, Callable[[ModelCounter, list[_Msg], list[_Tool]], tuple[int, bool]]] = {
    "openai": _openai,
    "harmony": _harmony,
    "llama3": _llama3,
    "llama3.1": _llama3,
    "chatml": _chatml,
    "anthropic": _anthropic,
    "generic": _generic,
}


def count_chat_tokens(
    counter: ModelCounter,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[int, bool]:
    """Prompt tokens and exactness of a chat request for an already resolved model."""
    msgs = _parse(messages)
    parsed_tools = _parse_tools(tools)
    fmt = counter.rule.chat
    if fmt == "mistral":
        n, exact = _mistral(counter, msgs, parsed_tools, messages, tools)
    else:
        n, exact = _FORMATS[fmt](counter, msgs, parsed_tools)
    return n, exact and counter.exact
