"""Model prices in USD per 1M tokens (input, output, cached input), dated and overridable.

The built-in table was compiled from the providers' public price pages (standard tier, no
batch discount) as of :data:`PRICES_AS_OF`. Prices change: override them (the policy's
``pricing:`` section passes its mapping as ``overrides``). An unknown price raises
:class:`~llmbudget.UnknownModel`; it is never silently zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidUsage, UnknownModel
from ._registry import normalize_model

__all__ = ["PRICES", "PRICES_AS_OF", "Price", "cost_usd", "known_prices", "price_for"]

PRICES_AS_OF = "2025-11-30"


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens. ``cached_input`` is the price of prompt tokens served from the
    provider's prompt cache (OpenAI "cached input", Anthropic "cache read"); ``None`` when the
    provider has no such discount (cached tokens are then charged as input)."""

    input: float
    output: float
    cached_input: float | None = None
    provider: str = ""
    as_of: str = PRICES_AS_OF
    source: str = "built-in"

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input"):
            v = getattr(self, name)
            if v is None and name == "cached_input":
                continue
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or v < 0
            ):
                raise InvalidUsage(f"price {name} must be a finite number >= 0, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "input": self.input,
            "output": self.output,
            "cached_input": self.cached_input,
            "provider": self.provider,
            "as_of": self.as_of,
            "source": self.source,
        }


def _p(i: float, o: float, c: float | None, provider: str) -> Price:
    return Price(i, o, c, provider)


# Keys are model names or name prefixes (matched at a "-" boundary, longest first).
PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-5": _p(1.25, 10.00, 0.125, "openai"),
    "gpt-5-mini": _p(0.25, 2.00, 0.025, "openai"),
    "gpt-5-nano": _p(0.05, 0.40, 0.005, "openai"),
    "gpt-4.1": _p(2.00, 8.00, 0.50, "openai"),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10, "openai"),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025, "openai"),
    "gpt-4o": _p(2.50, 10.00, 1.25, "openai"),
    "gpt-4o-2024-05-13": _p(5.00, 15.00, None, "openai"),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075, "openai"),
    "o1": _p(15.00, 60.00, 7.50, "openai"),
    "o1-mini": _p(1.10, 4.40, 0.55, "openai"),
    "o3": _p(2.00, 8.00, 0.50, "openai"),
    "o3-mini": _p(1.10, 4.40, 0.55, "openai"),
    "o4-mini": _p(1.10, 4.40, 0.275, "openai"),
    "gpt-4-turbo": _p(10.00, 30.00, None, "openai"),
    "gpt-4": _p(30.00, 60.00, None, "openai"),
    "gpt-3.5-turbo": _p(0.50, 1.50, None, "openai"),
    "text-embedding-3-small": _p(0.02, 0.0, None, "openai"),
    "text-embedding-3-large": _p(0.13, 0.0, None, "openai"),
    "text-embedding-ada-002": _p(0.10, 0.0, None, "openai"),
    # Anthropic (cached_input = cache read)
    "claude-opus-4-5": _p(5.00, 25.00, 0.50, "anthropic"),
    "claude-opus-4-1": _p(15.00, 75.00, 1.50, "anthropic"),
    "claude-opus-4": _p(15.00, 75.00, 1.50, "anthropic"),
    "claude-sonnet-4-5": _p(3.00, 15.00, 0.30, "anthropic"),
    "claude-sonnet-4": _p(3.00, 15.00, 0.30, "anthropic"),
    "claude-3-7-sonnet": _p(3.00, 15.00, 0.30, "anthropic"),
    "claude-3-5-sonnet": _p(3.00, 15.00, 0.30, "anthropic"),
    "claude-haiku-4-5": _p(1.00, 5.00, 0.10, "anthropic"),
    "claude-3-5-haiku": _p(0.80, 4.00, 0.08, "anthropic"),
    "claude-3-haiku": _p(0.25, 1.25, 0.03, "anthropic"),
    "claude-3-opus": _p(15.00, 75.00, 1.50, "anthropic"),
    # Groq
    "llama-3.3-70b-versatile": _p(0.59, 0.79, None, "groq"),
    "llama-3.1-8b-instant": _p(0.05, 0.08, None, "groq"),
    "llama3-70b-8192": _p(0.59, 0.79, None, "groq"),
    "llama3-8b-8192": _p(0.05, 0.08, None, "groq"),
    "qwen3-32b": _p(0.29, 0.59, None, "groq"),
    # Mistral (La Plateforme; "-latest" aliases resolve by prefix)
    "mistral-large": _p(2.00, 6.00, None, "mistral"),
    "mistral-medium": _p(0.40, 2.00, None, "mistral"),
    "mistral-small": _p(0.10, 0.30, None, "mistral"),
    "open-mistral-nemo": _p(0.15, 0.15, None, "mistral"),
    "mistral-nemo": _p(0.15, 0.15, None, "mistral"),
    "codestral": _p(0.30, 0.90, None, "mistral"),
    "ministral-8b": _p(0.10, 0.10, None, "mistral"),
    "ministral-3b": _p(0.04, 0.04, None, "mistral"),
    "pixtral-12b": _p(0.15, 0.15, None, "mistral"),
}


