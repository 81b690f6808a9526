"""Model name -> tokenizer: exact names, then family patterns, then a clear answer.

Resolution order for a model name (case-insensitive; a routing prefix such as ``openai/``,
``groq/`` or ``meta-llama/`` is ignored):

1. a name registered by the user with :func:`register_model` / :func:`register_tokenizer_file`;
2. a prefix registered by the user (longest first);
3. the built-in exact names and family patterns below;
4. nothing matched: :class:`~llmbudget.UnknownModel` when ``strict``, otherwise the
   conservative bytes bound with a :class:`TokenEstimateWarning` (once per model).

Everything is lazy: nothing is imported or loaded until the first count for a model, and the
resolved :class:`ModelCounter` is cached per model name (lookups after the first are one dict
read, without a lock). Building is serialized by one lock, like tiktoken's registry.
"""

from __future__ import annotations

import math
import re
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._errors import InvalidUsage, TokenizerError, UnknownModel
from ._engines import build_engine
from ._types import TokenCount, TokenEstimateWarning

__all__ = [
    "CHAT_FORMATS",
    "FallbackPolicy",
    "ModelCounter",
    "ModelRule",
    "TokenizerRegistry",
    "default_registry",
]

CHAT_FORMATS = (
    "openai",
    "harmony",
    "llama3",
    "llama3.1",
    "chatml",
    "mistral",
    "anthropic",
    "generic",
)


@dataclass(frozen=True, slots=True)
class ModelRule:
    """How one model family is counted.

    ``tokenizer`` is an engine spec (see :mod:`._engines`) or ``"fallback"``; ``factor`` > 1
    turns an exact count of a related vocabulary into an estimate (rounded up);
    ``chat`` names the chat formatting rules (:data:`CHAT_FORMATS`); ``chat_exact`` says the
    chat rules were checked against the provider's billed ``prompt_tokens``; ``func_init`` is
    the per-function overhead of OpenAI tool definitions; ``default_system`` is a system
    message the chat template inserts when the caller sends none.
    """

    family: str
    tokenizer: str
    chat: str = "generic"
    factor: float = 1.0
    chat_exact: bool = False
    func_init: int = 7
    default_system: str | None = None
    source: str = "built-in"

    @property
    def exact(self) -> bool:
        """True when text counts come from the model's own tokenizer (no scaling, no bound)."""
        return self.tokenizer != "fallback" and self.factor == 1.0


@dataclass(frozen=True, slots=True)
class FallbackPolicy:
    """The conservative bound used for models without a known tokenizer.

    Each text of ``b`` UTF-8 bytes counts ``ceil((b + 1) * (1 + margin))`` tokens (0 when
    empty). Every byte-level BPE tokenizer (tiktoken's, Llama-3's, Qwen's, Tekken, GPT-2's)
    emits at most one token per byte, and SentencePiece with byte fallback at most one more
    (its leading ``▁``), so ``b + 1`` is an upper bound before any margin; the margin covers
    template tokens we cannot see. ``strict`` turns the fallback off: unknown models raise
    :class:`~llmbudget.UnknownModel`.
    """

    margin: float = 0.10
    strict: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.margin, int | float) and 0.0 <= self.margin <= 10.0):
            raise InvalidUsage(f"fallback margin must be a number in [0, 10], got {self.margin!r}")

    def bound(self, text: str) -> int:
        """The bound for one text."""
        if not text:
            return 0
        n = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        return math.ceil((n + 1) * (1.0 + self.margin))

    @property
    def label(self) -> str:
        """How a count made with this policy names its tokenizer."""
        return f"fallback:bytes+{round(self.margin * 100)}%"


_OPENAI_ROUTE = re.compile(r"^(?:[a-z0-9_.-]+/)+")
_BEDROCK_VENDOR = re.compile(r"^(?:us\.|eu\.|apac\.)?(?:anthropic|meta|mistral|openai)\.")


def normalize_model(model: str) -> str:
    """Lower-case, trimmed, without a routing prefix (``groq/``, ``meta-llama/``, Bedrock's
    ``anthropic.``): the key every lookup uses."""
    m = model.strip().lower()
    m = _OPENAI_ROUTE.sub("", m)
    return _BEDROCK_VENDOR.sub("", m)


_B = r"(?:$|[-:@_])"  # a family name ends here: end, or a separator (not "." or a letter)
_LLAMA_31_SYSTEM = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"

