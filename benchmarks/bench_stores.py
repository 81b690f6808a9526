"""Governed calls per second, p50/p99, per store, from 1 and from 8 processes, beside each
store's own floor measured in the same run.

A governed call here is what the governor asks of the store for one LLM call: ``reserve`` on
three counters (a run budget, a daily budget, a per-model budget; all-or-none) then
``commit`` with the actuals. The floor is the cheapest round trip the server can do: Redis a
bare ``EVALSHA`` of ``return 1`` and a bare ``INCRBY``; PostgreSQL a single-statement
transaction (``UPDATE`` of one row).

    python benchmarks/bench_stores.py [--calls 3000] [--stores redis,postgres,sqlite]

Server URLs: LLMBUDGET_TEST_REDIS_URL (default redis://127.0.0.1:6379/15) and
LLMBUDGET_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test). Each run
uses a fresh namespace and removes it afterwards.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.store._servers import drop, fresh_url

from llmbudget.core.ledger import Charge, ReservationMeta, Usage
from llmbudget.store import open_store

META = ReservationMeta((("model", "gpt-4o"), ("agent", "bench")), 500, 300)
DAY_END = time.time() + 86400


def _charges(tag: str) -> list[Charge]:
    return [
        Charge(f"run|{tag}", "run", 800, 10**12),
        Charge("daily|day", "daily", 800, 10**12, "day:x", DAY_END),
        Charge("model|gpt-4o", "model", 800, 10**12),
    ]


def _timed(n: int, fn: Callable[[int], None]) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def _governed(url: str, n: int, tag: str) -> list[float]:
    store = open_store(url)
    chs = _charges(tag)
    actual = {c.key: 700 for c in chs}

    def call(i: int) -> None:
        rid = f"{tag}-{i}-{uuid.uuid4().hex[:8]}"
        now = time.time()
        out = store.reserve(rid, chs, META, now + 300, now)
        assert out.ok
        store.commit(rid, actual, Usage(480, 220), now)

    lat = _timed(n, call)
    store.close()
    return lat


def _proc(args: tuple[str, int, str]) -> list[float]:
    return _governed(*args)


def _floor(kind: str, url: str, n: int) -> dict[str, list[float]]:
    if kind == "redis":
        import redis

        from llmbudget.store.redis import _Plan

        r = redis.Redis.from_url(_Plan(url).driver_url)
        sha = r.script_load("return 1")
        key = "{bench}:floor:" + uuid.uuid4().hex
        out = {
            "EVALSHA return 1": _timed(n, lambda i: r.evalsha(sha, 0)),
            "INCRBY": _timed(n, lambda i: r.incrby(key, 1)),
        }
        r.delete(key)
        r.close()
        return out
    if kind == "postgres":
        import psycopg

        from llmbudget.store.postgres import _options

        driver_url, schema = _options(url)[:2]
        with psycopg.connect(driver_url) as c:
            # a logged table in the ledger's schema: a commit pays the same WAL flush
            c.execute(f"CREATE TABLE {schema}.floor (k int primary key, v bigint)")
            c.execute(f"INSERT INTO {schema}.floor VALUES (1, 0)")
            c.commit()

            def tx(i: int) -> None:
                c.execute(f"UPDATE {schema}.floor SET v = v + 1 WHERE k = 1")
                c.commit()

            return {"1-statement transaction": _timed(n, tx)}
    return {}


def _fmt(lat: list[float]) -> str:
    q = statistics.quantiles(lat, n=100)
    return f"p50 {q[49] * 1e3:.3f} ms, p99 {q[98] * 1e3:.3f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--stores", default="redis,postgres,sqlite")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print(f"# {os.cpu_count()} CPUs, {a.calls} calls per process")
    print("| store | what | procs | calls/s | latency |")
    print("|---|---|---|---|---|")
    for kind in a.stores.split(","):
        url = fresh_url(kind, tmp)
        open_store(url).close()
        try:
            for what, lat in _floor(kind, url, a.calls).items():
                print(f"| {kind} | floor: {what} | 1 | {len(lat) / sum(lat):,.0f} | {_fmt(lat)} |")
            _governed(url, 200, "warm")
            t0 = time.perf_counter()
            lat = _governed(url, a.calls, "p0")
            wall = time.perf_counter() - t0
            print(f"| {kind} | governed call | 1 | {a.calls / wall:,.0f} | {_fmt(lat)} |")
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(a.procs) as pool:
                t0 = time.perf_counter()
                lats = pool.map(_proc, [(url, a.calls, f"p{i}") for i in range(a.procs)])
                wall = time.perf_counter() - t0
            flat = [x for lat in lats for x in lat]
            print(
                f"| {kind} | governed call | {a.procs} | {len(flat) / wall:,.0f} | {_fmt(flat)} |"
            )
        finally:
            drop(kind, url)


if __name__ == "__main__":
    main()