def _coerce(model: str, value: Price | Mapping[str, Any]) -> Price:
    if isinstance(value, Price):
        return value
    if not isinstance(value, Mapping):
        raise InvalidUsage(
            f"price override for {model!r} must be a mapping with input and output, "
            f"got {type(value).__name__}"
        )
    unknown = set(value) - {"input", "output", "cached_input", "provider", "as_of"}
    if unknown or "input" not in value or "output" not in value:
        raise InvalidUsage(
            f"price override for {model!r} needs 'input' and 'output' (USD per 1M tokens) "
            f"and may have 'cached_input', 'provider', 'as_of'"
            + (f"; unknown keys: {', '.join(sorted(unknown))}" if unknown else "")
        )
    return Price(
        value["input"],
        value["output"],
        value.get("cached_input"),
        str(value.get("provider", "")),
        str(value.get("as_of", "override")),
        "override",
    )


def _lookup(key: str, table: Mapping[str, Price]) -> Price | None:
    hit = table.get(key)
    if hit is not None:
        return hit
    best: str | None = None
    for k in table:
        if key.startswith(k + "-") and (best is None or len(k) > len(best)):
            best = k
    return table[best] if best is not None else None


def price_for(
    model: str, overrides: Mapping[str, Price | Mapping[str, Any]] | None = None
) -> Price:
    """The price of ``model``: an override (exact name, then prefix) wins over the built-in
    table (exact name, then the longest ``-``-bounded prefix, so dated snapshots such as
    ``gpt-4o-2024-08-06`` find ``gpt-4o``). Raises :class:`~llmbudget.UnknownModel`."""
    if not isinstance(model, str) or not model.strip():
        raise InvalidUsage(f"model must be a non-empty string, got {model!r}")
    key = normalize_model(model)
    if overrides:
        table = {normalize_model(k): _coerce(k, v) for k, v in overrides.items()}
        hit = _lookup(key, table)
        if hit is not None:
            return hit
    hit = _lookup(key, PRICES)
    if hit is None:
        raise UnknownModel(
            f"no price is known for model {model!r}; add it under 'pricing:' in the policy "
            "(USD per 1M input/output tokens) or pass overrides={...} to price_for/cost_usd"
        )
    return hit


def _check_count(name: str, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InvalidUsage(f"{name} must be a non-negative int, got {v!r}")
    return v


def cost_usd(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    *,
    overrides: Mapping[str, Price | Mapping[str, Any]] | None = None,
) -> float:
    """USD for one call. ``cached_tokens`` are the part of ``prompt_tokens`` served from the
    prompt cache (OpenAI's ``prompt_tokens_details.cached_tokens``; for Anthropic pass
    ``input_tokens + cache_read_input_tokens`` as the prompt). Raises UnknownModel for an
    unknown price and InvalidUsage for bad counts."""
    p = _check_count("prompt_tokens", prompt_tokens)
    c = _check_count("completion_tokens", completion_tokens)
    k = _check_count("cached_tokens", cached_tokens)
    if k > p:
        raise InvalidUsage(f"cached_tokens ({k}) cannot exceed prompt_tokens ({p})")
    price = price_for(model, overrides)
    cached_rate = price.input if price.cached_input is None else price.cached_input
    return ((p - k) * price.input + k * cached_rate + c * price.output) / 1_000_000


def known_prices() -> dict[str, Price]:
    """A copy of the built-in table."""
    return dict(PRICES)
