"""Registry resolution, bad tokenizer files, huge inputs, thread safety."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from llmbudget import InvalidUsage, TokenizerError
from llmbudget.tokens._registry import TokenizerRegistry


@pytest.mark.parametrize(
    ("model", "tokenizer"),
    [
        ("gpt-4o", "quicktok:o200k_base"),
        ("gpt-4o-mini-2024-07-18", "quicktok:o200k_base"),
        ("gpt-4.1-nano", "quicktok:o200k_base"),
        ("o1-preview", "quicktok:o200k_base"),
        ("o3-mini", "quicktok:o200k_base"),
        ("o4-mini-2025-04-16", "quicktok:o200k_base"),
        ("gpt-5", "quicktok:o200k_base"),
        ("gpt-5.1-codex", "quicktok:o200k_base"),
        ("gpt-4.5-preview", "quicktok:o200k_base"),
        ("gpt-4", "quicktok:cl100k_base"),
        ("gpt-4-0613", "quicktok:cl100k_base"),
        ("gpt-3.5-turbo-0125", "quicktok:cl100k_base"),
        ("azure/gpt-35-turbo", "quicktok:cl100k_base"),
        ("openai/gpt-oss-120b", "quicktok:o200k_harmony"),
        ("llama-3.3-70b-versatile", "quicktok:llama3"),
        ("llama-3.1-8b-instant", "quicktok:llama3"),
        ("groq/llama3-70b-8192", "quicktok:llama3"),
        ("meta-llama/Meta-Llama-3.1-70B-Instruct", "quicktok:llama3"),
        ("accounts/fireworks/models/llama-v3p1-8b-instruct", "quicktok:llama3"),
        ("Qwen/Qwen2.5-72B-Instruct", "quicktok:qwen3"),
        ("qwen/qwen3-32b", "quicktok:qwen3"),
        ("open-mistral-nemo-2407", "tekken:240718"),
        ("pixtral-12b-2409", "tekken:240911"),
        ("claude-3-5-sonnet-20241022", "estimate:quicktok:cl100k_basex1.35"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "estimate:quicktok:cl100k_basex1.35"),
    ],
)
def test_resolution(registry: TokenizerRegistry, model: str, tokenizer: str) -> None:
    assert registry.describe(model)["tokenizer"] == tokenizer


@pytest.mark.parametrize(
    "model", ["gpt-40", "gpt-4ox", "llama-30b", "o10", "llama-4-scout", "gemini-2.5-pro"]
)
def test_lookalikes_do_not_match(registry: TokenizerRegistry, model: str) -> None:
    assert registry.rule_for(model) is None


def test_user_registration_wins_and_validates(registry: TokenizerRegistry, tmp_path: Path) -> None:
    registry.register_model("gpt-4o", "quicktok:cl100k_base")
    assert registry.describe("gpt-4o")["tokenizer"] == "quicktok:cl100k_base"
    registry.register_model("corp-", "quicktok:llama3", prefix=True, chat="llama3")
    assert registry.counter("corp-chat-v2").count_text("hello") == 1
    with pytest.raises(TokenizerError, match="bad tokenizer spec"):
        registry.register_model("x", "sentencepiece:foo")
    with pytest.raises(TokenizerError, match="unknown encoding"):
        registry.register_model("x", "quicktok:nope_base")
    with pytest.raises(InvalidUsage, match="chat format"):
        registry.register_model("x", "quicktok:o200k_base", chat="weird")
    with pytest.raises(InvalidUsage, match="model must be a non-empty string"):
        registry.counter("  ")


def test_bad_tokenizer_files(registry: TokenizerRegistry, tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="does not exist"):
        registry.register_tokenizer_file("m", tmp_path / "missing.json")
    with pytest.raises(TokenizerError, match="is not a file"):
        registry.register_tokenizer_file("m", tmp_path)
    junk = tmp_path / "tokenizer.json"
    junk.write_text('{"hello": "world"}', encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"is not a Hugging Face tokenizer\.json"):
        registry.register_tokenizer_file("m", junk)
    notjson = tmp_path / "tekken.json"
    notjson.write_text("not json at all", encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"is not a Mistral tekken\.json"):
        registry.register_tokenizer_file("m", notjson)
    # nothing half-registered
    assert registry.rule_for("m") is None


def test_non_str_text(registry: TokenizerRegistry) -> None:
    with pytest.raises(InvalidUsage, match="text must be a str, got bytes"):
        registry.counter("gpt-4o").count_text(b"abc")  # type: ignore[arg-type]


def test_huge_input_counts_fast_and_exactly(registry: TokenizerRegistry) -> None:
    import quicktok

    piece = "The quick brown fox 🦊 jumps; お誕生日 " * 10 + "\n"
    text = piece * 60_000  # ~30 MB
    c = registry.counter("gpt-4o")
    assert c.count_text(text) == len(quicktok.get_encoding("o200k_base").encode_ordinary(text))
    assert registry.counter("gpt-4o").count_text("x" * 2_000_000) > 0


def test_concurrent_first_use_builds_one_counter(registry: TokenizerRegistry) -> None:
    results: list[object] = []
    barrier = threading.Barrier(16)

    def work() -> None:
        barrier.wait()
        c = registry.counter("llama-3.1-8b-instant")
        results.append((id(c), c.count_text("hello world, again")))

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16
    assert len(set(results)) == 1
