"""Fixtures: one provider stand-in server per session (reset for each test) and governors
over the in-memory store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llmbudget import Governor

from ._server import ProviderServer


@pytest.fixture(scope="session")
def _provider() -> Iterator[ProviderServer]:
    srv = ProviderServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def server(_provider: ProviderServer) -> ProviderServer:
    _provider.reset()
    return _provider


@pytest.fixture
def make_gov() -> Iterator[Callable[..., Governor]]:
    made: list[Governor] = []

    def make(limit: int = 1_000_000, **kw: Any) -> Governor:
        policy = {"budgets": [{"name": "run", "per": ["run"], "limit": limit}]}
        kw.setdefault("labels", {"run": "r1"})
        g = Governor(policy, "memory://", log_events=False, **kw)
        made.append(g)
        return g

    yield make
    for g in made:
        g.close()


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    from ._helpers import OPEN

    yield
    while OPEN:
        OPEN.pop().close()  # type: ignore[attr-defined]
