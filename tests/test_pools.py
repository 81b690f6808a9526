"""Pools (priority reallocation) and confidence gates, on every store (memory, SQLite, Redis,
PostgreSQL)."""

from __future__ import annotations

import math
import multiprocessing as mp
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmbudget import (
    BudgetExceeded,
    ConfidenceReached,
    ConfigError,
    Governor,
    InvalidUsage,
    PolicyError,
)
from llmbudget.testing import CapturedEvents
from store._servers import drop, fresh_url, need

MakeGov = Callable[..., Governor]


def team(**over: Any) -> dict[str, Any]:
    """tbcontracts' example: a researcher (priority 3) and a critic (priority 1) in a pool."""
    budgets = [
        {
            "name": "researcher",
            "match": {"agent": "researcher"},
            "per": ["run"],
            "limit": 4000,
            "pool": "team",
            "priority": 3,
        },
        {
            "name": "critic",
            "match": {"agent": "critic"},
            "per": ["run"],
            "limit": 2000,
            "pool": "team",
            "priority": 1,
            "min_reserve": 500,
        },
        {
            "name": "writer",
            "match": {"agent": "writer"},
            "per": ["run"],
            "limit": 1000,
            "pool": "team",
            "priority": 1,
        },
    ]
    for b in budgets:
        b.update(over.get(b["name"], {}))
    return {"budgets": budgets}


def st(gov: Governor) -> dict[str, Any]:
    return {s.budget: s for s in gov.status()}


def test_short_budget_borrows_from_lower_priority_most_idle_first(
    make_gov: MakeGov, events: CapturedEvents
) -> None:
    gov = make_gov(team())
    gov.record(agent="writer", prompt_tokens=600, completion_tokens=0)  # writer 60 % used
    gov.record(agent="researcher", prompt_tokens=3900, completion_tokens=0)
    # researcher needs 600 more: 500 short. critic (idle, 0 %) lends before writer (60 %)
    r = gov.reserve(agent="researcher", prompt_tokens=600, max_completion_tokens=0)
    s = st(gov)
    assert (s["researcher"].borrowed, s["critic"].lent, s["writer"].lent) == (500, 500, 0)
    assert s["researcher"].limit == 4500 and s["critic"].limit == 1500
    r.commit()
    transfers = [e for e in events.events if e.kind == "transfer"]
    assert [(e.data["donor_budget"], e.budget, e.data["amount"]) for e in transfers] == [
        ("critic", "researcher", 500)
    ]
    assert [e.kind for e in gov.store.audit_events(kind="transfer")] == ["transfer"]


def test_never_below_a_donors_min_reserve_then_next_donor(make_gov: MakeGov) -> None:
    gov = make_gov(team())
    gov.record(agent="researcher", prompt_tokens=4000, completion_tokens=0)
    # both donors idle and of equal priority: policy order, the critic first, which can give
    # 2000 - 500 (its min_reserve) = 1500
    gov.reserve(agent="researcher", prompt_tokens=1500, max_completion_tokens=0).commit()
    s = st(gov)
    assert (s["researcher"].borrowed, s["critic"].lent) == (1500, 1500)
    # the critic is dry (down to its reserve): the writer lends next
    gov.reserve(agent="researcher", prompt_tokens=400, max_completion_tokens=0).commit()
    s = st(gov)
    assert (s["researcher"].borrowed, s["critic"].lent, s["writer"].lent) == (1900, 1500, 400)
    # the critic still has its reserve, and nothing more
    gov.reserve(agent="critic", prompt_tokens=500, max_completion_tokens=0).commit()
    with pytest.raises(BudgetExceeded) as ei:
        gov.reserve(agent="critic", prompt_tokens=601, max_completion_tokens=0)
    assert ei.value.budget == "critic"  # the writer has 600 left to lend, not 601
    # everything spendable is spent or lent: the researcher is refused
    gov.reserve(agent="critic", prompt_tokens=600, max_completion_tokens=0).commit()
    with pytest.raises(BudgetExceeded) as ei:
        gov.reserve(agent="researcher", prompt_tokens=1, max_completion_tokens=0)
    assert ei.value.budget == "researcher"


def test_never_uphill_from_a_more_important_agent(make_gov: MakeGov) -> None:
    gov = make_gov(team())
    gov.record(agent="critic", prompt_tokens=2000, completion_tokens=0)
    # the critic (priority 1) may not take from the researcher (3); the writer (1) is equal
    gov.reserve(agent="critic", prompt_tokens=800, max_completion_tokens=0).commit()
    s = st(gov)
    assert (s["writer"].lent, s.get("researcher") is None) == (800, True)
    with pytest.raises(BudgetExceeded):
        gov.reserve(agent="critic", prompt_tokens=300, max_completion_tokens=0)
    assert "researcher" not in st(gov)


def test_refused_borrow_changes_nothing(make_gov: MakeGov) -> None:
    gov = make_gov(team())
    gov.record(agent="researcher", prompt_tokens=4000, completion_tokens=0)
    with pytest.raises(BudgetExceeded):
        gov.reserve(agent="researcher", prompt_tokens=10_000, max_completion_tokens=0)
    assert all(s.lent == 0 and s.borrowed == 0 for s in gov.status())


