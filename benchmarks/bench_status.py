"""``status`` benchmark: 1,000 budgets and 1M recorded events on the SQLite ledger.

Setup (not timed) writes a policy file with ``--budgets`` budgets (a quarter each on ``day``,
``month``, ``run`` and ``hour`` windows, four levels each, like the starter policy) and fills a
SQLite ledger with ``--events`` usage events spread over the last 30 days, in bulk SQL that
follows the store's schema, plus the counters those events add up to (every past window's
counter too, so live counters must be found, not scanned for). A spot check then compares
one counter with the sum of its events through the store's own API.

Timed, interleaved, median of ``--rounds`` rounds:

* ``floor: SELECT * FROM counters``: every counter row, raw ``sqlite3``;
* ``floor: live counters (index)``: the live counters through the ``window_end`` index,
  raw ``sqlite3``, sorted in Python;
* ``store's live query, raw``: the exact SQL ``SQLiteStore.counters(active_at=...)`` runs
  (its ``ORDER BY key`` makes SQLite walk the primary key over every counter ever kept);
* ``store.counters()``: the store's read (rows to ``CounterState``);
* ``Governor.status()``: what the API returns (target ≤ 50 ms);
* ``CLI path, in-process``: what ``llmbudget status --json`` does after start-up: load the
  policy file, open the ledger, ``status()``, render the JSON;
* ``CLI, subprocess`` (fewer repeats): ``llmbudget --policy P --ledger L status --json`` end
  to end, Python start-up and imports included.

    .venv/bin/python benchmarks/bench_status.py
    .venv/bin/python benchmarks/bench_status.py --keep /tmp/status-ledger --json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from llmbudget.core.decide import counter_key
from llmbudget.core.windows import Window, span_for
from llmbudget.governor import Governor
from llmbudget.policy import load_policy
from llmbudget.store.sqlite import SQLiteStore

WINDOWS = (Window.DAY, Window.MONTH, Window.RUN, Window.HOUR)
LEVELS = [
    {"at": "50%", "action": "warn"},
    {"at": "80%", "action": "alert"},
    {"at": "95%", "action": "flag"},
    {"at": "100%", "action": "block"},
]
MODELS = ("gpt-4o", "gpt-4o-mini", "llama-3.3-70b-versatile")
DAYS = 30


def write_policy(path: Path, n_budgets: int) -> None:
    budgets = [
        {
            "name": f"b{i:04d}",
            "match": {"agent": f"a{i:04d}"},
            "window": WINDOWS[i % len(WINDOWS)].value,
            "limit": 10**12,
            "levels": LEVELS,
        }
        for i in range(n_budgets)
    ]
    path.write_text(yaml.safe_dump({"version": 1, "timezone": "UTC", "budgets": budgets}))


def build_ledger(path: Path, policy_path: Path, n_budgets: int, n_events: int) -> float:
    """Fill the ledger; returns the reference instant the events end at."""
    policy = load_policy(policy_path)
    tz = UTC
    SQLiteStore(path).close()  # the store's schema
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    now = datetime.now(UTC)
    start = now - timedelta(days=DAYS)
    span_s = (now - start).total_seconds()
    rng = random.Random(42)
    counters: dict[str, list[Any]] = {}
    span_cache: dict[tuple[int, Window, int], Any] = {}

    def events() -> Any:
        for k in range(n_events):
            # the last n_budgets events touch every budget once: each has a live counter
            i = rng.randrange(n_budgets) if k < n_events - n_budgets else k % n_budgets
            b = policy.budgets[i]
            at = start + timedelta(seconds=span_s * k / n_events)
            hour = int(at.timestamp()) // 3600
            ck = (i, b.window, hour)
            sp = span_cache.get(ck)
            if sp is None:
                sp = span_cache[ck] = span_for(b.window, at, tz)
            key = counter_key(b, (), sp)
            prompt, completion = rng.randrange(50, 4000), rng.randrange(10, 1500)
            c = counters.get(key)
            if c is None:
                end = sp.end.timestamp() if sp.end else None
                c = counters[key] = [key, b.name, sp.id, end, "[]", 0]
            c[5] += prompt + completion
            model = MODELS[k % len(MODELS)]
            labels = {"agent": f"a{i:04d}", "model": model, "run": f"r{k // 5000:04d}"}
            yield (
                uuid.UUID(int=rng.getrandbits(128)).hex, at.timestamp(),
                json.dumps(labels, sort_keys=True), model, "", prompt, completion, 0, 0,
                None, prompt, 1024, 1,
            )  # fmt: skip

    conn.execute("BEGIN")
    conn.executemany(SQLiteStore._INSERT_EVENT, events())
    conn.executemany(
        "INSERT INTO counters (key, budget, window_id, window_end, partition, used) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        counters.values(),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return now.timestamp()


def spot_check(ledger: Path, policy_path: Path) -> None:
    """One live day counter equals the sum of its events, through the store's own API."""
    gov = Governor(policy_path, store=SQLiteStore(ledger))
    day = next(s for s in gov.status() if s.window.startswith("day:"))
    conn = sqlite3.connect(str(ledger))
    agent = "a" + day.budget[1:]
    start = datetime.fromisoformat(day.window[4:]).replace(tzinfo=UTC).timestamp()
    (total,) = conn.execute(
        "SELECT COALESCE(SUM(prompt + completion), 0) FROM events "
        "WHERE at >= ? AND json_extract(labels, '$.agent') = ?",
        (start, agent),
    ).fetchone()
    conn.close()
    if total != day.used:
        raise SystemExit(f"setup is inconsistent: {day.key} used {day.used} != events {total}")
    gov.close()


