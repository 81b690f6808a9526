"""Races found in review: re-registering an agent while another thread uses it, and usage
recorded on a closed gate from many threads at once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from llmbudget.compat.tbcontracts import BudgetExceededError, BudgetManager, UnknownAgentError


@pytest.fixture(autouse=True)
def _switch_often() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # make thread interleavings frequent
    yield
    sys.setswitchinterval(old)


def test_reregistering_never_makes_an_agent_unknown() -> None:
    m = BudgetManager()
    m.register_agent("a", max_tokens=10**9)
    stop = threading.Event()
    errors: list[Exception] = []

    def reregister() -> None:
        while not stop.is_set():
            m.register_agent("a", max_tokens=10**9)

    t = threading.Thread(target=reregister)
    t.start()
    try:
        for _ in range(3000):
            try:
                m.record_usage("a", 1)
            except UnknownAgentError as e:
                errors.append(e)
    finally:
        stop.set()
        t.join()
    assert errors == []


def test_usage_on_a_closed_gate_stays_within_the_allocation() -> None:
    m = BudgetManager()
    m.register_agent("b", max_tokens=100, confidence_threshold=0.5, min_reserve=0)
    m.record_usage("b", 10, confidence=0.9)  # closes the gate
    barrier = threading.Barrier(8)
    accepted: list[int] = []

    def record() -> None:
        barrier.wait()
        try:
            m.record_usage("b", 80)
            accepted.append(1)
        except BudgetExceededError:
            pass

    threads = [threading.Thread(target=record) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 1
    assert m.report()["b"]["consumed"] == 90
