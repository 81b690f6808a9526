"""Shared fixtures: a fake clock, and a governor over each store (memory, SQLite, Redis,
PostgreSQL; the servers' tests skip without one, see tests/store/_servers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmbudget import Governor
from llmbudget.store import Store, open_store
from llmbudget.testing import CapturedEvents, FakeClock
from store._servers import drop, fresh_url, need


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock("2026-03-10T12:00:00Z")


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind (a fresh Redis prefix / PostgreSQL schema per test, on the
    caller's clock, as tests/store does)."""
    kind: str = request.param
    need(kind)
    # the fake clock is not the server's: Redis expires a windowed counter on its own clock
    # (window end + margin), so give it a margin far beyond the fake clock's distance
    extra = {"margin": str(10 * 365 * 86400)} if kind == "redis" else {}
    url = fresh_url(kind, tmp_path, clock="caller", **extra)
    s = open_store(url)
    try:
        yield s
    finally:
        s.close()
        drop(kind, url)


@pytest.fixture
def events() -> CapturedEvents:
    return CapturedEvents()


@pytest.fixture
def make_gov(store: Store, clock: FakeClock, events: CapturedEvents) -> Callable[..., Governor]:
    def make(policy: dict[str, Any], **kw: Any) -> Governor:
        kw.setdefault("labels", {"run": "r1"})
        return Governor(policy, store, clock=clock, on_event=events, log_events=False, **kw)

    return make
