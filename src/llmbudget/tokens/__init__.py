"""Model-specific token counting, prices, completion estimates and calibration.

Counting::

    from llmbudget import tokens
    tokens.count_text("gpt-4o", "hello world")          # TokenCount(tokens=2, ...)
    tokens.count_chat("llama-3.3-70b-versatile", [{"role": "user", "content": "hi"}])
    c = tokens.counter_for("gpt-4o")                    # resolve once, keep on the hot path
    c.count_text("hello world")                         # -> 2 (a bare int)

Nothing here imports a tokenizer library until the first count that needs it.
Rules, sources and the fallback bound are documented in ``docs/tokens.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._calibration import (
    DEFAULT_TARGET_UNDER_RATE,
    CalibrationRow,
    MarginTable,
    calibrate,
    check_prompt_mismatch,
    required_margin,
)
from ._estimate import (
    DEFAULT_COMPLETION_TOKENS,
    CompletionEstimate,
    CompletionEstimator,
    estimate_completion,
    percentile,
)
from ._pricing import PRICES_AS_OF, Price, cost_usd, known_prices, price_for
from ._registry import KNOWN_MODELS, FallbackPolicy, ModelCounter, default_registry
from ._types import TokenCount, TokenEstimateWarning, TokenizerMismatchWarning

__all__ = [
    "DEFAULT_COMPLETION_TOKENS",
    "DEFAULT_TARGET_UNDER_RATE",
    "PRICES_AS_OF",
    "CalibrationRow",
    "CompletionEstimate",
    "CompletionEstimator",
    "FallbackPolicy",
    "MarginTable",
    "ModelCounter",
    "Price",
    "TokenCount",
    "TokenEstimateWarning",
    "TokenizerMismatchWarning",
    "calibrate",
    "check_prompt_mismatch",
    "cost_usd",
    "count_chat",
    "count_text",
    "counter_for",
    "describe_model",
    "estimate_completion",
    "known_models",
    "known_prices",
    "percentile",
    "price_for",
    "register_model",
    "register_tokenizer_file",
    "required_margin",
    "set_fallback",
]


def counter_for(model: str, *, strict: bool | None = None) -> ModelCounter:
    """The resolved, cached counter for ``model``: call this once and keep it.

    Unknown models get the conservative bytes bound and a :class:`TokenEstimateWarning`
    (once per model), or raise :class:`~llmbudget.UnknownModel` when ``strict`` (or the
    fallback policy) says so.
    """
    return default_registry().counter(model, strict=strict)


def count_text(model: str, text: str, *, strict: bool | None = None) -> TokenCount:
    """Tokens in ``text`` for ``model``, as the provider's tokenizer counts plain text.

    Special-token strings such as ``<|endoftext|>`` count as ordinary text (providers do not
    let user text inject control tokens). Empty text is 0 tokens.
    """
    return default_registry().counter(model, strict=strict).count(text)


def count_chat(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    strict: bool | None = None,
) -> TokenCount:
    """Prompt tokens of a chat request for ``model``, with the family's per-message and
    reply-priming overheads and tool definitions. ``exact`` is true only when both the
    tokenizer and every formatting rule used are the provider's own (documented and checked).
    Malformed input raises :class:`~llmbudget.InvalidUsage` naming the message and field.
    """
    return default_registry().counter(model, strict=strict).count_chat(messages, tools)


def register_model(
    name: str,
    tokenizer: str,
    *,
    prefix: bool = False,
    chat: str = "generic",
    factor: float = 1.0,
) -> None:
    """Count ``name`` (or every model starting with it, with ``prefix=True``) with a tokenizer
    spec: ``quicktok:<encoding>``, ``tiktoken:<encoding>``, ``hf:<tokenizer.json>`` or
    ``tekken:<tekken.json>``; ``chat`` picks the chat rules (``openai``, ``llama3``,
    ``llama3.1``, ``chatml``, ``mistral``, ``anthropic``, ``harmony``, ``generic``);
    ``factor`` > 1 makes it a scaled estimate. User registrations win over built-ins.
    """
    default_registry().register_model(name, tokenizer, prefix=prefix, chat=chat, factor=factor)


def register_tokenizer_file(
    name: str, path: str | Path, *, prefix: bool = False, chat: str = "generic"
) -> None:
    """Count ``name`` (or a prefix) with a local Hugging Face ``tokenizer.json`` (or a Mistral
    ``tekken.json``). Raises :class:`~llmbudget.TokenizerError` if the file is missing or is
    not a tokenizer."""
    default_registry().register_tokenizer_file(name, path, prefix=prefix, chat=chat)


def set_fallback(*, margin: float | None = None, strict: bool | None = None) -> None:
    """Configure the fallback for unknown models: the safety ``margin`` over the bytes bound
    (default 0.10) and ``strict`` (raise :class:`~llmbudget.UnknownModel` instead)."""
    default_registry().set_fallback(margin=margin, strict=strict)


def describe_model(model: str) -> dict[str, Any]:
    """Family, tokenizer, exactness (text and chat) of a model, without loading a tokenizer."""
    return default_registry().describe(model)


def known_models() -> list[dict[str, Any]]:
    """The common models llmbudget knows: name, family, tokenizer, exactness (text and chat)
    and price (USD per 1M input/output/cached-input tokens, or ``None`` when unknown).
    Loads no tokenizer."""
    from .._errors import UnknownModel

    out: list[dict[str, Any]] = []
    for name in KNOWN_MODELS:
        row = describe_model(name)
        try:
            row["price"] = price_for(name).to_dict()
        except UnknownModel:
            row["price"] = None
        out.append(row)
    return out
