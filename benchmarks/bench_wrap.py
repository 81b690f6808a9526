"""Added latency of a governed SDK call: the same OpenAI client calling the same local
provider stand-in (tests/integrations/_server.py) bare and through ``gov.wrap``, in one run,
interleaved round by round so machine load hits both alike.

    python benchmarks/bench_wrap.py [--calls 200] [--rounds 7]

Prints, for a plain chat completion and a 20-chunk stream, the best-round median µs per
call bare vs governed (memory and SQLite ledgers), the added µs and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integrations"))

import openai
from _server import ProviderServer

from llmbudget import Governor

MSGS = [{"role": "user", "content": "Say hello a few times."}]


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    srv = ProviderServer().start()
    policy = {"budgets": [{"name": "run", "per": ["run"], "limit": 10**12}]}
    tmp = tempfile.mkdtemp()
    raw = openai.OpenAI(base_url=srv.url + "/v1", api_key="k", max_retries=0)
    govs = {
        "memory": Governor(policy, "memory://", log_events=False),
        "sqlite": Governor(policy, f"sqlite:///{tmp}/ledger.db", log_events=False),
    }
    clients: dict[str, object] = {"bare": raw, **{k: g.wrap(raw) for k, g in govs.items()}}

    def plain(c: object) -> Callable[[], object]:
        return lambda: c.chat.completions.create(  # type: ignore[attr-defined]
            model="gpt-4o", messages=MSGS, max_tokens=32
        )

    def stream(c: object) -> Callable[[], object]:
        def run() -> None:
            s = c.chat.completions.create(  # type: ignore[attr-defined]
                model="gpt-4o",
                messages=MSGS,
                max_tokens=64,
                stream=True,
                stream_options={"include_usage": True},
            )
            for _ in s:
                pass

        return run

    print(f"calls per round: {args.calls}, rounds: {args.rounds} (best round's median)\n")
    print(
        "| call | bare µs | governed (memory) µs | added | ratio "
        "| governed (SQLite) µs | added | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, make, chunks in (("chat, JSON", plain, 5), ("chat, 20-chunk stream", stream, 20)):
        srv.reset(chunks=chunks)
        for c in clients.values():  # warm up: connections, tokenizer, tables
            for _ in range(20):
                make(c)()
        best = {k: float("inf") for k in clients}
        for _ in range(args.rounds):
            for k, c in clients.items():
                best[k] = min(best[k], per_call_us(make(c), args.calls))
        b = best["bare"]
        m, s = best["memory"], best["sqlite"]
        print(
            f"| {label} | {b:.0f} | {m:.0f} | +{m - b:.0f} | {m / b:.2f} | {s:.0f} | +{s - b:.0f} "
            f"| {s / b:.2f} |"
        )
    for g in govs.values():
        g.close()
    raw.close()
    srv.stop()


if __name__ == "__main__":
    main()
