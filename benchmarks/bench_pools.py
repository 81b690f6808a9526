"""Pool benchmark: what a reservation costs when it must borrow from a pool of 10 or 100
agents, against the plain reservation, in the same run (memory and SQLite stores).

* ``plain``: one agent budget, no pool; every reserve fits.
* ``pool-N borrow``: the hot agent's own budget is spent, so every reserve borrows its whole
  amount from the N - 1 other members (lowest priority, most idle first) inside the atomic
  step; the donors are large enough never to run dry during the run.
* ``pool-N fits``: the same pool, but the hot agent's reserve fits without borrowing (what a
  pool costs when nothing moves).

A call is ``gov.reserve(agent=..., prompt_tokens=100, max_completion_tokens=100)`` then
``.commit(prompt_tokens=100, completion_tokens=100)``. Variants are interleaved round by round
(the order rotates) and each figure is the median over rounds; the ratio to ``plain`` is taken
within a round. The machine is noisy: read the ratios.

    .venv/bin/python benchmarks/bench_pools.py                  # --n 2000 --rounds 5
    .venv/bin/python benchmarks/bench_pools.py --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from llmbudget.governor import Governor

BIG = 10**12


def policy(members: int, hot_limit: int) -> dict[str, Any]:
    """A pool of ``members`` agent budgets; agent 0 is the hot one (highest priority)."""
    if members == 1:
        return {"budgets": [{"name": "a0", "match": {"agent": "a0"}, "limit": hot_limit}]}
    budgets = [
        {
            "name": "a0",
            "match": {"agent": "a0"},
            "limit": hot_limit,
            "pool": "team",
            "priority": 10,
        },
    ]
    budgets += [
        {
            "name": f"a{i}",
            "match": {"agent": f"a{i}"},
            "limit": BIG,
            "pool": "team",
            "priority": 1 + i % 5,
            "min_reserve": 1000,
        }
        for i in range(1, members)
    ]
    return {"budgets": budgets}


def make(store: str, members: int, borrow: bool, tmp: Path, tag: str) -> Governor:
    url = "memory://" if store == "memory" else f"sqlite:///{tmp}/{tag}.db"
    hot = 200 if borrow else BIG  # 200: spent by the warm-up call, then every call borrows
    gov = Governor(policy(members, hot), url, labels={"run": "bench"}, log_events=False)
    gov.reserve(agent="a0", prompt_tokens=100, max_completion_tokens=100).commit(100, 100)
    return gov


def timed(gov: Governor, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = gov.reserve(agent="a0", prompt_tokens=100, max_completion_tokens=100)
        r.commit(prompt_tokens=100, completion_tokens=100)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="calls per variant per round")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median kept)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args()

    variants: list[tuple[str, str, int, bool]] = []
    for store in ("memory", "sqlite"):
        variants.append((f"{store} plain", store, 1, False))
        for members in (10, 100):
            variants.append((f"{store} pool-{members} fits", store, members, False))
            variants.append((f"{store} pool-{members} borrow", store, members, True))

    p50: dict[str, list[float]] = {v[0]: [] for v in variants}
    ratio: dict[str, list[float]] = {v[0]: [] for v in variants}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for rnd in range(args.rounds):
            order = variants[rnd % len(variants) :] + variants[: rnd % len(variants)]
            this: dict[str, float] = {}
            for name, store, members, borrow in order:
                gov = make(store, members, borrow, tmp, f"{rnd}-{name.replace(' ', '-')}")
                this[name] = statistics.median(timed(gov, args.n)) * 1e6
                gov.close()
            for name in this:
                p50[name].append(this[name])
                base = this[f"{name.split()[0]} plain"]
                ratio[name].append(this[name] / base)

    rows: list[dict[str, Any]] = [
        {
            "variant": name,
            "p50_us": round(statistics.median(p50[name]), 1),
            "vs_plain": round(statistics.median(ratio[name]), 2),
        }
        for name, *_ in variants
    ]
    if args.json:
        print(json.dumps({"n": args.n, "rounds": args.rounds, "rows": rows}, indent=2))
        return
    print(f"reserve + commit, n={args.n} per round, median of {args.rounds} interleaved rounds")
    print(f"{'variant':28} {'p50 µs':>9} {'vs plain':>9}")
    for r in rows:
        print(f"{r['variant']:28} {r['p50_us']:9.1f} {r['vs_plain']:8.2f}×")


if __name__ == "__main__":
    main()