O200K_VERIFIED = ModelRule("openai-o200k", "quicktok:o200k_base", "openai", chat_exact=True)
O200K = ModelRule("openai-o200k", "quicktok:o200k_base", "openai")
CL100K = ModelRule("openai-cl100k", "quicktok:cl100k_base", "openai", chat_exact=True, func_init=10)
EMBED_CL100K = ModelRule("openai-embedding", "quicktok:cl100k_base", "generic")
GPT_OSS = ModelRule("gpt-oss", "quicktok:o200k_harmony", "harmony")
LLAMA3 = ModelRule("llama-3", "quicktok:llama3", "llama3", chat_exact=True)
LLAMA31 = ModelRule(
    "llama-3.1+", "quicktok:llama3", "llama3.1", chat_exact=True, default_system=_LLAMA_31_SYSTEM
)
LLAMA_GUARD = ModelRule("llama-guard-3", "quicktok:llama3", "generic")
QWEN25 = ModelRule(
    "qwen-2.5",
    "quicktok:qwen3",
    "chatml",
    chat_exact=True,
    default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
)
QWEN2 = ModelRule(
    "qwen-2",
    "quicktok:qwen3",
    "chatml",
    chat_exact=True,
    default_system="You are a helpful assistant.",
)
QWEN3 = ModelRule("qwen-3", "quicktok:qwen3", "chatml", chat_exact=True)
QWQ = ModelRule("qwq", "quicktok:qwen3", "chatml")
TEKKEN_NEMO = ModelRule("mistral-tekken", "tekken:240718", "mistral", chat_exact=True)
TEKKEN_PIXTRAL = ModelRule("mistral-tekken", "tekken:240911", "mistral", chat_exact=True)
CLAUDE = ModelRule("claude", "quicktok:cl100k_base", "anthropic", factor=1.35)

# Ordered: the first pattern that matches the start of the normalized name wins.
BUILTIN_FAMILIES: tuple[tuple[str, ModelRule], ...] = (
    (r"gpt-oss" + _B, GPT_OSS),
    (r"(?:gpt-4o|chatgpt-4o)" + _B, O200K_VERIFIED),
    (r"(?:gpt-4\.1|gpt-4\.5|gpt-5(?:\.\d+)?|o1|o3|o4|codex-mini|computer-use-preview)" + _B, O200K),
    (r"(?:gpt-4|gpt-3\.5-turbo|gpt-35-turbo)" + _B, CL100K),
    (r"text-embedding-(?:3-small|3-large|ada-002)" + _B, EMBED_CL100K),
    (r"llama-guard-3" + _B, LLAMA_GUARD),
    (r"(?:meta-)?llama-?v?3(?:\.|p)[1-9]" + r"(?:$|[-:@_.])", LLAMA31),
    (r"(?:meta-)?llama-?3" + _B, LLAMA3),
    (r"qwen-?2\.5" + _B, QWEN25),
    (r"qwen-?2" + _B, QWEN2),
    (r"qwen-?3" + _B, QWEN3),
    (r"(?:qwen-)?qwq" + _B, QWQ),
    (r"(?:open-)?mistral-nemo" + _B, TEKKEN_NEMO),
    (r"(?:ministral-8b|mistral-small-2409)" + _B, TEKKEN_NEMO),
    (r"pixtral-12b" + _B, TEKKEN_PIXTRAL),
    (r"claude" + _B, CLAUDE),
)

# Names `llmbudget models` lists: the common ones, each resolved through the rules above.
KNOWN_MODELS: tuple[str, ...] = (
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "o1",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-4-turbo",
    "gpt-4",
    "gpt-3.5-turbo",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "gpt-oss-120b",
    "gpt-oss-20b",
    "llama-3.3-70b-versatile",
    "llama-3.1-8b-instant",
    "llama3-70b-8192",
    "llama3-8b-8192",
    "qwen3-32b",
    "qwen2.5-72b-instruct",
    "qwq-32b",
    "open-mistral-nemo",
    "ministral-8b-latest",
    "pixtral-12b-2409",
    "claude-opus-4-5",
    "claude-opus-4-1",
    "claude-sonnet-4-5",
    "claude-sonnet-4",
    "claude-3-7-sonnet",
    "claude-haiku-4-5",
    "claude-3-5-haiku",
)


