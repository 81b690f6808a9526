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
    # AsyncRedisStore through a thin synchronous adapter (tests/store/_async_adapter.py)
    pytest.param("redis-async", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    k: str = request.param
    need(k.removesuffix("-async"))
    return k


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind. Time is the caller's (tests move it); the server-clock
    mode has its own tests."""
    server = kind.removesuffix("-async")
    url = fresh_url(server, tmp_path, clock="caller")
    s = SyncOverAsync(url) if kind == "redis-async" else open_store(url)
    try:
        yield s
    finally:
        s.close()
        drop(server, url)
