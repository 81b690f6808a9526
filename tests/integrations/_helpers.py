"""Ledger read-outs shared by the integration tests."""

from __future__ import annotations

from llmbudget import Governor


def totals(gov: Governor) -> dict[str, int]:
    """Ledger sums over every usage event."""
    out = {"prompt": 0, "completion": 0, "cached": 0, "reasoning": 0, "events": 0}
    for e in gov.store.events():
        out["prompt"] += e.prompt_tokens
        out["completion"] += e.completion_tokens
        out["cached"] += e.cached_tokens
        out["reasoning"] += e.reasoning_tokens
        out["events"] += 1
    return out


def counter(gov: Governor) -> tuple[int, int]:
    """(used, reserved) of the run budget."""
    st = gov.status(budget="run")
    if not st:
        return 0, 0
    return st[0].used, st[0].reserved


OPEN: list[object] = []


def track(client: object) -> object:
    """Close this (sync) SDK client after the test (see conftest)."""
    OPEN.append(client)
    return client
