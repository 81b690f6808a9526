"""Governed-call benchmark: reserve + commit against 3 matching budgets, single thread.

A *governed call* is ``gov.reserve(prompt_tokens=..., max_completion_tokens=..., **labels)``
followed by ``.commit(prompt_tokens=..., completion_tokens=...)``; the policy has three budgets
that all match the call (per run, per day, per model per day), with limits far above anything
the benchmark spends, so nothing is ever refused.

Printed beside two floors measured in the same run, on the same loop:

* ``bare-sqlite``: the same row updates as raw SQL on a connection with the store's PRAGMAs
  (WAL, ``synchronous=NORMAL``): ``BEGIN IMMEDIATE``; upsert 3 counters' ``reserved``; insert a
  reservation row; ``COMMIT``; ``BEGIN IMMEDIATE``; update 3 counters' ``used``/``reserved``;
  insert an event row; delete the reservation; ``COMMIT``.
* ``tbcontracts``: ``token-budget-contracts==0.3.0``'s ``BudgetManager.govern("agent")`` around a
  trivial function (in-memory; it meters after the call and reserves nothing).

The machine is noisy, so variants are interleaved (the order rotates every round) and every
figure is the median over the rounds. Ratios are taken within a round, then the median is kept.

    .venv/bin/python benchmarks/bench_governed_call.py                 # table
    .venv/bin/python benchmarks/bench_governed_call.py --n 5000 --rounds 7 --json
    .venv/bin/python benchmarks/bench_governed_call.py --profile sqlite  # cProfile, top 25
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmbudget.governor import Governor
from llmbudget.store.memory import MemoryStore
from llmbudget.store.sqlite import SQLiteStore

LIMIT = 10**15  # the largest limit a budget accepts: never reached here
LEVELS = [
    {"at": "50%", "action": "warn"},
    {"at": "80%", "action": "alert"},
    {"at": "100%", "action": "block"},
]
POLICY: dict[str, Any] = {
    "budgets": [
        {"name": "per-run", "per": ["run"], "window": "run", "limit": LIMIT, "levels": LEVELS},
        {"name": "daily", "window": "day", "limit": LIMIT, "levels": LEVELS},
        {
            "name": "per-model",
            "per": ["model"],
            "window": "day",
            "limit": LIMIT,
            "match": {"model": "gpt-4o"},
            "levels": LEVELS,
        },
    ]
}
LABELS = {"model": "gpt-4o", "agent": "bench"}
PROMPT, MAX_COMPLETION, COMPLETION = 120, 400, 180

Loop = Callable[[int], list[int]]  # runs n calls, returns each call's latency in ns


# -- variants ----------------------------------------------------------------------------------
def governor_loop(gov: Governor) -> Loop:
    reserve = gov.reserve

    def run(n: int) -> list[int]:
        lat = [0] * n
        clock = time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            r = reserve(prompt_tokens=PROMPT, max_completion_tokens=MAX_COMPLETION, **LABELS)
            r.commit(prompt_tokens=PROMPT, completion_tokens=COMPLETION)
            lat[i] = clock() - t0
        return lat

    return run


def governor_decorator_loop(gov: Governor) -> Loop:
    """Our ``govern`` decorator around the same trivial function tbcontracts wraps."""

    @gov.govern(
        prompt_tokens=PROMPT,
        max_completion_tokens=MAX_COMPLETION,
        usage=lambda _res: (PROMPT, COMPLETION),
        **LABELS,
    )
    def call() -> dict[str, bool]:
        return {"ok": True}

    def run(n: int) -> list[int]:
        lat = [0] * n
        clock = time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            call()
            lat[i] = clock() - t0
        return lat

    return run


def bare_sqlite_loop(path: Path) -> Loop:
    """The same row updates as one governed call, in raw SQL: the floor for the SQLite store."""
    SQLiteStore(path).close()  # the store's own schema, so rows and indexes are identical
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    day_end = time.time() + 86400
    counters = [
        ("per-run|run=bare|run", "per-run", "run", None, '[["run", "bare"]]'),
        ("daily||day:bare", "daily", "day:bare", day_end, "[]"),
        ("per-model|model=gpt-4o|day:bare", "per-model", "day:bare", day_end,
         '[["model", "gpt-4o"]]'),
    ]  # fmt: skip
    amount, actual = PROMPT + MAX_COMPLETION, PROMPT + COMPLETION
    upsert = (
        "INSERT INTO counters (key, budget, window_id, window_end, partition, reserved) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET reserved = reserved + "
        "excluded.reserved"
    )
    upsert_rows = [(*c, amount) for c in counters]
    settle_rows = [(actual, amount, c[0]) for c in counters]
    charges_json = json.dumps({c[0]: amount for c in counters})
    labels = {"run": "bare", **LABELS}
    labels_json, labels_sorted = json.dumps(labels), json.dumps(labels, sort_keys=True)

    def run(n: int) -> list[int]:
        lat = [0] * n
        clock, ex, exm, new_id = time.perf_counter_ns, conn.execute, conn.executemany, uuid.uuid4
        for i in range(n):
            t0 = clock()
            rid = new_id().hex
            now = time.time()
            ex("BEGIN IMMEDIATE")
            exm(upsert, upsert_rows)
            ex(
                "INSERT INTO reservations (id, state, charges, labels, est_prompt, "
                "est_completion, lease_until, created) VALUES (?,'active',?,?,?,?,?,?)",
                (rid, charges_json, labels_json, PROMPT, MAX_COMPLETION, now + 600, now),
            )
            ex("COMMIT")
            ex("BEGIN IMMEDIATE")
            exm(
                "UPDATE counters SET used = used + ?, reserved = reserved - ? WHERE key = ?",
                settle_rows,
            )
            ex(
                "INSERT INTO events (id, at, labels, model, operation, prompt, completion, "
                "cached, reasoning, cost_micros, est_prompt, est_completion, settled) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rid, now, labels_sorted, "gpt-4o", "", PROMPT, COMPLETION, 0, 0, None,
                 PROMPT, MAX_COMPLETION, 1),
            )  # fmt: skip
            ex("DELETE FROM reservations WHERE id = ?", (rid,))
            ex("COMMIT")
            lat[i] = clock() - t0
        return lat

    return run


def tbcontracts_loop() -> Loop | None:
    try:
        from tbcontracts import BudgetManager
    except ImportError:
        return None
    manager = BudgetManager()
    manager.register_agent("agent", priority=1, max_tokens=LIMIT)

    @manager.govern("agent")
    def call() -> dict[str, bool]:
        return {"ok": True}

    def run(n: int) -> list[int]:
        lat = [0] * n
        clock = time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            call()
            lat[i] = clock() - t0
        return lat

    return run


# -- measuring ---------------------------------------------------------------------------------
def pct(sorted_ns: list[int], q: float) -> float:
    """The q-quantile (nearest rank) in microseconds."""
    i = min(len(sorted_ns) - 1, max(0, round(q * len(sorted_ns)) - 1))
    return sorted_ns[i] / 1000.0


def measure(loop: Loop, n: int) -> dict[str, float]:
    gc.collect()
    t0 = time.perf_counter()
    lat = loop(n)
    wall = time.perf_counter() - t0
    lat.sort()
    return {"p50_us": pct(lat, 0.50), "p99_us": pct(lat, 0.99), "calls_per_s": n / wall}


def build(tmp: Path) -> dict[str, Loop]:
    loops: dict[str, Loop] = {
        "memory": governor_loop(Governor(POLICY, store=MemoryStore())),
        "memory+govern": governor_decorator_loop(Governor(POLICY, store=MemoryStore())),
        "sqlite": governor_loop(Governor(POLICY, store=SQLiteStore(tmp / "ledger.sqlite3"))),
        "bare-sqlite": bare_sqlite_loop(tmp / "bare.sqlite3"),
    }
    tbc = tbcontracts_loop()
    if tbc is not None:
        loops["tbcontracts"] = tbc
    return loops


def memory_history(probe: int, sizes: tuple[int, ...] = (0, 2000, 8000)) -> dict[str, float]:
    """Memory-store p50 after ``size`` settled reservations: it should not depend on them."""
    out = {}
    for size in sizes:
        loop = governor_loop(Governor(POLICY, store=MemoryStore()))
        loop(size)
        lat = sorted(loop(probe))
        out[str(size)] = pct(lat, 0.5)
    return out


def ratio(rounds: list[dict[str, dict[str, float]]], a: str, b: str, key: str) -> float | None:
    vals = [r[a][key] / r[b][key] for r in rounds if a in r and b in r]
    return statistics.median(vals) if vals else None


def run(n: int, n_rounds: int, warmup: int) -> dict[str, Any]:
    rounds: list[dict[str, dict[str, float]]] = []
    names: list[str] = []
    for k in range(n_rounds):
        # fresh stores every round, so rounds are alike (a store's history affects its speed)
        with tempfile.TemporaryDirectory(prefix="llmbudget-bench-") as d:
            loops = build(Path(d))
            names = list(loops)
            order = names[k % len(names) :] + names[: k % len(names)]
            for name in order:
                loops[name](warmup)
            rounds.append({name: measure(loops[name], n) for name in order})
            gc.collect()  # drop the governors (and their connections) before the folder goes
    history = memory_history(warmup)
    summary = {
        name: {
            key: statistics.median(r[name][key] for r in rounds)
            for key in ("p50_us", "p99_us", "calls_per_s")
        }
        for name in names
    }
    ratios = {
        "sqlite_over_bare_p50": ratio(rounds, "sqlite", "bare-sqlite", "p50_us"),
        "sqlite_over_bare_time_per_call": ratio(rounds, "bare-sqlite", "sqlite", "calls_per_s"),
        "memory_calls_per_s": summary["memory"]["calls_per_s"],
        "memory_over_tbcontracts_p50": ratio(rounds, "memory", "tbcontracts", "p50_us"),
        "memory_govern_over_tbcontracts_p50": ratio(
            rounds, "memory+govern", "tbcontracts", "p50_us"
        ),
        "sqlite_over_tbcontracts_p50": ratio(rounds, "sqlite", "tbcontracts", "p50_us"),
    }
    return {
        "benchmark": "governed_call",
        "n_per_round": n,
        "rounds": n_rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
        },
        "summary": summary,
        "ratios": ratios,
        "memory_p50_us_by_history": history,
        "targets": {"sqlite_over_bare_max": 2.0, "memory_calls_per_s_min": 100_000},
        "rounds_raw": rounds,
    }


def report(res: dict[str, Any]) -> None:
    m = res["machine"]
    print(
        f"governed call = reserve + commit, 3 matching budgets, single thread; "
        f"n={res['n_per_round']:,} per round, median of {res['rounds']} interleaved rounds"
    )
    print(f"python {m['python']}, sqlite {m['sqlite']}, {m['cpus']} cpus, {m['platform']}\n")
    print(f"{'variant':<15}{'p50 µs':>10}{'p99 µs':>10}{'calls/s':>12}")
    for name, s in res["summary"].items():
        print(f"{name:<15}{s['p50_us']:>10.1f}{s['p99_us']:>10.1f}{s['calls_per_s']:>12,.0f}")
    r = res["ratios"]
    hist = ", ".join(f"{k} → {v:.0f} µs" for k, v in res["memory_p50_us_by_history"].items())
    print(f"\nmemory p50 by settled reservations already in the store: {hist}")

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}×"

    print()
    print(f"sqlite / bare-sqlite floor, p50        {fmt(r['sqlite_over_bare_p50'])}  (target ≤ 2×)")
    print(f"sqlite / bare-sqlite floor, time/call  {fmt(r['sqlite_over_bare_time_per_call'])}")
    verdict = "ok" if r["memory_calls_per_s"] >= 100_000 else "BELOW target"
    print(
        f"memory governed calls/s                {r['memory_calls_per_s']:,.0f}  "
        f"(target ≥ 100,000: {verdict})"
    )
    print(f"memory / tbcontracts govern, p50       {fmt(r['memory_over_tbcontracts_p50'])}")
    print(f"memory+govern / tbcontracts, p50       {fmt(r['memory_govern_over_tbcontracts_p50'])}")
    print(f"sqlite / tbcontracts govern, p50       {fmt(r['sqlite_over_tbcontracts_p50'])}")


def profile(store: str, n: int) -> None:
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory(prefix="llmbudget-prof-") as d:
        st = MemoryStore() if store == "memory" else SQLiteStore(Path(d) / "ledger.sqlite3")
        loop = governor_loop(Governor(POLICY, store=st))
        loop(min(n, 500))
        prof = cProfile.Profile()
        prof.enable()
        loop(n)
        prof.disable()
    print(f"cProfile of {n:,} governed calls on the {store} store (tottime, then cumtime)")
    stats = pstats.Stats(prof, stream=sys.stdout).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="governed calls per variant per round")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median kept)")
    ap.add_argument("--warmup", type=int, default=200, help="calls per variant before timing")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--profile", choices=["memory", "sqlite"], help="cProfile instead")
    a = ap.parse_args(argv)
    if a.profile:
        profile(a.profile, a.n)
        return
    res = run(a.n, a.rounds, a.warmup)
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        report(res)


if __name__ == "__main__":
    main()
