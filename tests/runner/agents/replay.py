"""A stand-in CLI agent: prints a recorded stream-json transcript line by line.

usage: replay.py TRANSCRIPT [--delay S] [--ignore-sigterm] [--forever S] [--exit N]

--delay S         sleep S seconds after each line (flushes every line, like a real agent)
--ignore-sigterm  keep going after SIGTERM (so only SIGKILL stops it)
--forever S       after the transcript, keep printing one more message every S seconds
--exit N          exit with code N at the end
"""

from __future__ import annotations

import json
import signal
import sys
import time


def main(argv: list[str]) -> int:
    path, rest = argv[0], argv[1:]
    delay, forever, code = 0.0, None, 0
    while rest:
        flag = rest.pop(0)
        if flag == "--delay":
            delay = float(rest.pop(0))
        elif flag == "--ignore-sigterm":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif flag == "--forever":
            forever = float(rest.pop(0))
        elif flag == "--exit":
            code = int(rest.pop(0))
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            sys.stdout.write(line if line.endswith("\n") else line + "\n")
            sys.stdout.flush()
            if delay:
                time.sleep(delay)
    n = 0
    while forever is not None:
        n += 1
        usage = {"input_tokens": 100, "output_tokens": 100}
        msg = {"id": f"forever-{n}", "model": "claude-test", "usage": usage}
        print(json.dumps({"type": "assistant", "message": msg}), flush=True)
        time.sleep(forever)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