def test_confidence_gate_closes_the_agent_for_its_run(
    make_gov: MakeGov, events: CapturedEvents
) -> None:
    gov = make_gov(team(researcher={"confidence_threshold": 0.85}))
    r = gov.reserve(agent="researcher", prompt_tokens=100, max_completion_tokens=50)
    r.commit(prompt_tokens=100, completion_tokens=20, confidence=0.6)
    r = gov.reserve(agent="researcher", prompt_tokens=100, max_completion_tokens=50)
    r.commit(prompt_tokens=100, completion_tokens=20, confidence=0.9)
    with pytest.raises(ConfidenceReached) as ei:
        gov.reserve(agent="researcher", prompt_tokens=1, max_completion_tokens=1)
    assert "confidence threshold (0.85)" in str(ei.value)
    assert isinstance(ei.value, BudgetExceeded)
    assert "confidence_gate" in events.kinds()
    # another run is open; other agents are not affected
    gov.reserve(agent="researcher", run="r2", prompt_tokens=1, max_completion_tokens=1).commit()
    gov.reserve(agent="critic", prompt_tokens=1, max_completion_tokens=1).commit()
    closed = {s.partition["run"]: s.closed for s in gov.status() if s.budget == "researcher"}
    assert closed == {"r1": True, "r2": False}


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, "high", True])
def test_bad_confidence_is_refused(make_gov: MakeGov, bad: Any) -> None:
    gov = make_gov(team(researcher={"confidence_threshold": 0.85}))
    r = gov.reserve(agent="researcher", prompt_tokens=10, max_completion_tokens=1)
    with pytest.raises(InvalidUsage, match="confidence"):
        r.commit(prompt_tokens=10, completion_tokens=1, confidence=bad)


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"critic": {"min_reserve": 5000}}, "min_reserve"),
        ({"critic": {"priority": "high"}}, "priority"),
        ({"critic": {"window": "day"}}, "pool members must share"),
        ({"critic": {"confidence_threshold": 2}}, "confidence_threshold"),
    ],
)
def test_bad_pool_settings(over: dict[str, Any], needle: str) -> None:
    with pytest.raises(PolicyError, match=needle):
        Governor(team(**over), "memory://")


def test_stores_without_pools_are_refused_clearly() -> None:
    from llmbudget.store import Store
    from llmbudget.store.memory import MemoryStore

    class Bare(Store):  # the interface's default: no pools
        pass

    class NoPools(MemoryStore):  # a store that does not implement them
        supports_pools = False

    assert Bare.supports_pools is False
    with pytest.raises(ConfigError, match="pools or confidence gates"):
        Governor(team(), NoPools())


def _needy(url: str, agent: str, q: Any) -> None:
    gov = Governor(team(), url, labels={"run": "race"}, log_events=False)
    got = 0
    for _ in range(200):
        try:
            gov.reserve(agent=agent, prompt_tokens=50, max_completion_tokens=0).commit()
            got += 50
        except BudgetExceeded:
            break
    gov.close()
    q.put(got)


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
)
def test_two_needy_agents_racing_for_one_donor_never_overdraw_it(kind: str, tmp_path: Path) -> None:
    """researcher and writer... both borrow from the critic from separate processes."""
    need(kind)
    url = fresh_url(kind, tmp_path)
    try:
        _race(url)
    finally:
        drop(kind, url)


def _race(url: str) -> None:
    policy = team(writer={"priority": 2})
    Governor(policy, url).close()
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_needy, args=(url, a, q)) for a in ("researcher", "writer") * 3]
    for p in procs:
        p.start()
    got = sum(q.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    with Governor(policy, url, labels={"run": "race"}) as gov:
        s = st(gov)
    critic = s["critic"]
    assert critic.lent <= 2000 - 500  # never below its min_reserve
    assert critic.lent == 1500  # demand far above supply: all of the spare was lent
    assert s["researcher"].used <= 4000 + s["researcher"].borrowed
    assert s["writer"].used <= 1000 + s["writer"].borrowed
    assert got == s["researcher"].used + s["writer"].used == 4000 + 1000 + 1500


def test_govern_decorator_feeds_the_confidence_gate(make_gov: MakeGov) -> None:
    gov = make_gov(team(researcher={"confidence_threshold": 0.85}))

    @gov.govern(
        agent="researcher",
        prompt_tokens=10,
        max_completion_tokens=10,
        usage=lambda r: (10, 5),
        confidence=lambda r: r["confidence"],
    )
    def research(conf: float) -> dict[str, float]:
        return {"confidence": conf}

    @gov.govern(
        agent="researcher",
        prompt_tokens=10,
        max_completion_tokens=10,
        usage=lambda r: (10, 5),
        confidence=lambda r: r["missing"],
    )
    def broken_confidence() -> dict[str, float]:
        return {}

    with pytest.raises(KeyError):
        broken_confidence()  # usage still recorded, the gate does not move
    research(0.5)
    research(0.9)
    with pytest.raises(ConfidenceReached):
        research(0.1)
    s = st(gov)["researcher"]
    assert (s.used, s.reserved, s.closed) == (45, 0, True)
