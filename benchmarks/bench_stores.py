"""Governed calls per second, p50/p99, per server store, from 1 and from N processes, beside
each store's own floor measured in the same run.

Two things are timed for each store, so the store's share of a governed call is visible:

* **store step**: what the governor asks of the store for one LLM call, called on the store
  directly: ``reserve`` on three counters (a per-run, a daily and a per-model budget;
  all-or-none) then ``commit`` with the actuals. Two round trips.
* **governed call**: the same through the governor's Python path:
  ``gov.reserve(prompt_tokens=120, max_completion_tokens=400, model=..., agent=..., run=...)``
  then ``.commit(prompt_tokens=120, completion_tokens=180)``, with the three budgets of
  ``bench_governed_call.py`` (warn/alert/block levels, limits never reached).

Floors (the cheapest round trip each server does, timed the same way):

* Redis: a bare ``FCALL`` of a function that returns 1 on a dedicated connection (the path
  the store uses for its steps on Redis 7+), the same with ``EVALSHA`` of ``return 1`` (the
  path before Redis 7), ``EVALSHA`` through the redis-py client API (pool check-out per
  command), and a bare ``INCR`` through the client API;
* PostgreSQL: a single-statement ``UPDATE`` transaction on a logged table (one row per
  process), which pays the same WAL flush as a step does.

N processes start together (a barrier) and throughput is all their calls over the wall time
from the first start to the last finish; latencies are pooled. CPU per call is measured on
both sides: the client processes' own CPU time (``time.process_time``: Python, the socket
system calls) and the server's (user + system time of its processes from ``/proc``, reaped
PostgreSQL backends included), divided by the calls; "CPU ceiling" is the machine's cores
divided by their sum, the most calls per second any number of processes could make here at
that cost, since clients and server share the same cores. The machine is shared and
noisy, so every variant runs once per round, the order rotated each round, and each figure
is the median over the rounds; ratios are taken within a round, then their median. Every
measurement runs on a fresh ledger (a new prefix / schema), so none inherits the dead row
versions or keys of another (the dev server runs without autovacuum).

    .venv/bin/python benchmarks/bench_stores.py                       # 5 rounds, table
    .venv/bin/python benchmarks/bench_stores.py --rounds 7 --calls 3000 --procs 8
    .venv/bin/python benchmarks/bench_stores.py --stores redis --json
    .venv/bin/python benchmarks/bench_stores.py --stores postgres,postgres-nosync

``postgres-nosync`` is the same server with ``options=-c synchronous_commit=off`` in the
ledger URL (steps return before the WAL flush; see docs/stores.md); ``redis-pipelined`` is
the same Redis with ``commit=pipelined`` (a commit is written and its reply read at the
next step: one round trip per governed call; docs/stores.md). Its floors are Redis's.

Server URLs: LLMBUDGET_TEST_REDIS_URL (default redis://127.0.0.1:6379/15) and
LLMBUDGET_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test). Each run
uses a fresh namespace (prefix / schema) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_governed_call import LIMIT, POLICY  # the same three budgets
from tests.store._servers import drop, fresh_url

from llmbudget.core.ledger import Charge, ReservationMeta, Usage
from llmbudget.governor import Governor
from llmbudget.store import open_store

PROMPT, MAX_COMPLETION, COMPLETION = 120, 400, 180
META = ReservationMeta((("agent", "bench"), ("model", "gpt-4o")), PROMPT, MAX_COMPLETION)
DAY_END = time.time() + 86400

Loop = Callable[[int], list[float]]  # runs n calls, returns each call's latency in seconds


def _timed(n: int, fn: Callable[[int], object]) -> list[float]:
    out = [0.0] * n
    clock = time.perf_counter
    for i in range(n):
        t0 = clock()
        fn(i)
        out[i] = clock() - t0
    return out


# -- variants: each builds its loop inside the worker process (tag = that process's id) -------
def _store_step(url: str, tag: str) -> tuple[Loop, Callable[[], None]]:
    store = open_store(url)
    chs = [
        Charge(f"per-run|run={tag}|run", "per-run", 520, LIMIT),
        Charge("daily||day:x", "daily", 520, LIMIT, "day:x", DAY_END),
        Charge("per-model|model=gpt-4o|day:x", "per-model", 520, LIMIT, "day:x", DAY_END),
    ]
    actual = {c.key: 300 for c in chs}
    usage = Usage(PROMPT, COMPLETION)
    prefix = f"{tag}-{uuid.uuid4().hex[:8]}-"
    ids = itertools.count()

    def call(i: int) -> None:
        rid = prefix + str(next(ids))
        now = time.time()
        if not store.reserve(rid, chs, META, now + 300, now).ok:
            raise AssertionError("refused")
        store.commit(rid, actual, usage, now)

    return (lambda n: _timed(n, call)), store.close


def _governed(url: str, tag: str) -> tuple[Loop, Callable[[], None]]:
    gov = Governor(POLICY, open_store(url), log_events=False)
    reserve = gov.reserve

    def call(i: int) -> None:
        r = reserve(
            prompt_tokens=PROMPT,
            max_completion_tokens=MAX_COMPLETION,
            model="gpt-4o",
            agent="bench",
            run=tag,
        )
        r.commit(prompt_tokens=PROMPT, completion_tokens=COMPLETION)

    return (lambda n: _timed(n, call)), gov.close


def _redis_lane(what: str) -> Callable[[str, str], tuple[Loop, Callable[[], None]]]:
    """A bare ``FCALL`` of a function returning 1 (``what="fcall"``) or ``EVALSHA`` of
    ``return 1`` (``"evalsha"``), written and read straight on a dedicated connection."""

    def make(url: str, tag: str) -> tuple[Loop, Callable[[], None]]:
        import redis

        from llmbudget.store.redis import _Plan

        client = redis.Redis.from_url(_Plan(url).driver_url, decode_responses=True)
        conn = client.connection_pool.make_connection()
        if what == "fcall":
            client.function_load(
                "#!lua name=llmb_bench_floor\n"
                "redis.register_function('llmb_bench_floor', function(keys, args) return 1 end)",
                replace=True,
            )
            packed = conn.pack_command("FCALL", "llmb_bench_floor", 0)
        else:
            packed = conn.pack_command("EVALSHA", client.script_load("return 1"), 0)

        def call(i: int) -> None:
            conn.send_packed_command(packed)
            conn.read_response()

        def close() -> None:
            conn.disconnect()
            client.close()

        return (lambda n: _timed(n, call)), close

    return make


def _redis_client(what: str) -> Callable[[str, str], tuple[Loop, Callable[[], None]]]:
    def make(url: str, tag: str) -> tuple[Loop, Callable[[], None]]:
        import redis

        from llmbudget.store.redis import _Plan

        client = redis.Redis.from_url(_Plan(url).driver_url, decode_responses=True)
        sha = client.script_load("return 1")
        key = "{bench}:floor:" + tag
        fn: Callable[[int], object] = (
            (lambda i: client.evalsha(sha, 0))
            if what == "evalsha"
            else (lambda i: client.incr(key))
        )

        def close() -> None:
            client.delete(key)
            client.close()

        return (lambda n: _timed(n, fn)), close

    return make


def _pg_update(url: str, tag: str) -> tuple[Loop, Callable[[], None]]:
    import psycopg

    from llmbudget.store.postgres import _options

    driver_url, schema = _options(url)[:2]
    c = psycopg.connect(driver_url, autocommit=True)
    k = abs(hash(tag)) % 1_000_000
    c.execute(f"INSERT INTO {schema}.floor VALUES (%s, 0) ON CONFLICT DO NOTHING", (k,))

    def call(i: int) -> None:
        c.execute(f"UPDATE {schema}.floor SET v = v + 1 WHERE k = %s", (k,))

    return (lambda n: _timed(n, call)), c.close


FLOORS: dict[str, dict[str, Callable[[str, str], tuple[Loop, Callable[[], None]]]]] = {
    "redis": {
        "floor: FCALL return 1, dedicated connection": _redis_lane("fcall"),
        "floor: EVALSHA return 1, dedicated connection": _redis_lane("evalsha"),
        "floor: EVALSHA return 1, redis-py client": _redis_client("evalsha"),
        "floor: INCR, redis-py client": _redis_client("incr"),
    },
    "postgres": {"floor: 1-statement UPDATE transaction": _pg_update},
    "sqlite": {},
}
# extra kinds: the same server with URL options (and its floors measured again when the
# options change what a floor costs)
VARIANT_KINDS: dict[str, tuple[str, dict[str, str], bool]] = {
    "postgres-nosync": ("postgres", {"options": "-c%20synchronous_commit%3Doff"}, True),
    "redis-pipelined": ("redis", {"commit": "pipelined"}, False),
}


def _server(kind: str) -> str:
    return VARIANT_KINDS[kind][0] if kind in VARIANT_KINDS else kind


MAKERS: dict[str, Callable[[str, str], tuple[Loop, Callable[[], None]]]] = {
    "store step": _store_step,
    "governed call": _governed,
}


def _worker(args: tuple[str, str, str, int, Any]) -> tuple[float, float, list[float], float]:
    kind, what, url, n, barrier = args
    make = MAKERS.get(what) or FLOORS[_server(kind)][what]
    tag = f"p{os.getpid()}"
    loop, close = make(url, tag)
    try:
        loop(min(200, n))  # warm: connections, prepared statements, script cache
        barrier.wait()
        t0, c0 = time.perf_counter(), time.process_time()
        lat = loop(n)
        return t0, time.perf_counter(), lat, time.process_time() - c0
    finally:
        close()


_TICK = os.sysconf("SC_CLK_TCK")


def _server_cpu(server: str) -> float:
    """CPU seconds the server's processes have used so far (user + system, from /proc; for
    PostgreSQL the postmaster's reaped children count too, so backends that exited are in),
    or NaN where /proc cannot say."""
    names = {"redis": ("redis-server",), "postgres": ("postgres", "postmaster")}.get(server, ())
    total, found = 0, False
    try:
        pids = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return float("nan")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        if not comm.startswith(names) or not names:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        # utime, stime, cutime, cstime are fields 14-17 of stat (11-14 after "state")
        total += sum(int(x) for x in fields[11:15])
        found = True
    return total / _TICK if found else float("nan")


def _measure(
    kind: str, what: str, url: str, n: int, procs: int
) -> tuple[float, list[float], float, float]:
    """Calls/s, latencies, and the CPU seconds per call of the clients and of the server."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as mgr:
        barrier = mgr.Barrier(procs)
        with ctx.Pool(procs) as pool:
            cpu0 = _server_cpu(_server(kind))
            got = pool.map(_worker, [(kind, what, url, n, barrier)] * procs, chunksize=1)
            cpu1 = _server_cpu(_server(kind))
    start = min(g[0] for g in got)
    end = max(g[1] for g in got)
    lat = [x for g in got for x in g[2]]
    calls = len(lat)
    client = sum(g[3] for g in got) / calls
    return calls / (end - start), lat, client, (cpu1 - cpu0) / calls


