"""The main job (`make run`): backtest the starter policy on the example usage log, then
govern a few calls on the embedded SQLite ledger and show where the budgets stand.

Everything it writes goes to ./.llmbudget/ (the policy and the demo ledger), so it never
touches your real ledger. Each step is a plain `llmbudget` command, printed before it runs.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = Path(".llmbudget")
POLICY = WORK / "policy.yaml"
LEDGER = WORK / "demo-ledger.sqlite3"


def llmbudget(*args: str, ok: tuple[int, ...] = (0,)) -> int:
    cmd = ["llmbudget", "--policy", str(POLICY), "--ledger", f"sqlite:///{LEDGER}", *args]
    print(f"\n$ {shlex.join(cmd)}", flush=True)
    exe = Path(sys.executable).with_name("llmbudget")
    code = subprocess.call([str(exe), *cmd[1:]])
    if code not in ok:
        sys.exit(f"main job: `{shlex.join(cmd)}` exited with {code}")
    return code


def main() -> None:
    WORK.mkdir(exist_ok=True)
    LEDGER.unlink(missing_ok=True)
    if not POLICY.exists():
        llmbudget("init", str(POLICY))
    # 1. Backtest: what would the starter policy have done to the seed's February history?
    llmbudget("replay", str(HERE / "usage-log.jsonl"), "--incidents", "12")
    # 2. Govern live calls on the SQLite ledger: record usage, then ask before a big call.
    run = f"demo-{os.getpid()}"
    for prompt, completion in ((6_000, 2_500), (5_500, 3_000), (4_000, 2_000)):
        llmbudget(
            "record",
            "-m",
            "gpt-4o",
            "-l",
            f"run={run}",
            "-l",
            "agent=writer",
            "--prompt-tokens",
            str(prompt),
            "--completion-tokens",
            str(completion),
        )
    llmbudget(
        "check",
        "-m",
        "gpt-4o",
        "-l",
        f"run={run}",
        "--prompt-tokens",
        "3000",
        "--max-completion-tokens",
        "1000",
        ok=(0, 3, 4),
    )
    llmbudget("status")


if __name__ == "__main__":
    main()
