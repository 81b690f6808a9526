"""Commands and budget flags: ``/test --real-services`` → ``/test``; ``"/test=1000"`` →
``("/test", 1000)``. Errors are :class:`~llmbudget.InvalidUsage` with a message for people."""

from __future__ import annotations

import re

from .._errors import InvalidUsage

__all__ = ["MAX_BUDGET", "base_command", "parse_command_budget", "parse_limit"]

MAX_BUDGET = 10**15
_NUMBER = re.compile(r"^([0-9][0-9_,]*(?:\.[0-9]+)?)\s*([kKmMgGbB]?)$")
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}


def base_command(command: str | None) -> str | None:
    """The first word of a command line, which per-command budgets are keyed by
    (``"/test --real-services --category unit"`` → ``"/test"``); ``None`` for no command."""
    if not command:
        return None
    words = command.split()
    return words[0] if words else None


def parse_limit(text: object, what: str = "budget") -> int:
    """A token limit: ``5000``, ``5_000``, ``"5,000"``, ``"5k"``, ``"1.5M"``; a whole
    number of at least 1."""
    if isinstance(text, bool):
        raise InvalidUsage(f"{what}: expected a number of tokens, got {text!r}")
    if isinstance(text, int):
        value: float = text
    elif isinstance(text, float):
        value = text
    elif isinstance(text, str):
        raw = text.strip()
        if raw.startswith("-"):
            raise InvalidUsage(f"{what}: a token budget cannot be negative, got {raw!r}")
        m = _NUMBER.match(raw)
        if not m:
            raise InvalidUsage(
                f"{what}: {raw!r} is not a number of tokens (examples: 5000, 5_000, 5k, 1.5M)"
            )
        value = float(m.group(1).replace("_", "").replace(",", "")) * _SUFFIX[m.group(2).lower()]
    else:
        raise InvalidUsage(f"{what}: expected a number of tokens, got {text!r}")
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidUsage(f"{what}: expected a finite number, got {text!r}")
    if value < 0:
        raise InvalidUsage(f"{what}: a token budget cannot be negative, got {text!r}")
    if value != int(value):
        raise InvalidUsage(f"{what}: expected a whole number of tokens, got {text!r}")
    if not 1 <= value <= MAX_BUDGET:
        raise InvalidUsage(f"{what}: must be between 1 and {MAX_BUDGET:,} tokens, got {text!r}")
    return int(value)


def parse_command_budget(spec: str) -> tuple[str, int]:
    """``"/test=1000"`` → ``("/test", 1000)``. The left side is a base command (one word)."""
    if "=" not in spec:
        raise InvalidUsage(f'--command-budget {spec!r}: expected COMMAND=TOKENS, e.g. "/test=1000"')
    name, _, limit = spec.rpartition("=")
    name = name.strip()
    if not name:
        raise InvalidUsage(f"--command-budget {spec!r}: the command before '=' is empty")
    if len(name.split()) != 1:
        raise InvalidUsage(
            f"--command-budget {spec!r}: name the base command only (one word, e.g. "
            f"{name.split()[0]!r}); budgets apply to it whatever its arguments"
        )
    if len(name) > 200:
        raise InvalidUsage(f"--command-budget {spec!r}: the command name is too long")
    return name, parse_limit(limit, f"--command-budget {spec!r}")
