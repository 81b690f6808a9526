from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbudget.store import Store, open_store

from ._async_adapter import SyncOverAsync
from ._servers import drop, fresh_url, need

BACKENDS = [
    pytest.param("memory", marks=pytest.mark.memory),
    pytest.param("sqlite", marks=pytest.mark.sqlite),
    pytest.param("redis", marks=pytest.mark.redis),
    # the steps as scripts by SHA (what servers before Redis 7 run) instead of functions
    pytest.param("redis-scripts", marks=pytest.mark.redis),
    # commits written without waiting, their replies read at the next step (?commit=pipelined)
    pytest.param("redis-pipelined", marks=pytest.mark.redis),
    # AsyncRedisStore through a thin synchronous adapter (tests/store/_async_adapter.py)
    pytest.param("redis-async", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


# URL options of the variants of a server's store
VARIANTS = {"redis-scripts": {"lua": "scripts"}, "redis-pipelined": {"commit": "pipelined"}}


def server_of(kind: str) -> str:
    """The server a backend kind runs on ("redis-async" -> "redis")."""
    return kind.split("-", 1)[0]


@pytest.fixture(params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    k: str = request.param
    need(server_of(k))
    return k


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind. Time is the caller's (tests move it); the server-clock
    mode has its own tests."""
    server = server_of(kind)
    url = fresh_url(server, tmp_path, clock="caller", **VARIANTS.get(kind, {}))
    s = SyncOverAsync(url) if kind == "redis-async" else open_store(url)
    try:
        yield s
    finally:
        s.close()
        drop(server, url)
