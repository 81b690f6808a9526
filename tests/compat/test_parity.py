"""The same scripted scenarios against the real ``tbcontracts`` package and ours.

Where behaviour is the same, the traces (every report, which calls raise and with what,
``remaining()``, donors, history) must be equal. Where it differs on purpose, the test
pins both sides and says why (see docs/compat-tbcontracts.md, "What differs").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from llmbudget import InvalidUsage
from llmbudget.compat import tbcontracts as ours

from .conftest import MakeManager, fake_llm

tbc = pytest.importorskip("tbcontracts", reason="pip install token-budget-contracts==0.3.0")


def outcome(mod: ModuleType, step: Callable[[], Any]) -> tuple[Any, ...]:
    """What a step did, in tbcontracts' terms."""
    try:
        value = step()
    except mod.BudgetExceededError as e:
        return ("BudgetExceededError", e.agent_name, e.requested, e.available)
    except (mod.UnknownAgentError, KeyError):  # tbcontracts' Ledger raises plain KeyError
        return ("UnknownAgent",)
    except TypeError:  # ours: InvalidContract, a TypeError and a ValueError
        return ("TypeError",)
    except ValueError:
        return ("ValueError",)
    if isinstance(value, mod.BudgetContract):
        c = value
        return ("ok", c.agent_name, c.priority, c.max_tokens, c.min_reserve, c.confidence_threshold)
    return ("ok", value)


def scenario(mod: ModuleType, manager: Any) -> list[tuple[Any, ...]]:
    trace: list[tuple[Any, ...]] = []

    def do(step: Callable[[], Any]) -> None:
        trace.append(outcome(mod, step))

    do(lambda: manager.register_agent("researcher", priority=3, max_tokens=4000))
    do(lambda: manager.register_agent("critic", priority=1, max_tokens=2000))
    do(lambda: manager.register_agent("writer", priority=2, max_tokens=1000, min_reserve=500))
    do(
        lambda: manager.register_agent(
            "fact_checker", priority=2, max_tokens=3000, confidence_threshold=0.85
        )
    )

    @manager.govern("researcher")
    def research(prompt: str, style: str = "terse") -> str:
        return fake_llm(prompt)

    confidences = iter([0.4, 0.9, 0.1])

    @manager.govern("fact_checker", confidence_fn=lambda r: r["confidence"])
    def check(claim: str) -> dict[str, Any]:
        return {"answer": fake_llm(claim), "confidence": next(confidences)}

    do(lambda: research("find the latest figures on X", style="a long and careful style"))
    do(manager.report)
    do(lambda: manager.record_usage("researcher", 3700))
    do(lambda: manager.record_usage("researcher", 800, note="big"))  # borrows from the critic
    do(manager.report)
    # the order among equal-priority donors differs on purpose (see test_difference_most_idle)
    do(lambda: sorted(manager.reallocator.find_donors(exclude="researcher")))
    do(lambda: manager.record_usage("critic", 1500))
    do(lambda: manager.record_usage("critic", 5000))  # no donor of priority <= 1
    do(lambda: check("the sky is green"))
    do(lambda: check("the sky is blue"))
    do(lambda: check("is it?"))  # gated
    do(lambda: manager.record_usage("fact_checker", 10))  # recorded usage is not gated
    do(lambda: manager.ledger.record("writer", 200, note="exact"))
    do(lambda: manager.ledger.record("writer", 2000))  # exact usage: never refused
    for name in ("researcher", "critic", "writer", "fact_checker"):
        do(lambda name=name: manager.remaining(name))
        do(lambda name=name: manager.ledger.consumed(name))
        do(lambda name=name: manager.ledger.allocated(name))
    do(lambda: manager.remaining("ghost"))
    do(lambda: manager.record_usage("ghost", 1))
    do(lambda: manager.govern("ghost"))
    do(lambda: manager.ledger.record("ghost", 1))
    do(lambda: manager.reallocator.reallocate("ghost", 1))
    do(lambda: manager.record_usage("writer", -1))
    do(lambda: manager.register_agent("x", priority=0))
    do(lambda: manager.register_agent("x", max_tokens=-5))
    do(lambda: manager.register_agent("x", max_tokens=100, min_reserve=200))
    do(lambda: manager.register_agent("x", confidence_threshold=1.5))
    do(lambda: manager.register_agent("x", confidence_threshold=math.nan))
    do(lambda: manager.register_agent("x", priority="high"))  # type: ignore[arg-type]
    do(lambda: sorted(manager.contracts))
    do(lambda: [(e.agent_name, e.tokens, e.note) for e in manager.ledger.history()])
    do(lambda: [e.tokens for e in manager.ledger.history("writer")])
    do(lambda: manager.reallocator.reallocate("researcher", 100))
    do(manager.report)
    do(manager.ledger.snapshot)
    return trace