def _pct(lat: list[float], p: int) -> float:
    return statistics.quantiles(lat, n=100)[p - 1] * 1e3


def _setup(kind: str, tmp: Path) -> str:
    server, params, _ = VARIANT_KINDS.get(kind, (kind, {}, True))
    url = fresh_url(server, tmp, **params)
    open_store(url).close()
    if server == "postgres":
        import psycopg

        from llmbudget.store.postgres import _options

        driver_url, schema = _options(url)[:2]
        with psycopg.connect(driver_url, autocommit=True) as c:
            c.execute(f"CREATE TABLE {schema}.floor (k int PRIMARY KEY, v bigint)")
    return url


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000, help="calls per process per variant")
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--stores", default="redis,postgres")
    ap.add_argument(
        "--what",
        default="",
        help="only the variants whose name contains one of these comma-separated strings",
    )
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    kinds = a.stores.split(",")

    def floors(k: str) -> list[str]:
        return list(FLOORS[_server(k)]) if VARIANT_KINDS.get(k, ("", {}, True))[2] else []

    variants = [
        (k, what, p)
        for k in kinds
        for what in [*floors(k), *MAKERS]
        for p in sorted({1, a.procs})
        if p == 1 or what in MAKERS or "dedicated" in what or "UPDATE" in what
        if not a.what or any(w in what for w in a.what.split(","))
    ]
    rate: dict[tuple[str, str, int], list[float]] = {v: [] for v in variants}
    p50: dict[tuple[str, str, int], list[float]] = {v: [] for v in variants}
    p99: dict[tuple[str, str, int], list[float]] = {v: [] for v in variants}
    ccpu: dict[tuple[str, str, int], list[float]] = {v: [] for v in variants}
    scpu: dict[tuple[str, str, int], list[float]] = {v: [] for v in variants}
    load = [os.getloadavg()[0]]
    for rnd in range(a.rounds):
        order = variants[rnd % len(variants) :] + variants[: rnd % len(variants)]
        for v in order:
            kind, what, procs = v
            n = a.calls if procs == 1 else max(200, a.calls // 2)
            # a fresh ledger for every measurement: none inherits another's dead rows or keys
            url = _setup(kind, tmp)
            try:
                r, lat, c_cpu, s_cpu = _measure(kind, what, url, n, procs)
            finally:
                drop(_server(kind), url)
            rate[v].append(r)
            ccpu[v].append(c_cpu * 1e6)
            scpu[v].append(s_cpu * 1e6)
            p50[v].append(_pct(lat, 50))
            p99[v].append(_pct(lat, 99))
        load.append(os.getloadavg()[0])
        print(f"# round {rnd + 1}/{a.rounds} done", file=sys.stderr)

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    rows = [
        {
            "store": k,
            "what": what,
            "procs": p,
            "calls_per_s": med(rate[(k, what, p)]),
            "p50_ms": med(p50[(k, what, p)]),
            "p99_ms": med(p99[(k, what, p)]),
            "client_cpu_us": med(ccpu[(k, what, p)]),
            "server_cpu_us": med(scpu[(k, what, p)]),
        }
        for (k, what, p) in variants
    ]
    ncpu = os.cpu_count() or 1
    for r in rows:
        # what the machine's cores allow if every call costs this much CPU, clients and server
        # together (the ceiling of N processes on this machine)
        r["cpu_ceiling_per_s"] = ncpu * 1e6 / (r["client_cpu_us"] + r["server_cpu_us"])

    def ratio(num: tuple[str, str, int], den: tuple[str, str, int]) -> float:
        if num not in rate or den not in rate:
            return float("nan")
        return med([x / y for x, y in zip(rate[num], rate[den], strict=True)])

    ratios = []
    for k in kinds:
        one, many = 1, a.procs
        for what in MAKERS:
            if many != one:
                ratios.append(
                    (f"{k}: {what}, {many} procs / 1 proc", ratio((k, what, many), (k, what, one)))
                )
        base = k if floors(k) else _server(k)
        floor = next((w for w in floors(base) if "dedicated" in w or "UPDATE" in w), None)
        if floor:
            ratios.append(
                (
                    f"{k}: store step / floor, time per call (floor round trips per step)",
                    ratio((base, floor, one), (k, "store step", one)),
                )
            )
            if many != one and base == k:
                ratios.append(
                    (
                        f"{k}: floor, {many} procs / 1 proc (the machine's scaling ceiling)",
                        ratio((k, floor, many), (k, floor, one)),
                    )
                )
        ratios.append(
            (f"{k}: store share of a governed call's time (1 proc)",
             ratio((k, "governed call", one), (k, "store step", one)))
        )  # fmt: skip
    if a.json:
        print(json.dumps({"rows": rows, "ratios": dict(ratios), "load": load}, indent=2))
        return
    print(
        f"# {os.cpu_count()} CPUs, {a.rounds} rounds (medians), {a.calls} calls per variant "
        f"from 1 process, {max(200, a.calls // 2)} per process from {a.procs}; "
        f"load average {min(load):.1f}-{max(load):.1f}"
    )
    print(
        "| store | what | procs | calls/s | p50 ms | p99 ms | client CPU µs/call "
        f"| server CPU µs/call | CPU ceiling calls/s ({ncpu} cores) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['store']} | {r['what']} | {r['procs']} | {r['calls_per_s']:,.0f} | "
            f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['client_cpu_us']:.0f} | "
            f"{r['server_cpu_us']:.0f} | {r['cpu_ceiling_per_s']:,.0f} |"
        )
    print()
    print("| ratio (median of per-round ratios) | value |")
    print("|---|---|")
    for name, value in ratios:
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
