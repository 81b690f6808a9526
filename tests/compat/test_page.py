"""The compat API driven exactly as the tbcontracts PyPI page shows (one import changed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from llmbudget import BudgetExceeded, ConfidenceReached, LLMBudgetError, NotFound
from llmbudget.compat.tbcontracts import (
    BudgetContract,
    BudgetExceededError,
    BudgetManager,
    ConfidenceGateClosed,
    TBCError,
    UnknownAgentError,
)

from .conftest import MakeManager, fake_llm


def words(text: str) -> int:
    """tbcontracts' estimate without tiktoken: 1.3 tokens a word, at least 1."""
    return max(1, int(len(text.split()) * 1.3)) if text else 0


def test_quick_start_and_report_shape(make_manager: MakeManager) -> None:
    manager = make_manager()
    # Higher priority = more important.
    c = manager.register_agent("researcher", priority=3, max_tokens=4000)
    manager.register_agent("critic", priority=1, max_tokens=2000)
    assert isinstance(c, BudgetContract)
    assert (c.agent_name, c.priority, c.max_tokens, c.min_reserve) == ("researcher", 3, 4000, 400)
    assert c.confidence_threshold is None and c.last_confidence is None

    my_llm_call = fake_llm

    @manager.govern("researcher")
    def call_researcher(prompt: str) -> str:
        return my_llm_call(prompt)

    @manager.govern("critic")
    def call_critic(prompt: str) -> str:
        return my_llm_call(prompt)

    a = call_researcher("find the latest figures on X")
    b = call_critic("check the researcher's claims")
    assert call_researcher.__name__ == "call_researcher"

    r1 = words("find the latest figures on X") + words(a)
    r2 = words("check the researcher's claims") + words(b)
    report = manager.report()
    assert report == {
        "researcher": {"allocated": 4000, "consumed": r1, "remaining": 4000 - r1},
        "critic": {"allocated": 2000, "consumed": r2, "remaining": 2000 - r2},
    }
    assert list(report) == ["researcher", "critic"]  # registration order
    assert manager.remaining("critic") == 2000 - r2
    assert manager.ledger.snapshot() == report
    assert set(manager.contracts) == {"researcher", "critic"}
    assert [(e.agent_name, e.tokens, e.note) for e in manager.ledger.history()] == [
        ("researcher", r1, "call_researcher"),
        ("critic", r2, "call_critic"),
    ]


