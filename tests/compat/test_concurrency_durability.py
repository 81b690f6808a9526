"""Many threads (and processes) on one team's budgets; books that survive a restart."""

from __future__ import annotations

import multiprocessing as mp
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from llmbudget.compat.tbcontracts import BudgetExceededError, BudgetManager

from .conftest import MakeManager

TEAM = {"researcher": (3, 3000, 300), "writer": (2, 2000, 300), "critic": (1, 1000, 100)}


def register(m: BudgetManager) -> None:
    for name, (priority, max_tokens, reserve) in TEAM.items():
        m.register_agent(name, priority=priority, max_tokens=max_tokens, min_reserve=reserve)


def hammer(m: BudgetManager, seed: int, rounds: int) -> int:
    """Spend at random through record_usage and governed calls; return what was granted."""
    rng = random.Random(seed)
    calls = {
        name: m.govern(name, max_completion_tokens=20)(lambda p: "one two three") for name in TEAM
    }
    granted = 0
    for _ in range(rounds):
        name = rng.choice(list(TEAM))
        try:
            if rng.random() < 0.5:
                n = rng.randint(1, 60)
                m.record_usage(name, n)
                granted += n
            else:
                calls[name]("alpha beta gamma delta")  # 5 + 3 tokens
                granted += 5 + 3
        except BudgetExceededError:
            pass
    return granted


def check_books(m: BudgetManager, granted: int) -> None:
    r = m.report(detail=True)
    assert sum(a["allocated"] for a in r.values()) == 6000  # moved, never created
    assert sum(a["consumed"] for a in r.values()) == granted  # every grant counted once
    for name, a in r.items():
        assert a["consumed"] <= a["allocated"], name  # no over-allocation
        assert a["reserved"] == 0
        assert a["lent"] <= TEAM[name][1] - TEAM[name][2], name  # never below min_reserve
    assert sum(a["borrowed"] for a in r.values()) == sum(a["lent"] for a in r.values())


def test_many_threads_never_over_allocate(make_manager: MakeManager) -> None:
    m = make_manager()
    register(m)
    results: list[int] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        got = hammer(m, seed, 150)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16
    check_books(m, sum(results))
    # demand (16 x 150 calls of ~8-30 tokens) far above supply: every spare token was used
    assert sum(a["remaining"] for a in m.report().values()) < 200


def test_registering_while_others_spend(make_manager: MakeManager) -> None:
    m = make_manager()
    register(m)
    stop = threading.Event()
    granted: list[int] = []

    def spender() -> None:
        total = 0
        while not stop.is_set():
            try:
                m.record_usage("researcher", 1)
                total += 1
            except BudgetExceededError:
                break
        granted.append(total)

    t = threading.Thread(target=spender)
    t.start()
    for i in range(30):
        m.register_agent(f"helper{i}", priority=1, max_tokens=10, min_reserve=0)
    stop.set()
    t.join()
    assert m.report()["researcher"]["consumed"] == granted[0]


def _process(db: str, seed: int, q: Any) -> None:
    m = BudgetManager(store=f"sqlite:///{db}")
    register(m)
    q.put(hammer(m, seed, 120))
    m.close()


@pytest.mark.sqlite
def test_processes_sharing_a_sqlite_file_never_over_allocate(tmp_path: Path) -> None:
    db = str(tmp_path / "team.db")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_process, args=(db, i, q)) for i in range(4)]
    for p in procs:
        p.start()
    got = sum(q.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    m = BudgetManager(store=f"sqlite:///{db}")
    register(m)
    check_books(m, got)
    m.close()


@pytest.mark.sqlite
def test_a_sqlite_store_survives_a_new_manager(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'team.db'}"
    m1 = BudgetManager(store=url)
    register(m1)
    m1.register_agent("fact_checker", priority=2, max_tokens=500, confidence_threshold=0.8)
    m1.record_usage("researcher", 2900)
    m1.record_usage("researcher", 400, note="borrowing")  # 300 from the critic
    m1.ledger.record("writer", 123, note="exact")
    m1.record_usage("fact_checker", 50, confidence=0.95)
    before = m1.report(detail=True)
    history = [(e.agent_name, e.tokens, e.note) for e in m1.ledger.history()]
    m1.close()

    m2 = BudgetManager(store=url)
    register(m2)
    m2.register_agent("fact_checker", priority=2, max_tokens=500, confidence_threshold=0.8)
    after = m2.report(detail=True)
    for row in (*before.values(), *after.values()):
        row.pop("last_confidence")  # in-process only
    assert after == before
    assert after["researcher"]["allocated"] == 3300 and after["critic"]["lent"] == 300
    assert [(e.agent_name, e.tokens, e.note) for e in m2.ledger.history()] == history
    gate = m2.govern("fact_checker")(lambda p: p)
    with pytest.raises(BudgetExceededError, match="confidence"):
        gate("still confident?")  # the gate closed in the first manager stays closed

    # another run in the same file starts afresh
    m3 = BudgetManager(store=url, run="run-2")
    register(m3)
    assert m3.report()["researcher"] == {"allocated": 3000, "consumed": 0, "remaining": 3000}
    m2.close()
    m3.close()
