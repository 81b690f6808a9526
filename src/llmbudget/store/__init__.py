"""Ledger stores behind one interface: memory, SQLite (the default), Redis, PostgreSQL.

Open one by URL with :func:`open_store`:

==========================  =====================================================
``memory://``               in-process, thread-safe, gone at exit
``sqlite:///relative.db``   SQLite file (``sqlite:////abs/path.db`` for absolute)
``/some/path.db``           same as ``sqlite:///`` with that path
``redis://host:6379/0``     Redis (extra ``llmbudget[redis]``)
``postgresql://...``        PostgreSQL (extra ``llmbudget[postgres]``)
==========================  =====================================================
"""

from __future__ import annotations

import os
from importlib import import_module
from pathlib import Path

from .._errors import ConfigError
from ._base import SCHEMA_VERSION, Store

__all__ = ["SCHEMA_VERSION", "Store", "default_ledger_url", "open_store"]

ENV_LEDGER = "LLMBUDGET_LEDGER"


def default_ledger_url() -> str:
    """``$LLMBUDGET_LEDGER`` if set, else a SQLite file in the platform's user data folder
    (``~/.local/share/llmbudget/ledger.sqlite3`` on Linux)."""
    env = os.environ.get(ENV_LEDGER)
    if env:
        return env
    from platformdirs import user_data_dir

    return "sqlite:///" + str(Path(user_data_dir("llmbudget")) / "ledger.sqlite3")


def open_store(url: str | os.PathLike[str] | None = None) -> Store:
    """Open the store a URL names (see the module docstring); ``None`` → the default."""
    raw = default_ledger_url() if url is None else os.fspath(url)
    if raw == "memory://" or raw == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    if raw.startswith("sqlite://"):
        rest = raw[len("sqlite://") :]
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(
                f"ledger URL {raw!r}: expected sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db"
            )
        from .sqlite import SQLiteStore

        return SQLiteStore(rest[1:] or ":memory:")
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme in ("redis", "rediss", "unix"):
        return _backend("redis", "RedisStore", raw)
    if scheme in ("postgres", "postgresql"):
        return _backend("postgres", "PostgresStore", raw)
    if scheme:
        raise ConfigError(
            f"ledger URL {raw!r}: unknown scheme {scheme!r}; use memory://, sqlite:///PATH, "
            "redis://HOST:PORT/DB or postgresql://USER@HOST/DB"
        )
    from .sqlite import SQLiteStore

    return SQLiteStore(raw)


def _backend(module: str, cls: str, url: str) -> Store:
    try:
        mod = import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as e:
        raise ConfigError(
            f"ledger URL {url!r} needs the {module} store: install it with "
            f"pip install 'llmbudget[{module}]' ({e.name} is missing)"
        ) from e
    store: Store = getattr(mod, cls)(url)
    return store
