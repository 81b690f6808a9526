"""Pricing: dated table, prefix lookup, overrides, unknown price is an error (never zero)."""

from __future__ import annotations

import pytest

from llmbudget import InvalidUsage, UnknownModel
from llmbudget.tokens import PRICES_AS_OF, Price, cost_usd, known_models, price_for


def test_table_is_dated_and_covers_each_provider() -> None:
    assert PRICES_AS_OF[:4].isdigit()
    providers = {
        price_for(m).provider
        for m in ("gpt-4o", "claude-sonnet-4-5", "llama-3.1-8b-instant", "mistral-large-latest")
    }
    assert providers == {"openai", "anthropic", "groq", "mistral"}


@pytest.mark.parametrize(
    ("model", "key_price"),
    [
        ("gpt-4o-2024-08-06", 2.50),
        ("gpt-4o-mini-2024-07-18", 0.15),
        ("gpt-4o-2024-05-13", 5.00),
        ("claude-sonnet-4-5-20250929", 3.00),
        ("claude-3-5-haiku-20241022", 0.80),
        ("groq/llama-3.3-70b-versatile", 0.59),
        ("mistral-small-latest", 0.10),
        ("GPT-4.1-MINI", 0.40),
    ],
)
def test_prefix_and_normalized_lookup(model: str, key_price: float) -> None:
    assert price_for(model).input == key_price


def test_cost_splits_cached_input() -> None:
    # gpt-4o: 2.50 in, 1.25 cached, 10.00 out per 1M
    assert cost_usd("gpt-4o", 1_000_000, 0) == pytest.approx(2.50)
    assert cost_usd("gpt-4o", 1_000_000, 500_000, cached_tokens=400_000) == pytest.approx(
        0.6 * 2.50 + 0.4 * 1.25 + 0.5 * 10.00
    )
    # no cached price: cached tokens are charged as input
    assert cost_usd("gpt-4", 1000, 0, cached_tokens=1000) == pytest.approx(0.03)


def test_overrides_win_and_are_validated() -> None:
    ov = {"gpt-4o": {"input": 1.0, "output": 2.0}, "my-model": Price(3.0, 4.0)}
    assert price_for("gpt-4o-2024-11-20", ov).input == 1.0
    assert price_for("gpt-4o", ov).source == "override"
    assert cost_usd("my-model", 1_000_000, 1_000_000, overrides=ov) == pytest.approx(7.0)
    with pytest.raises(InvalidUsage, match="needs 'input' and 'output'"):
        price_for("x", {"x": {"input": 1.0}})
    with pytest.raises(InvalidUsage, match="unknown keys: inptu"):
        price_for("x", {"x": {"inptu": 1.0, "input": 1.0, "output": 1.0}})
    with pytest.raises(InvalidUsage, match="finite number"):
        price_for("x", {"x": {"input": -1.0, "output": 1.0}})


def test_unknown_price_is_said_never_zero() -> None:
    with pytest.raises(UnknownModel, match="no price is known for model 'gemini-9-ultra'"):
        cost_usd("gemini-9-ultra", 10, 10)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((-1, 0, 0), "prompt_tokens"),
        ((1, -1, 0), "completion_tokens"),
        ((1, 1, 2), "cannot exceed"),
        ((1.5, 1, 0), "prompt_tokens"),
    ],
)
def test_bad_counts(args: tuple[int, int, int], fragment: str) -> None:
    with pytest.raises(InvalidUsage, match=fragment):
        cost_usd("gpt-4o", *args)


def test_known_models_lists_tokenizer_exactness_and_price() -> None:
    rows = {r["model"]: r for r in known_models()}
    assert rows["gpt-4o"]["tokenizer"] == "quicktok:o200k_base"
    assert rows["gpt-4o"]["exact"] is True
    assert rows["claude-sonnet-4-5"]["exact"] is False
    assert rows["llama-3.3-70b-versatile"]["price"]["output"] == 0.79
    assert rows["qwq-32b"]["price"] is None  # said, never zero
    priced = [r for r in rows.values() if r["price"] is not None]
    assert len(priced) >= 30
    assert all(r["price"]["input"] > 0 for r in priced)
