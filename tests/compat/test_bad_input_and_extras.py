"""Bad input (clear errors, nothing half-done) and what the compat API adds to tbcontracts."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from llmbudget import ConfigError, InvalidUsage, LLMBudgetError
from llmbudget.compat.tbcontracts import (
    BudgetContract,
    BudgetExceededError,
    BudgetManager,
    ConfidenceGate,
    InvalidContract,
    Ledger,
    Reallocator,
    TBCError,
    TelemetryRecorder,
    count_text_tokens,
    estimate_tokens,
)
from llmbudget.store.memory import MemoryStore
from llmbudget.tokens import count_text

from .conftest import MakeManager


@pytest.mark.parametrize("bad", ["high", 2.5, True, None, [3]])
def test_priority_of_the_wrong_type(make_manager: MakeManager, bad: Any) -> None:
    m = make_manager()
    with pytest.raises(InvalidContract, match="priority must be a whole number") as ei:
        m.register_agent("a", priority=bad)
    assert isinstance(ei.value, TypeError) and isinstance(ei.value, ValueError)
    assert isinstance(ei.value, InvalidUsage) and isinstance(ei.value, TBCError)
    assert m.contracts == {} and m.report() == {}


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"priority": 0}, "priority must be >= 1"),
        ({"priority": -3}, "priority must be >= 1"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": 100, "min_reserve": 101}, "min_reserve must be between 0 and max_tokens"),
        ({"min_reserve": -1}, "min_reserve"),
        ({"confidence_threshold": 1.01}, "confidence_threshold"),
        ({"confidence_threshold": -0.1}, "confidence_threshold"),
        ({"confidence_threshold": math.nan}, "confidence_threshold"),
        ({"confidence_threshold": math.inf}, "confidence_threshold"),
    ],
)
def test_values_out_of_range(make_manager: MakeManager, kw: dict[str, Any], needle: str) -> None:
    m = make_manager()
    with pytest.raises(ValueError, match=needle) as ei:
        m.register_agent("a", **kw)
    assert isinstance(ei.value, LLMBudgetError)
    assert "a" not in m.contracts


def test_confidence_threshold_of_the_wrong_type(make_manager: MakeManager) -> None:
    with pytest.raises(TypeError, match="confidence_threshold"):
        make_manager().register_agent("a", confidence_threshold="high")


def test_bad_agent_names_and_counts(make_manager: MakeManager) -> None:
    m = make_manager()
    with pytest.raises(TypeError, match="agent_name"):
        m.register_agent("")
    with pytest.raises(TypeError, match="agent_name"):
        m.register_agent(7)  # type: ignore[arg-type]
    m.register_agent("a", max_tokens=100)
    for bad in (-1, 1.5, math.nan, "10", True):
        with pytest.raises(InvalidUsage, match="tokens"):
            m.record_usage("a", bad)
        with pytest.raises(InvalidUsage, match="tokens"):
            m.ledger.record("a", bad)
    assert m.report()["a"]["consumed"] == 0


def test_a_confidence_function_that_raises(make_manager: MakeManager) -> None:
    """The call happened: its usage is recorded, the gate is unchanged, and the error from
    the confidence function propagates as is, with a note saying what was recorded."""
    m = make_manager()
    m.register_agent("fc", max_tokens=1000, confidence_threshold=0.8)

    def broken(result: Any) -> float:
        raise KeyError("confidence")

    @m.govern("fc", confidence_fn=broken)
    def call(p: str) -> dict[str, str]:
        return {"answer": "yes"}

    with pytest.raises(KeyError, match="confidence") as ei:
        call("is it so")
    assert any("recorded (3 tokens)" in n for n in ei.value.__notes__)
    assert m.report()["fc"] == {"allocated": 1000, "consumed": 3, "remaining": 997}
    assert m.contracts["fc"].last_confidence is None and m.allow_further_retrieval("fc")
    call2 = m.govern("fc", confidence_fn=lambda r: 0.9)(lambda p: "ok")
    call2("again")  # the agent still works; now confident
    with pytest.raises(BudgetExceededError):
        call2("once more")


@pytest.mark.parametrize("bad", [math.nan, 1.5, -0.2, "high", None, True])
def test_a_confidence_function_returning_garbage(make_manager: MakeManager, bad: Any) -> None:
    m = make_manager()
    m.register_agent("fc", max_tokens=1000, confidence_threshold=0.8)
    call = m.govern("fc", confidence_fn=lambda r: bad)(lambda p: "answer")
    with pytest.raises(InvalidUsage, match=r"confidence_fn\(result\) must be a number from 0"):
        call("q")
    assert m.report()["fc"]["consumed"] == 2
    assert m.allow_further_retrieval("fc")


def test_exceptions_in_the_call_release_the_hold(make_manager: MakeManager) -> None:
    m = make_manager()
    m.register_agent("a", max_tokens=100)

    @m.govern("a", max_completion_tokens=50)
    def call(p: str) -> str:
        raise RuntimeError("provider down")

    with pytest.raises(RuntimeError, match="provider down"):
        call("hello there")
    assert m.report(detail=True)["a"]["reserved"] == 0
    assert m.remaining("a") == 100


def test_stores_without_pools_are_refused() -> None:
    class NoPools(MemoryStore):
        supports_pools = False

    with pytest.raises(ConfigError, match="memory:// or sqlite"):
        BudgetManager(store=NoPools())


def test_refused_before_the_call_when_the_hold_cannot_fit(make_manager: MakeManager) -> None:
    m = make_manager(completion_tokens=500)
    m.register_agent("researcher", priority=3, max_tokens=400)
    m.register_agent("critic", priority=1, max_tokens=200, min_reserve=150)
    ran: list[str] = []

    @m.govern("researcher")
    def call(p: str) -> str:
        ran.append(p)
        return "short"

    with pytest.raises(BudgetExceededError) as ei:
        call("hi")  # 1 + 500 held > 400 + 50 borrowable
    assert (ei.value.requested, ei.value.available, ran) == (501, 450, [])
    ok = m.govern("researcher", max_completion_tokens=420)(lambda p: "short")
    assert ok("hi") == "short"  # 421: borrows 21 from the critic, then settles at 2
    r = m.report(detail=True)
    assert (r["researcher"]["consumed"], r["critic"]["lent"]) == (2, 21)


def test_model_tokenizer(make_manager: MakeManager) -> None:
    m = make_manager(model="gpt-4o")
    m.register_agent("a", max_tokens=1000)
    m.register_agent("b", max_tokens=1000)
    prompt, answer = "Summarise the quarterly figures, please.", "Revenue rose 12%."
    m.govern("a")(lambda p: answer)(prompt)
    m.govern("b", model=None)(lambda p: answer)(prompt)  # the manager's model
    expected = count_text("gpt-4o", prompt).tokens + count_text("gpt-4o", answer).tokens
    assert m.report()["a"]["consumed"] == m.report()["b"]["consumed"] == expected
    assert count_text_tokens(prompt, "gpt-4o") == count_text("gpt-4o", prompt).tokens
    assert estimate_tokens((prompt, 3), {"x": answer}, None) == 6 + 3  # 1.3 a word
    with m.reserve("a", text=prompt, max_completion_tokens=100) as r:
        assert r.prompt_tokens == count_text("gpt-4o", prompt).tokens
        r.commit(prompt_tokens=r.prompt_tokens, completion_tokens=7)
    assert [e.note for e in m.ledger.history("a")] == ["<lambda>", ""]


def test_reserve_then_commit_with_confidence(make_manager: MakeManager) -> None:
    m = make_manager()
    m.register_agent("fc", max_tokens=1000, confidence_threshold=0.8)
    with m.reserve("fc", 100, 200, note="exact") as r:
        assert m.report(detail=True)["fc"]["reserved"] == 300
        r.commit(prompt_tokens=100, completion_tokens=42, confidence=0.85)
    assert m.report()["fc"]["consumed"] == 142
    with pytest.raises(BudgetExceededError, match="confidence"):
        m.reserve("fc", 1, 1)


def test_async_functions_are_governed(make_manager: MakeManager) -> None:
    m = make_manager()
    m.register_agent("a", max_tokens=1000, confidence_threshold=0.5)

    @m.govern("a", confidence_fn=lambda r: 0.9)
    async def call(p: str) -> str:
        await asyncio.sleep(0)
        return "three word answer"

    assert asyncio.run(call("one two")) == "three word answer"
    assert m.report()["a"]["consumed"] == 2 + 3
    with pytest.raises(BudgetExceededError):
        asyncio.run(call("again"))


def test_agent_names_that_are_not_budget_names(make_manager: MakeManager) -> None:
    m = make_manager()
    m.register_agent("Research Lead (EU)*", priority=2, max_tokens=100)
    m.register_agent("Research Lead (EU)?", priority=1, max_tokens=100)
    m.record_usage("Research Lead (EU)*", 150)  # borrows 40 (the other keeps its 10 %)
    assert m.report() == {
        "Research Lead (EU)*": {"allocated": 150, "consumed": 150, "remaining": 0},
        "Research Lead (EU)?": {"allocated": 50, "consumed": 0, "remaining": 50},
    }


def test_standalone_ledger_and_reallocator() -> None:
    """Ledger and Reallocator made by hand, as tbcontracts allows (in memory, thread-safe)."""
    contracts = {
        "hi": BudgetContract("hi", priority=3, max_tokens=100),
        "lo": BudgetContract("lo", priority=1, max_tokens=100, min_reserve=20),
        "top": BudgetContract("top", priority=5, max_tokens=100),
    }
    ledger = Ledger()
    for c in contracts.values():
        ledger.register(c.agent_name, c.max_tokens)
    ledger.record("hi", 90, note="x")
    realloc = Reallocator(contracts, ledger)
    assert realloc.find_donors(exclude="hi") == ["lo", "top"]
    assert realloc.reallocate("hi", 100) == 80  # never from "top"; "lo" keeps 20
    assert ledger.snapshot() == {
        "hi": {"allocated": 180, "consumed": 90, "remaining": 90},
        "lo": {"allocated": 20, "consumed": 0, "remaining": 20},
        "top": {"allocated": 100, "consumed": 0, "remaining": 100},
    }
    assert [(e.agent_name, e.tokens, e.note) for e in ledger.history("hi")] == [("hi", 90, "x")]
    with pytest.raises(KeyError):
        ledger.record("ghost", 1)
    assert ConfidenceGate.allow_further_retrieval(contracts["hi"], 0.99)  # no threshold
    gated = BudgetContract("g", confidence_threshold=0.7)
    assert ConfidenceGate.allow_further_retrieval(gated, None)
    assert ConfidenceGate.allow_further_retrieval(gated, 0.69)
    assert not ConfidenceGate.allow_further_retrieval(gated, 0.7)


def test_telemetry_is_off_by_default_and_spans_with_a_tracer(make_manager: MakeManager) -> None:
    spans: list[tuple[str, dict[str, Any]]] = []

    class Span:
        def __init__(self, name: str) -> None:
            self.name, self.attrs = name, {}

        def __enter__(self) -> Span:
            return self

        def __exit__(self, *exc: object) -> None:
            spans.append((self.name, self.attrs))

        def set_attribute(self, k: str, v: Any) -> None:
            self.attrs[k] = v

        def record_exception(self, e: BaseException) -> None:
            self.attrs["exception"] = type(e).__name__

    class Tracer:
        def start_as_current_span(self, name: str) -> Span:
            return Span(name)

    assert not make_manager().telemetry.enabled
    m = make_manager(telemetry=Tracer())
    assert isinstance(m.telemetry, TelemetryRecorder) and m.telemetry.enabled
    m.register_agent("hi", priority=2, max_tokens=10)
    m.register_agent("lo", priority=1, max_tokens=100, min_reserve=0)
    m.record_usage("hi", 30)
    names = [n for n, _ in spans]
    assert names[:2] == ["tbc.register_agent", "tbc.register_agent"]
    assert tuple(names[2:4]) == ("tbc.reallocate", "tbc.record_usage")
    assert spans[2][1]["tbc.tokens_moved"] == 20 and spans[2][1]["tbc.donor_agent"] == "lo"
