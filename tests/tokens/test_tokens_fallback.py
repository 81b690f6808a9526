"""INV-TOK-EST-001/002: the conservative fallback over-counts, warns once, and can be strict."""

from __future__ import annotations

import warnings

import pytest
from _tokens_corpus import CORPUS

from llmbudget import InvalidUsage, UnknownModel
from llmbudget.tokens import TokenEstimateWarning
from llmbudget.tokens._registry import FallbackPolicy, TokenizerRegistry

EXACT_MODELS = [
    "gpt-4o",
    "gpt-4",
    "gpt-oss-20b",
    "llama-3.1-8b-instant",
    "qwen3-8b",
    "open-mistral-nemo",
]


def _exact_counters(registry: TokenizerRegistry) -> list:  # type: ignore[type-arg]
    return [registry.counter(m) for m in EXACT_MODELS]


def test_fallback_over_counts_every_corpus_item_for_every_exact_tokenizer(
    registry: TokenizerRegistry,
) -> None:
    with pytest.warns(TokenEstimateWarning, match="some-new-model"):
        fb = registry.counter("some-new-model")
    assert not fb.exact
    assert fb.tokenizer == "fallback:bytes+10%"
    counters = _exact_counters(registry)
    for name, text in CORPUS:
        bound = fb.count_text(text)
        for c in counters:
            assert bound >= c.count_text(text), (name, c.model)
        if text:
            assert bound > max(c.count_text(text) for c in counters), name


def test_bound_without_margin_still_over_counts(registry: TokenizerRegistry) -> None:
    policy = FallbackPolicy(margin=0.0)
    counters = _exact_counters(registry)
    for name, text in CORPUS:
        for c in counters:
            assert policy.bound(text) >= c.count_text(text), (name, c.model)


def test_claude_estimate_is_flagged_and_bounded(registry: TokenizerRegistry) -> None:
    c = registry.counter("claude-sonnet-4-5-20250929")
    assert not c.exact
    assert c.tokenizer.startswith("estimate:")
    gpt4 = registry.counter("gpt-4")
    for name, text in CORPUS:
        n = c.count_text(text)
        assert n >= gpt4.count_text(text), name
        assert n <= registry.fallback.bound(text), name


def test_fallback_warns_once_per_model(registry: TokenizerRegistry) -> None:
    def use(model: str, text: str) -> None:
        registry.counter(model).count_text(text)

    with pytest.warns(TokenEstimateWarning) as rec:
        [use(m, t) for m, t in (("mystery-1", "x"), ("mystery-1", "y"), ("mystery-2", "z"))]
    assert [str(w.message).split("'")[1] for w in rec] == ["mystery-1", "mystery-2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert registry.counter("mystery-1").count_text("hello") == 7  # ceil(6 * 1.1)


def test_strict_raises_unknown_model(registry: TokenizerRegistry) -> None:
    with pytest.raises(UnknownModel, match="no tokenizer is known for model 'nope-9000'"):
        registry.counter("nope-9000", strict=True)
    registry.set_fallback(strict=True)
    with pytest.raises(UnknownModel):
        registry.counter("nope-9001")
    assert registry.counter("gpt-4o").exact  # known models are unaffected


def test_strict_after_fallback_was_cached(registry: TokenizerRegistry) -> None:
    with pytest.warns(TokenEstimateWarning):
        registry.counter("cached-unknown")
    with pytest.raises(UnknownModel):
        registry.counter("cached-unknown", strict=True)


def test_margin_is_configurable_and_validated(registry: TokenizerRegistry) -> None:
    registry.set_fallback(margin=0.5)
    with pytest.warns(TokenEstimateWarning, match=r"x 1\.5"):
        c = registry.counter("unknown-m")
    assert c.count_text("abcd") == 8  # ceil(5 * 1.5)
    assert c.count_text("") == 0
    with pytest.raises(InvalidUsage):
        registry.set_fallback(margin=-0.1)
    with pytest.raises(InvalidUsage):
        FallbackPolicy(margin=float("nan"))