def test_confidence_gated_spending(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register_agent("fact_checker", priority=2, max_tokens=3000, confidence_threshold=0.85)
    confidences = iter([0.5, 0.9])
    calls = []

    def extract_confidence(response: str) -> float:
        return next(confidences)

    @manager.govern("fact_checker", confidence_fn=lambda result: result["confidence"])
    def check_fact(claim: str) -> dict[str, Any]:
        calls.append(claim)
        response = fake_llm(claim)
        return {"answer": response, "confidence": extract_confidence(response)}

    assert check_fact("the sky is green")["confidence"] == 0.5
    assert check_fact("the sky is blue")["confidence"] == 0.9  # allowed: the gate was open
    assert manager.contracts["fact_checker"].last_confidence == 0.9
    consumed = manager.report()["fact_checker"]["consumed"]
    with pytest.raises(BudgetExceededError) as ei:
        check_fact("is the sky blue?")
    assert len(calls) == 2  # refused before the call: nothing spent
    e = ei.value
    assert (e.agent_name, e.requested, e.available) == ("fact_checker", 0, 3000 - consumed)
    assert isinstance(e, ConfidenceGateClosed) and isinstance(e, ConfidenceReached)
    assert isinstance(e, BudgetExceeded) and isinstance(e, TBCError)
    assert (e.confidence, e.threshold) == (0.9, 0.85)
    assert "confidence" in str(e) and str(e).startswith("Agent 'fact_checker' requested 0")
    assert manager.report()["fact_checker"]["consumed"] == consumed
    assert manager.report(detail=True)["fact_checker"]["closed"] is True
    assert not manager.allow_further_retrieval("fact_checker")


@dataclass
class _Usage:
    total_tokens: int


@dataclass
class _Response:
    text: str
    usage: _Usage


def test_exact_accounting_with_ledger_record(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register_agent("researcher", priority=3, max_tokens=4000)
    response = _Response("...", _Usage(total_tokens=1234))
    manager.ledger.record("researcher", response.usage.total_tokens)
    assert manager.report()["researcher"] == {
        "allocated": 4000,
        "consumed": 1234,
        "remaining": 2766,
    }
    assert manager.ledger.consumed("researcher") == 1234
    assert manager.ledger.allocated("researcher") == 4000
    assert manager.ledger.remaining("researcher") == 2766
    # exact usage is never refused (it was spent): the agent can go below zero
    manager.ledger.record("researcher", 5000, note="huge")
    assert manager.remaining("researcher") == 4000 - 6234
    assert [e.note for e in manager.ledger.history("researcher")] == ["", "huge"]


def test_record_usage_with_confidence(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register_agent("fact_checker", priority=2, max_tokens=3000, confidence_threshold=0.85)

    @manager.govern("fact_checker")
    def check(claim: str) -> str:
        return fake_llm(claim)

    manager.record_usage("fact_checker", 120, confidence=0.95)
    with pytest.raises(BudgetExceededError):
        check("more?")
    # recorded usage is not gated (as in tbcontracts), only budgeted
    manager.record_usage("fact_checker", 30)
    assert manager.report()["fact_checker"]["consumed"] == 150
    with pytest.raises(BudgetExceededError) as ei:
        manager.record_usage("fact_checker", 5000)
    assert (ei.value.requested, ei.value.available) == (5000, 2850)


def test_running_out_borrows_from_lower_priority_never_below_min_reserve(
    make_manager: MakeManager,
) -> None:
    manager = make_manager()
    manager.register_agent("researcher", priority=3, max_tokens=4000)
    manager.register_agent("critic", priority=1, max_tokens=2000)  # min_reserve 200
    manager.register_agent("writer", priority=2, max_tokens=1000, min_reserve=900)
    manager.record_usage("researcher", 3900)
    manager.record_usage("researcher", 600)  # 500 short: from the critic (lowest priority)
    assert manager.report() == {
        "researcher": {"allocated": 4500, "consumed": 4500, "remaining": 0},
        "critic": {"allocated": 1500, "consumed": 0, "remaining": 1500},
        "writer": {"allocated": 1000, "consumed": 0, "remaining": 1000},
    }
    # the critic can give 1300 more (down to 200), then the writer 100 (down to 900)
    manager.record_usage("researcher", 1400)
    r = manager.report(detail=True)
    assert (r["critic"]["allocated"], r["writer"]["allocated"]) == (200, 900)
    assert (r["researcher"]["borrowed"], r["critic"]["lent"], r["writer"]["lent"]) == (
        1900,
        1800,
        100,
    )
    with pytest.raises(BudgetExceededError) as ei:
        manager.record_usage("researcher", 1)
    assert (ei.value.requested, ei.value.available) == (1, 0)
    assert isinstance(ei.value.cause, BudgetExceeded) and ei.value.budget == "researcher"
    # never uphill: the critic (1) may not take from the writer (2) or the researcher (3)
    manager.record_usage("critic", 200)
    with pytest.raises(BudgetExceededError):
        manager.record_usage("critic", 1)


def test_reallocator_and_ledger_methods(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register_agent("researcher", priority=3, max_tokens=4000)
    manager.register_agent("critic", priority=1, max_tokens=2000)
    manager.register_agent("writer", priority=1, max_tokens=1000)
    manager.record_usage("writer", 500)
    assert manager.reallocator.find_donors(exclude="researcher") == ["critic", "writer"]
    assert manager.reallocator.reallocate("researcher", 0) == 0
    # partial, as in tbcontracts: the critic's 1800 above its reserve, the writer's 400
    assert manager.reallocator.reallocate("researcher", 2500) == 2200
    assert manager.report()["researcher"]["allocated"] == 6200
    assert manager.report()["critic"]["remaining"] == 200  # its min_reserve
    assert manager.reallocator.reallocate("researcher", 10) == 0
    assert manager.reallocator.reallocate("critic", 10) == 0  # never uphill
    manager.ledger.adjust_allocation("critic", 300)
    assert manager.ledger.allocated("critic") == 500
    manager.ledger.register("critic", 900)
    assert manager.ledger.allocated("critic") == 900


def test_unknown_agents(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register_agent("researcher", priority=3, max_tokens=4000)
    for call in (
        lambda: manager.govern("ghost"),
        lambda: manager.record_usage("ghost", 1),
        lambda: manager.remaining("ghost"),
        lambda: manager.ledger.record("ghost", 1),
        lambda: manager.ledger.remaining("ghost"),
        lambda: manager.reallocator.reallocate("ghost", 5),
    ):
        with pytest.raises(UnknownAgentError, match="ghost") as ei:
            call()
        assert isinstance(ei.value, KeyError)  # tbcontracts' Ledger raises KeyError
        assert isinstance(ei.value, NotFound) and isinstance(ei.value, LLMBudgetError)
        assert str(ei.value).startswith(("Agent 'ghost'", "Unknown agent 'ghost'"))


def test_module_exports_every_tbcontracts_name() -> None:
    tbc = pytest.importorskip("tbcontracts")
    from llmbudget.compat import tbcontracts as ours

    for name in tbc.__all__:
        assert hasattr(ours, name), name
    assert BudgetManager.__init__.__defaults__ == (None,)  # telemetry=None, as tbcontracts