class ModelCounter:
    """A resolved model: count text or chats for it without resolving again.

    Get one with :func:`counter_for`; keep it on the hot path. ``count_text`` returns a bare
    int (the cheapest call); ``count`` and ``count_chat`` return :class:`TokenCount`.
    """

    __slots__ = ("_chat_cache", "_count", "exact", "model", "rule", "tokenizer")

    def __init__(
        self, model: str, rule: ModelRule, count: Callable[[str], int], tokenizer: str
    ) -> None:
        self.model = model
        self.rule = rule
        self._count = count
        self.tokenizer = tokenizer
        self.exact = rule.exact
        self._chat_cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<ModelCounter {self.model!r} {self.tokenizer} exact={self.exact}>"

    def count_text(self, text: str) -> int:
        """Tokens in ``text`` as a plain int (special-token strings count as ordinary text)."""
        if type(text) is not str:
            raise InvalidUsage(f"text must be a str, got {type(text).__name__}")
        return self._count(text)

    def count(self, text: str) -> TokenCount:
        """Tokens in ``text`` as a :class:`TokenCount`."""
        return TokenCount(self.count_text(text), self.tokenizer, self.exact, self.model)

    def count_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> TokenCount:
        """Prompt tokens of a chat request (messages and optional tool definitions)."""
        from ._chat import count_chat_tokens

        tokens, exact = count_chat_tokens(self, messages, tools)
        return TokenCount(tokens, self.tokenizer, exact, self.model)

    # used by _chat
    def raw_count(self, text: str) -> int:
        """Count without the type check (callers have validated)."""
        return self._count(text)


