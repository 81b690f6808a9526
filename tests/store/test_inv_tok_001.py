"""INV-TOK-001 on every store: many processes × threads race for one limit.

16 processes × 4 threads (memory: 64 threads, it lives in one process; the asyncio Redis store:
4 concurrent tasks per process) reserve upper-bound
estimates against a shared limit, commit actuals at or below them, and keep asking — with
smaller and smaller requests once refused — until even one token is refused. The limit is
exhausted many times over (the demand is unbounded). Then: nothing committed past the limit,
at least 99 % of it used, nothing left reserved, and the ledger's events add up to the counter.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import threading
import time
import uuid
from pathlib import Path

import pytest

from llmbudget.core.ledger import Charge, ReservationMeta, Usage
from llmbudget.store import Store, open_store
from llmbudget.store.redis import AsyncRedisStore

from ._servers import drop, fresh_url, need

LIMIT = 60_000
PROCESSES, THREADS = 16, 4
DEADLINE = 60.0


def _worker(store: Store, tag: str, seed: int) -> None:
    rng = random.Random(seed)
    size = 400
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        est_p = rng.randint(1, max(1, size // 2))
        est_c = rng.randint(0, max(0, size - est_p))
        est = est_p + est_c
        charges = [
            Charge("shared|day", "shared", est, LIMIT, "day:x", None),
            Charge(f"proc|{tag}", "proc", est, None, "run", None, (("run", tag),)),
        ]
        rid = uuid.uuid4().hex
        now = time.time()
        out = store.reserve(
            rid, charges, ReservationMeta((("run", tag),), est_p, est_c), now + 300, now
        )
        if not out.ok:
            if size == 1:
                return
            size = max(1, size // 2)
            continue
        # the provider reports at most what was reserved (upper-bound estimates)
        act_p = est_p
        act_c = rng.randint(est_c // 2, est_c) if est_c else 0
        store.commit(
            rid,
            {"shared|day": act_p + act_c, f"proc|{tag}": act_p + act_c},
            Usage(act_p, act_c),
            time.time(),
        )


async def _aworker(store: AsyncRedisStore, tag: str, seed: int) -> None:
    """The same loop as :func:`_worker`, on the asyncio store."""
    rng = random.Random(seed)
    size = 400
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        est_p = rng.randint(1, max(1, size // 2))
        est_c = rng.randint(0, max(0, size - est_p))
        est = est_p + est_c
        charges = [
            Charge("shared|day", "shared", est, LIMIT, "day:x", None),
            Charge(f"proc|{tag}", "proc", est, None, "run", None, (("run", tag),)),
        ]
        rid = uuid.uuid4().hex
        now = time.time()
        out = await store.reserve(
            rid, charges, ReservationMeta((("run", tag),), est_p, est_c), now + 300, now
        )
        if not out.ok:
            if size == 1:
                return
            size = max(1, size // 2)
            continue
        act_p = est_p
        act_c = rng.randint(est_c // 2, est_c) if est_c else 0
        await store.commit(
            rid,
            {"shared|day": act_p + act_c, f"proc|{tag}": act_p + act_c},
            Usage(act_p, act_c),
            time.time(),
        )


def _aprocess(url: str, index: int) -> None:
    async def main() -> None:
        store = await AsyncRedisStore.open(url)
        try:
            await asyncio.gather(
                *(_aworker(store, f"p{index}", index * 100 + t) for t in range(THREADS))
            )
        finally:
            await store.aclose()

    asyncio.run(main())


def _process(url: str, index: int) -> None:
    store = open_store(url)
    threads = [
        threading.Thread(target=_worker, args=(store, f"p{index}", index * 100 + t))
        for t in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("redis", marks=pytest.mark.redis),
        # commits written without waiting for their replies (read at the next step / close)
        pytest.param("redis-pipelined", marks=pytest.mark.redis),
        # AsyncRedisStore: 16 processes × 4 concurrent tasks on one event loop each
        pytest.param("redis-async", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
)
def test_no_reservation_past_the_limit_under_concurrency(kind: str, tmp_path: Path) -> None:
    server = kind.split("-", 1)[0]
    need(server)
    params = {"commit": "pipelined"} if kind == "redis-pipelined" else {}
    url = fresh_url(server, tmp_path, clock="caller", **params)
    store = open_store(url)
    try:
        started = time.monotonic()
        if kind == "memory":  # one process: all 64 workers as threads
            threads = [
                threading.Thread(target=_worker, args=(store, f"p{i % PROCESSES}", i))
                for i in range(PROCESSES * THREADS)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            ctx = multiprocessing.get_context("fork")
            target = _aprocess if kind == "redis-async" else _process
            procs = [ctx.Process(target=target, args=(url, i)) for i in range(PROCESSES)]
            for p in procs:
                p.start()
            for p in procs:
                p.join(DEADLINE + 30)
            assert [p.exitcode for p in procs] == [0] * PROCESSES
        elapsed = time.monotonic() - started
        assert elapsed < DEADLINE, f"took {elapsed:.1f}s"

        (shared,) = store.counters(["shared|day"])
        assert shared.reserved == 0
        assert shared.used <= LIMIT, f"{shared.used - LIMIT} tokens over the limit"
        assert shared.used >= 0.99 * LIMIT, f"only {shared.used / LIMIT:.2%} of the limit used"
        events = list(store.events())
        assert sum(e.prompt_tokens + e.completion_tokens for e in events) == shared.used
        assert len({e.id for e in events}) == len(events)
        per_proc = store.counters([f"proc|p{i}" for i in range(PROCESSES)])
        assert sum(c.used for c in per_proc) == shared.used
    finally:
        store.close()
        drop(server, url)