def test_the_same_scenario_gives_the_same_trace(make_manager: MakeManager) -> None:
    theirs = scenario(tbc, tbc.BudgetManager())
    mine = scenario(ours, make_manager())
    assert len(mine) == len(theirs)
    for i, (a, b) in enumerate(zip(theirs, mine, strict=True)):
        assert a == b, f"step {i}: tbcontracts {a} != ours {b}"
    # the scenario did exercise borrowing, the gate and refusals
    assert any(t[:3] == ("BudgetExceededError", "fact_checker", 0) for t in mine)
    assert any(t[:2] == ("BudgetExceededError", "critic") for t in mine)
    assert ("UnknownAgent",) in mine and ("ValueError",) in mine and ("TypeError",) in mine


def _pair(make_manager: MakeManager) -> tuple[Any, Any]:
    return tbc.BudgetManager(), make_manager()


def test_difference_a_call_that_cannot_fit_is_refused_before_it_runs(
    make_manager: MakeManager,
) -> None:
    """tbcontracts runs the call, then raises (the tokens were spent, nothing recorded);
    we count the prompt first and refuse before the call."""
    prompt = " ".join(["w"] * 100)  # 130 tokens by the word heuristic
    for m, runs in zip(_pair(make_manager), (1, 0), strict=True):
        m.register_agent("solo", priority=1, max_tokens=100)
        ran = []

        @m.govern("solo")
        def call(p: str) -> str:
            ran.append(p)  # noqa: B023 - called within the iteration
            return "ok"

        with pytest.raises(Exception, match="requested 13[0-9] tokens but only 100") as ei:
            call(prompt)
        assert type(ei.value).__name__ == "BudgetExceededError"
        assert len(ran) == runs
        assert m.report()["solo"] == {"allocated": 100, "consumed": 0, "remaining": 100}


def test_difference_a_result_that_overflows_is_recorded_and_returned_as_partial(
    make_manager: MakeManager,
) -> None:
    """Both raise BudgetExceededError when the result pushes the call past the budget.
    tbcontracts records nothing (the spend disappears from the books); we record what was
    spent (remaining goes negative) and attach the result to the error as ``.partial``."""
    theirs, mine = _pair(make_manager)
    consumed = {}
    for m in (theirs, mine):
        m.register_agent("solo", priority=1, max_tokens=100)

        @m.govern("solo")
        def call(p: str) -> str:
            return " ".join(["w"] * 100)

        with pytest.raises(Exception, match="requested 131 tokens but only 100") as ei:
            call("hi")
        consumed[m] = m.report()["solo"]["consumed"]
    assert (consumed[theirs], consumed[mine]) == (0, 131)
    assert isinstance(ei.value, ours.BudgetExceededError)
    assert ei.value.partial == " ".join(["w"] * 100)


