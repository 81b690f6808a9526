"""Shared fixtures: a fake clock, and a governor over each embedded store (memory, SQLite)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmbudget import Governor
from llmbudget.store import Store, open_store
from llmbudget.testing import CapturedEvents, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock("2026-03-10T12:00:00Z")


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/ledger.db"
    s = open_store(url)
    yield s
    s.close()


@pytest.fixture
def events() -> CapturedEvents:
    return CapturedEvents()


@pytest.fixture
def make_gov(store: Store, clock: FakeClock, events: CapturedEvents) -> Callable[..., Governor]:
    def make(policy: dict[str, Any], **kw: Any) -> Governor:
        kw.setdefault("labels", {"run": "r1"})
        return Governor(policy, store, clock=clock, on_event=events, log_events=False, **kw)

    return make