class TokenizerRegistry:
    """Model name -> :class:`ModelCounter`, built lazily and cached; thread-safe."""

    def __init__(self, fallback: FallbackPolicy | None = None) -> None:
        self._lock = threading.RLock()
        self._user_exact: dict[str, ModelRule] = {}
        self._user_prefix: list[tuple[str, ModelRule]] = []
        self._families = [(re.compile(p), r) for p, r in BUILTIN_FAMILIES]
        self._engines: dict[str, Callable[[str], int]] = {}
        self._counters: dict[str, ModelCounter] = {}
        self._warned: set[str] = set()
        self.fallback = fallback or FallbackPolicy()

    # ---------------------------------------------------------------- configuration
    def set_fallback(self, *, margin: float | None = None, strict: bool | None = None) -> None:
        """Change the fallback margin or strictness; drops cached counters."""
        with self._lock:
            self.fallback = FallbackPolicy(
                self.fallback.margin if margin is None else margin,
                self.fallback.strict if strict is None else strict,
            )
            self._counters.clear()

    def register_model(
        self,
        name: str,
        tokenizer: str,
        *,
        prefix: bool = False,
        chat: str = "generic",
        factor: float = 1.0,
        family: str | None = None,
    ) -> None:
        """Map a model name (or, with ``prefix=True``, every name starting with it) to a
        tokenizer spec such as ``quicktok:o200k_base``, ``tiktoken:cl100k_base``,
        ``hf:/path/tokenizer.json`` or ``tekken:/path/tekken.json``.

        The engine is built now, so a bad spec or file fails here, not on the hot path.
        """
        key = self._check_name(name)
        if chat not in CHAT_FORMATS:
            raise InvalidUsage(
                f"chat format must be one of {', '.join(CHAT_FORMATS)}; got {chat!r}"
            )
        if not (isinstance(factor, int | float) and 1.0 <= factor <= 10.0):
            raise InvalidUsage(f"factor must be a number in [1, 10], got {factor!r}")
        rule = ModelRule(family or key, tokenizer, chat, factor=float(factor), source="registered")
        with self._lock:
            self._engine(tokenizer)  # fail fast
            if prefix:
                self._user_prefix = [(p, r) for p, r in self._user_prefix if p != key]
                self._user_prefix.append((key, rule))
                self._user_prefix.sort(key=lambda pr: -len(pr[0]))
            else:
                self._user_exact[key] = rule
            self._counters.clear()

    def register_tokenizer_file(
        self, name: str, path: str | Path, *, prefix: bool = False, chat: str = "generic"
    ) -> None:
        """Count ``name`` (a model name, or a prefix with ``prefix=True``) with a local
        Hugging Face ``tokenizer.json`` (or a Mistral ``tekken.json``: a file name containing
        ``tekken``). Raises :class:`~llmbudget.TokenizerError` when the file is missing or is
        not a tokenizer."""
        p = Path(path)
        if not p.exists():
            raise TokenizerError(f"tokenizer file {p} does not exist")
        if not p.is_file():
            raise TokenizerError(f"tokenizer path {p} is not a file")
        kind = "tekken" if "tekken" in p.name.lower() else "hf"
        self.register_model(name, f"{kind}:{p.resolve()}", prefix=prefix, chat=chat)

    def clear_cache(self) -> None:
        """Forget resolved counters, loaded engines and warn-once state (tests, reloads)."""
        with self._lock:
            self._counters.clear()
            self._engines.clear()
            self._warned.clear()

    # ---------------------------------------------------------------- lookup
    @staticmethod
    def _check_name(model: object) -> str:
        if not isinstance(model, str) or not model.strip():
            raise InvalidUsage(f"model must be a non-empty string, got {model!r}")
        return normalize_model(model)

    def rule_for(self, model: str) -> ModelRule | None:
        """The rule a model resolves to, or ``None`` when only the fallback applies."""
        key = self._check_name(model)
        rule = self._user_exact.get(key)
        if rule is not None:
            return rule
        for pfx, r in self._user_prefix:
            if key.startswith(pfx):
                return r
        for pat, r in self._families:
            if pat.match(key):
                return r
        return None

    def counter(self, model: str, *, strict: bool | None = None) -> ModelCounter:
        """The cached :class:`ModelCounter` for ``model`` (built on first use)."""
        c = self._counters.get(model)
        if c is not None:
            if c.rule.tokenizer == "fallback" and (
                strict or (strict is None and self.fallback.strict)
            ):
                raise self._unknown(model)
            return c
        with self._lock:
            c = self._counters.get(model)
            if c is None:
                c = self._build(model, strict)
                self._counters[model] = c
        if c.rule.tokenizer == "fallback":
            self._warn_fallback(model, c.rule.source)
        return c

    def _unknown(self, model: str) -> UnknownModel:
        return UnknownModel(
            f"no tokenizer is known for model {model!r}; register one with "
            "llmbudget.tokens.register_tokenizer_file(model, 'tokenizer.json') or "
            "register_model(model, 'quicktok:o200k_base'), or allow the conservative fallback"
        )

    def _build(self, model: str, strict: bool | None) -> ModelCounter:
        rule = self.rule_for(model)
        if rule is None:
            if strict or (strict is None and self.fallback.strict):
                raise self._unknown(model)
            return self._fallback_counter(model, "no tokenizer is known for this model")
        try:
            base = self._engine(rule.tokenizer)
        except TokenizerError as exc:
            if rule.source != "built-in":
                raise
            if strict or (strict is None and self.fallback.strict):
                raise
            return self._fallback_counter(model, f"its tokenizer could not be loaded ({exc})")
        if rule.factor == 1.0:
            return ModelCounter(model, rule, base, rule.tokenizer)
        factor = rule.factor
        fb = self.fallback

        def scaled(text: str) -> int:
            # an estimate from a related vocabulary, never above the bytes bound
            n = base(text)
            return min(math.ceil(n * factor), fb.bound(text)) if n else 0

        return ModelCounter(model, rule, scaled, f"estimate:{rule.tokenizer}x{factor:g}")

    def _fallback_counter(self, model: str, why: str) -> ModelCounter:
        fb = self.fallback
        rule = ModelRule("unknown", "fallback", "generic", source=why)
        return ModelCounter(model, rule, fb.bound, fb.label)

    def _warn_fallback(self, model: str, why: str) -> None:
        if model in self._warned:
            return
        with self._lock:
            if model in self._warned:
                return
            self._warned.add(model)
        warnings.warn(
            f"model {model!r}: {why}; counting with the conservative bound "
            f"(UTF-8 bytes + 1) x {1 + self.fallback.margin:g} per text. Register a tokenizer "
            "with llmbudget.tokens.register_tokenizer_file() for exact counts.",
            TokenEstimateWarning,
            stacklevel=4,
        )

    def _engine(self, spec: str) -> Callable[[str], int]:
        with self._lock:
            fn = self._engines.get(spec)
            if fn is None:
                fn = build_engine(spec).count
                self._engines[spec] = fn
            return fn

    def engine_loaded(self, spec: str) -> bool:
        """Whether the engine for ``spec`` has been built in this process."""
        return spec in self._engines

    def describe(self, model: str) -> dict[str, Any]:
        """Family, tokenizer and exactness for a model, without loading any tokenizer."""
        rule = self.rule_for(model)
        if rule is None:
            return {
                "model": model,
                "family": "unknown",
                "tokenizer": self.fallback.label,
                "exact": False,
                "chat_exact": False,
            }
        tok = rule.tokenizer if rule.factor == 1.0 else f"estimate:{rule.tokenizer}x{rule.factor:g}"
        return {
            "model": model,
            "family": rule.family,
            "tokenizer": tok,
            "exact": rule.exact,
            "chat_exact": rule.exact and rule.chat_exact,
        }


_DEFAULT = TokenizerRegistry()


def default_registry() -> TokenizerRegistry:
    """The process-wide registry the module-level functions use."""
    return _DEFAULT


def with_rule(rule: ModelRule, **changes: Any) -> ModelRule:
    """A copy of ``rule`` with fields changed (helper for callers building custom rules)."""
    return replace(rule, **changes)