def test_difference_a_refused_borrow_moves_nothing(make_manager: MakeManager) -> None:
    """tbcontracts moves what donors could give and then raises anyway, leaving the
    allocations changed; our borrow is all or nothing, inside the atomic reserve."""
    reports = []
    for m in _pair(make_manager):
        m.register_agent("researcher", priority=3, max_tokens=1000)
        m.register_agent("critic", priority=1, max_tokens=1000)
        with pytest.raises(Exception, match="requested 5000 tokens but only 1900"):
            m.record_usage("researcher", 5000)
        reports.append({n: r["allocated"] for n, r in m.report().items()})
    assert reports == [{"researcher": 1900, "critic": 100}, {"researcher": 1000, "critic": 1000}]


def test_difference_most_idle_is_the_least_used_share(make_manager: MakeManager) -> None:
    """Among donors of equal priority tbcontracts drains the one with the most tokens left;
    we drain the most idle one (least used share of its allocation), as the governor does."""
    lent, order = [], []
    for m in _pair(make_manager):
        m.register_agent("researcher", priority=3, max_tokens=100)
        m.register_agent("big", priority=1, max_tokens=10_000, min_reserve=0)
        m.register_agent("small", priority=1, max_tokens=1000, min_reserve=0)
        m.record_usage("big", 5000)  # 50 % used, 5000 left; small: 0 % used, 1000 left
        m.record_usage("researcher", 600)
        lent.append({n: r["allocated"] for n, r in m.report().items() if n != "researcher"})
        order.append(m.reallocator.find_donors(exclude="researcher"))
    assert lent == [{"big": 9500, "small": 1000}, {"big": 10_000, "small": 500}]
    assert order == [["big", "small"], ["small", "big"]]


def test_difference_confidences_are_checked(make_manager: MakeManager) -> None:
    """tbcontracts stores any confidence (1.5, NaN, "high") and acts on it later; we refuse
    a value outside 0-1 at once with InvalidUsage (a ValueError). From a confidence_fn the
    call's usage is still recorded; from record_usage(confidence=) nothing is."""
    theirs, mine = _pair(make_manager)
    for m in (theirs, mine):
        m.register_agent("fc", priority=1, max_tokens=1000, confidence_threshold=0.8)
    theirs.record_usage("fc", 10, confidence=math.nan)
    assert theirs.contracts["fc"].last_confidence is not None
    with pytest.raises(InvalidUsage, match="confidence"):
        mine.record_usage("fc", 10, confidence=math.nan)
    assert mine.report()["fc"]["consumed"] == 0

    @mine.govern("fc", confidence_fn=lambda r: 1.5)
    def call(p: str) -> str:
        return "answer"

    with pytest.raises(ValueError, match="confidence_fn"):
        call("q")
    assert mine.report()["fc"]["consumed"] == 2  # "q" + "answer"
    assert mine.allow_further_retrieval("fc")  # the gate did not move


def test_difference_wrong_types_are_refused(make_manager: MakeManager) -> None:
    """tbcontracts accepts priority=2.5 and ledger.record(agent, -10); we refuse both."""
    theirs, mine = _pair(make_manager)
    theirs.register_agent("a", priority=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="priority"):
        mine.register_agent("a", priority=2.5)  # type: ignore[arg-type]
    theirs.register_agent("b")
    mine.register_agent("b")
    theirs.ledger.record("b", -10)
    with pytest.raises(ValueError, match="negative"):
        mine.ledger.record("b", -10)


def test_difference_a_closed_gate_stays_closed_for_the_run(make_manager: MakeManager) -> None:
    """In tbcontracts a lower confidence reported later (record_usage) or re-registering
    reopens the gate; ours closes the agent's counter in the store for the whole run (durable
    and seen by every process); a new ``run=`` starts open."""
    theirs, mine = _pair(make_manager)
    results = []
    for m in (theirs, mine):
        m.register_agent("fc", priority=1, max_tokens=1000, confidence_threshold=0.8)

        @m.govern("fc")
        def call(p: str) -> str:
            return "answer"

        m.record_usage("fc", 10, confidence=0.9)
        m.record_usage("fc", 10, confidence=0.1)
        try:
            call("again")
            results.append("open")
        except Exception:
            results.append("closed")
    assert results == ["open", "closed"]
