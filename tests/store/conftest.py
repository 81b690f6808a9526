from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbudget.store import Store, open_store

from ._servers import drop, fresh_url, need

BACKENDS = [
    pytest.param("memory", marks=pytest.mark.memory),
    pytest.param("sqlite", marks=pytest.mark.sqlite),
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    k: str = request.param
    need(k)
    return k


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind. Time is the caller's (tests move it); the server-clock
    mode has its own tests."""
    url = fresh_url(kind, tmp_path, clock="caller")
    s = open_store(url)
    try:
        yield s
    finally:
        s.close()
        drop(kind, url)
