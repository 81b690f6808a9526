"""Regression tests for defects found in review: each failed before its fix."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmbudget import BudgetExceeded, ConfidenceReached, Governor, InvalidUsage
from llmbudget.testing import CapturedEvents, FakeClock

MakeGov = Callable[..., Governor]


def test_a_donor_charged_by_the_same_call_is_never_overdrawn(make_gov: MakeGov) -> None:
    gov = make_gov(
        {
            "budgets": [
                {"name": "B", "limit": 200, "pool": "p", "priority": 1, "min_reserve": 5},
                {"name": "A", "match": {"agent": "a"}, "limit": 60, "pool": "p", "priority": 2},
            ]
        }
    )
    gov.record(agent="b", prompt_tokens=100, completion_tokens=0)
    gov.record(agent="a", prompt_tokens=50, completion_tokens=0)
    with pytest.raises(BudgetExceeded):
        gov.reserve(agent="a", prompt_tokens=50, max_completion_tokens=0)
    for s in gov.status():
        assert s.used + s.reserved <= s.limit, s


def test_a_closed_gate_refuses_even_a_zero_charge(make_gov: MakeGov) -> None:
    gov = make_gov(
        {
            "budgets": [
                {
                    "name": "out",
                    "match": {"agent": "x"},
                    "unit": "completion_tokens",
                    "limit": 10_000,
                    "confidence_threshold": 0.8,
                },
            ]
        }
    )
    gov.reserve(agent="x", prompt_tokens=10, max_completion_tokens=10).commit(
        prompt_tokens=10, completion_tokens=10, confidence=0.95
    )
    with pytest.raises(ConfidenceReached):
        gov.reserve(agent="x", prompt_tokens=5000, max_completion_tokens=0)


def test_gate_in_warn_mode_does_not_crash(make_gov: MakeGov) -> None:
    gov = make_gov(
        {
            "mode": "warn",
            "budgets": [
                {
                    "name": "g",
                    "match": {"agent": "x"},
                    "limit": 10_000,
                    "confidence_threshold": 0.8,
                },
            ],
        }
    )
    gov.reserve(agent="x", prompt_tokens=1, max_completion_tokens=1).commit(confidence=0.9)
    assert gov.check(agent="x", prompt_tokens=1, max_completion_tokens=1).allowed
    gov.reserve(agent="x", prompt_tokens=1, max_completion_tokens=1).commit()  # warn: allowed


def test_check_agrees_with_reserve_when_a_pool_lends(make_gov: MakeGov) -> None:
    gov = make_gov(
        {
            "budgets": [
                {"name": "A", "match": {"agent": "a"}, "limit": 100, "pool": "p", "priority": 2},
                {"name": "B", "match": {"agent": "b"}, "limit": 100, "pool": "p", "priority": 1},
            ]
        }
    )
    gov.record(agent="a", prompt_tokens=100, completion_tokens=0)
    assert gov.check(agent="a", prompt_tokens=50, max_completion_tokens=0).allowed
    assert all(s.lent == 0 for s in gov.status())  # check moved nothing
    gov.reserve(agent="a", prompt_tokens=50, max_completion_tokens=0).commit()


def test_a_late_release_after_expiry_takes_the_estimate_back(
    make_gov: MakeGov, clock: FakeClock
) -> None:
    gov = make_gov({"budgets": [{"name": "all", "limit": 10_000}]})
    r = gov.reserve(prompt_tokens=100, max_completion_tokens=900, lease_seconds=5)
    clock.advance(10)
    gov.store.sweep(clock.now().timestamp())
    assert gov.status()[0].used == 1000
    r.release()
    assert gov.status()[0].used == 0
    (ev,) = list(gov.store.events())
    assert (ev.prompt_tokens, ev.completion_tokens, ev.settled) == (0, 0, True)


@pytest.mark.parametrize("bad", [float("nan"), -1, 0, float("inf"), "10", 8 * 86400])
def test_bad_lease_seconds(make_gov: MakeGov, bad: object) -> None:
    gov = make_gov({"budgets": [{"name": "all", "limit": 10_000}]})
    with pytest.raises(InvalidUsage, match="lease_seconds"):
        gov.reserve(prompt_tokens=1, max_completion_tokens=1, lease_seconds=bad)  # type: ignore[arg-type]


def test_record_refuses_cached_above_prompt(make_gov: MakeGov) -> None:
    gov = make_gov({"budgets": [{"name": "all", "limit": 10_000}]})
    with pytest.raises(InvalidUsage, match="cached_tokens"):
        gov.record(prompt_tokens=5, completion_tokens=3, cached_tokens=100)


def test_record_keeps_usage_when_a_usd_budget_cannot_price_it(
    make_gov: MakeGov, events: CapturedEvents
) -> None:
    gov = make_gov(
        {
            "budgets": [
                {"name": "tokens", "limit": 10_000},
                {"name": "dollars", "unit": "usd", "limit": 5},
            ]
        }
    )
    gov.record(model="my-private-model", prompt_tokens=10, completion_tokens=1)
    assert {s.budget: s.used for s in gov.status()} == {"tokens": 11}
    assert "unpriced" in events.kinds()
    assert len(list(gov.store.events())) == 1


def test_an_approval_creates_its_counter_with_its_window(
    make_gov: MakeGov, clock: FakeClock
) -> None:
    from llmbudget import ApprovalRequired

    gov = make_gov(
        {
            "budgets": [
                {
                    "name": "d",
                    "window": "day",
                    "limit": 100,
                    "levels": [{"at": "100%", "action": "approve"}],
                }
            ]
        }
    )
    with pytest.raises(ApprovalRequired) as ei:
        gov.reserve(prompt_tokens=500, max_completion_tokens=0)
    gov.approve(ei.value.request_id)
    (st,) = gov.status()
    assert st.resets_at is not None
    clock.advance(days=40)
    assert gov.status() == []  # the window ended: the counter is no longer live


def test_a_commit_after_midnight_is_dated_in_the_day_it_was_reserved(
    make_gov: MakeGov, clock: FakeClock
) -> None:
    # INV-TOK-002: the events of a window sum to its counter, also at the window's edge
    from datetime import UTC, datetime

    gov = make_gov({"budgets": [{"name": "d", "window": "day", "limit": 10_000}]})
    clock.set("2026-03-10T23:59:50Z")
    r = gov.reserve(prompt_tokens=100, max_completion_tokens=900)
    clock.set("2026-03-11T00:00:10Z")
    r.commit(prompt_tokens=100, completion_tokens=200)
    gov.record(prompt_tokens=5, completion_tokens=5)  # today's, dated now
    day_start = datetime(2026, 3, 10, tzinfo=UTC).timestamp()
    day_end = datetime(2026, 3, 11, tzinfo=UTC).timestamp()
    (day,) = [c for c in gov.store.counters() if c.window_end == day_end]
    assert (day.used, day.reserved) == (300, 0)
    (ev,) = list(gov.store.events(since=day_start, until=day_end))
    assert (ev.prompt_tokens + ev.completion_tokens, ev.at) == (300, day_end - 10)
    (today,) = list(gov.store.events(since=day_end))
    assert today.prompt_tokens + today.completion_tokens == 10
