"""The commit's decision is worked out on first read when nothing is due (DeferredDecision)."""

from __future__ import annotations

from llmbudget import Governor
from llmbudget.core.decide import Decision, DeferredDecision

POLICY = {
    "budgets": [
        {
            "name": "daily",
            "window": "day",
            "limit": 1000,
            "levels": [{"at": "50%", "action": "warn"}, {"at": "100%", "action": "block"}],
        }
    ]
}


def test_a_quiet_commit_defers_its_decision_and_reads_like_a_plain_one() -> None:
    gov = Governor(POLICY, "memory://", log_events=False)
    d = gov.reserve(prompt_tokens=10, max_completion_tokens=10).commit(
        prompt_tokens=10, completion_tokens=5
    )
    assert isinstance(d, DeferredDecision) and isinstance(d, Decision)
    assert (d.allowed, d.action.value, d.reason) == (True, "continue", "within every budget")
    (check,) = d.checks
    assert (check.budget.name, check.used, check.reserved) == ("daily", 15, 0)
    assert d.refusing is None and d.announcements == ()
    plain = Decision(d.allowed, d.action, d.checks, d.reason)
    assert d == plain and plain == d


def test_a_commit_that_crosses_a_level_decides_at_once_and_announces() -> None:
    seen: list[object] = []
    gov = Governor(POLICY, "memory://", log_events=False, on_event=seen.append)
    d = gov.reserve(prompt_tokens=10, max_completion_tokens=10).commit(
        prompt_tokens=500, completion_tokens=100
    )
    assert type(d) is Decision
    assert d.action.value == "warn"
    assert [e.kind for e in seen] == ["warn"]  # type: ignore[attr-defined]