def cli_json(rows: list[Any]) -> str:
    """The document ``llmbudget status --json`` prints (same fields)."""
    return json.dumps(
        {
            "counters": [
                {
                    "budget": r.budget,
                    "key": r.key,
                    "partition": r.partition,
                    "window": r.window,
                    "unit": r.unit,
                    "used": r.used,
                    "reserved": r.reserved,
                    "granted": r.granted,
                    "limit": r.limit,
                    "percent": round(r.percent, 2),
                    "level": r.level,
                    "action": r.action,
                    "resets_at": r.resets_at.isoformat() if r.resets_at else None,
                }
                for r in rows
            ]
        }
    )


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    ledger, policy_path = work / "ledger.sqlite3", work / "policy.yaml"
    setup_s = None
    if not (ledger.exists() and policy_path.exists()):
        t0 = time.perf_counter()
        write_policy(policy_path, args.budgets)
        build_ledger(ledger, policy_path, args.budgets, args.events)
        setup_s = time.perf_counter() - t0
    spot_check(ledger, policy_path)

    gov = Governor(policy_path, store=SQLiteStore(ledger))
    raw = sqlite3.connect(str(ledger))
    live_sql = (
        "SELECT key, budget, window_id, window_end, partition, used, reserved, granted, level "
        "FROM counters WHERE window_end IS NULL OR window_end > ? ORDER BY key"
    )

    def cli_in_process() -> str:
        g = Governor(policy_path, f"sqlite:///{ledger}")
        with g:
            return cli_json(g.status())

    cases: dict[str, Callable[[], Any]] = {
        "floor: SELECT * FROM counters": lambda: raw.execute("SELECT * FROM counters").fetchall(),
        "floor: live counters (index)": lambda: sorted(
            raw.execute(live_sql.replace(" ORDER BY key", ""), (time.time(),)).fetchall()
        ),
        "store's live query, raw": lambda: raw.execute(live_sql, (time.time(),)).fetchall(),
        "store.counters()": lambda: gov.store.counters(active_at=time.time()),
        "Governor.status()": gov.status,
        "CLI path, in-process": cli_in_process,
    }
    n_live = len(gov.status())
    n_counters = raw.execute("SELECT count(*) FROM counters").fetchone()[0]
    n_events = raw.execute("SELECT count(*) FROM events").fetchone()[0]
    slow = {"CLI path, in-process"}  # seconds each with a large policy: fewer runs
    for fn in cases.values():  # warm the page cache and the imports
        fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for k in range(args.rounds):
        gc.collect()
        for name in names[k % len(names) :] + names[: k % len(names)]:
            if name in slow and k >= args.cli_runs:
                continue
            samples[name].append(timed(cases[name]))
    cmd = [
        str(Path(sys.executable).with_name("llmbudget")),
        "--policy", str(policy_path), "--ledger", f"sqlite:///{ledger}", "status", "--json",
    ]  # fmt: skip
    sub: list[float] = []
    sub_ok = shutil.which(cmd[0]) is not None
    if sub_ok and args.subprocess_runs:
        for _ in range(args.subprocess_runs):
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, check=False)
            sub.append((time.perf_counter() - t0) * 1000.0)
            if p.returncode != 0:
                sub_ok = False
                sub = []
                break
    results = {
        name: {"p50_ms": statistics.median(v), "p99_ms": max(v) if len(v) < 100 else
               sorted(v)[int(0.99 * len(v)) - 1], "min_ms": min(v), "runs": len(v)}
        for name, v in samples.items()
    }  # fmt: skip
    if sub:
        results["CLI, subprocess"] = {
            "p50_ms": statistics.median(sub), "p99_ms": max(sub), "min_ms": min(sub),
            "runs": len(sub),
        }  # fmt: skip
    gov.close()
    raw.close()
    return {
        "benchmark": "status",
        "budgets": args.budgets,
        "events": n_events,
        "counters": n_counters,
        "live_counters": n_live,
        "rounds": args.rounds,
        "setup_s": setup_s,
        "ledger_mb": round(ledger.stat().st_size / 2**20, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
        "results": results,
        "status_over_live_floor": results["Governor.status()"]["p50_ms"]
        / results["floor: live counters (index)"]["p50_ms"],
        "target_ms": 50,
    }


def report(res: dict[str, Any]) -> None:
    setup = f", built in {res['setup_s']:.0f} s" if res["setup_s"] else " (reused)"
    print(
        f"status over {res['budgets']:,} budgets, {res['events']:,} events, "
        f"{res['counters']:,} counters ({res['live_counters']:,} live); ledger "
        f"{res['ledger_mb']} MB{setup}"
    )
    m = res["machine"]
    print(f"python {m['python']}, sqlite {m['sqlite']}, {m['cpus']} cpus; "
          f"median of {res['rounds']} interleaved rounds\n")  # fmt: skip
    print(f"{'path':<32}{'p50 ms':>9}{'max ms':>9}{'min ms':>9}{'runs':>6}")
    for name, r in res["results"].items():
        print(f"{name:<32}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['min_ms']:>9.1f}{r['runs']:>6}")
    p50 = res["results"]["Governor.status()"]["p50_ms"]
    verdict = "ok" if p50 <= res["target_ms"] else "OVER target"
    print(f"\nGovernor.status() p50 {p50:.1f} ms (target ≤ {res['target_ms']} ms: {verdict}); "
          f"{res['status_over_live_floor']:.1f}× the indexed live-counter floor")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budgets", type=int, default=1000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=30, help="timed repeats of each path")
    ap.add_argument("--cli-runs", type=int, default=5, help="runs of the in-process CLI path")
    ap.add_argument("--subprocess-runs", type=int, default=3, help="end-to-end CLI runs")
    ap.add_argument("--keep", type=Path, help="build (or reuse) the ledger in this folder")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    a = ap.parse_args(argv)
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)
        res = run(a, a.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="llmbudget-status-") as d:
            res = run(a, Path(d))
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        report(res)


if __name__ == "__main__":
    main()
