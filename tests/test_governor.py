"""The reservation protocol through the public Governor, on the memory and SQLite stores."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from llmbudget import (
    ApprovalDenied,
    ApprovalRequired,
    BudgetExceeded,
    Governor,
    InvalidUsage,
    NotFound,
    ReservationError,
    UnknownModel,
)
from llmbudget.testing import CapturedEvents, FakeClock

MakeGov = Callable[..., Governor]

THREE = {
    "budgets": [
        {
            "name": "per-run",
            "per": ["run"],
            "limit": 10_000,
            "levels": [{"at": "50%", "action": "warn"}, {"at": "80%", "action": "alert"}],
        },
        {"name": "daily", "window": "day", "limit": 50_000},
        {"name": "gpt-4o", "match": {"model": "gpt-4o*"}, "window": "month", "limit": 8_000},
    ]
}


def used(gov: Governor) -> dict[str, int]:
    return {s.budget: s.used for s in gov.status()}


def test_reserve_commit_charges_actuals_to_every_matching_budget(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)
    with gov.reserve(model="gpt-4o", prompt_tokens=1000, max_completion_tokens=500) as r:
        assert {s.budget: s.reserved for s in gov.status()} == {
            "per-run": 1500,
            "daily": 1500,
            "gpt-4o": 1500,
        }
        r.commit(prompt_tokens=1000, completion_tokens=120)
    assert used(gov) == {"per-run": 1120, "daily": 1120, "gpt-4o": 1120}
    assert all(s.reserved == 0 for s in gov.status())


def test_budget_that_does_not_match_is_untouched(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)
    gov.record(model="llama-3.1-8b-instant", prompt_tokens=10, completion_tokens=5)
    assert used(gov) == {"per-run": 15, "daily": 15}


def test_inv_tok_001_refuses_past_limit_all_or_none(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)
    gov.record(model="gpt-4o", prompt_tokens=7000, completion_tokens=500)
    before = used(gov)
    with pytest.raises(BudgetExceeded) as ei:
        gov.reserve(model="gpt-4o", prompt_tokens=400, max_completion_tokens=200)
    e = ei.value
    assert (e.budget, e.limit, e.used, e.reserved, e.requested) == ("gpt-4o", 8000, 7500, 0, 600)
    assert e.window == "month:2026-03"
    assert e.resets_at is not None and e.resets_at.isoformat() == "2026-04-01T00:00:00+00:00"
    # none of the other budgets was charged either (all or none)
    assert used(gov) == before
    assert all(s.reserved == 0 for s in gov.status())
    # a call that fits exactly is allowed (the limit itself is not "past" it)
    gov.reserve(model="gpt-4o", prompt_tokens=400, max_completion_tokens=100).commit()
    assert used(gov)["gpt-4o"] == 8000


def test_inv_tok_003_error_carries_fields_and_a_suggestion(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)
    with pytest.raises(BudgetExceeded) as ei:
        gov.reserve(model="gpt-4o", prompt_tokens=9000, max_completion_tokens=0)
    e = ei.value
    assert "gpt-4o" in str(e) and "8,000" in str(e)
    assert "alone needs 9,000" in e.suggestion and "budgets[2].limit" in e.suggestion
    assert e.remaining == 8000
    assert e.decision is not None and e.decision.refusing is not None
    partial = e.with_partial("streamed so far")
    assert partial.partial == "streamed so far"
    with pytest.raises(BudgetExceeded) as ei:
        gov.record(prompt_tokens=45_000, completion_tokens=0, model="x", run="other")
        gov.reserve(prompt_tokens=6000, max_completion_tokens=0, model="x")
    assert ei.value.budget == "daily"
    assert "It resets at 2026-03-11 00:00 UTC" in ei.value.suggestion


def test_release_gives_tokens_back_and_exception_in_with_releases(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)
    r = gov.reserve(model="gpt-4o", prompt_tokens=100, max_completion_tokens=100)
    r.release()
    r.release()  # idempotent
    with (
        pytest.raises(RuntimeError),
        gov.reserve(model="gpt-4o", prompt_tokens=100, max_completion_tokens=100),
    ):
        raise RuntimeError("provider 500")
    assert used(gov) == {"per-run": 0, "daily": 0, "gpt-4o": 0}
    assert all(s.reserved == 0 for s in gov.status())
    with pytest.raises(ReservationError, match="released"):
        gov.store.commit(r.id, {}, __import__("llmbudget.core.ledger").core.ledger.Usage(1, 1), 0.0)


def test_leaving_with_block_without_commit_settles_at_estimate(
    make_gov: MakeGov, caplog: Any
) -> None:
    gov = make_gov(THREE)
    with gov.reserve(model="gpt-4o", prompt_tokens=100, max_completion_tokens=50):
        pass
    assert used(gov)["gpt-4o"] == 150
    assert "without commit" in caplog.text


def test_commit_is_idempotent(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)
    r = gov.reserve(model="gpt-4o", prompt_tokens=100, max_completion_tokens=50)
    r.commit(prompt_tokens=100, completion_tokens=20)
    r.commit(prompt_tokens=100, completion_tokens=20)
    # another handle (another process) committing the same id changes nothing either
    from llmbudget.core.ledger import Usage

    out = gov.store.commit(r.id, {"x": 5}, Usage(1, 1), 0.0)
    assert out.duplicate
    assert used(gov)["gpt-4o"] == 120
    assert r.state == "committed"
    assert len(list(gov.store.events())) == 1


def test_record_idempotency_key(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)
    for _ in range(3):
        gov.record(prompt_tokens=10, completion_tokens=5, idempotency_key="call-42")
    assert used(gov)["daily"] == 15


def test_extend_until_refused_then_commit_partial(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)
    r = gov.reserve(model="gpt-4o", prompt_tokens=1000, max_completion_tokens=1000)
    for _ in range(5):
        r.extend(1000)
    assert r.completion_tokens == 6000
    with pytest.raises(BudgetExceeded) as ei:
        r.extend(1001)  # 1000 + 6000 + 1001 > 8000
    assert ei.value.budget == "gpt-4o"
    r.commit(prompt_tokens=1000, completion_tokens=6800)
    assert used(gov)["gpt-4o"] == 7800 <= 8000


def test_lease_expiry_charges_estimate_then_late_commit_corrects(
    make_gov: MakeGov, clock: FakeClock, events: CapturedEvents
) -> None:
    gov = make_gov(THREE)
    r = gov.reserve(model="gpt-4o", prompt_tokens=300, max_completion_tokens=700, lease_seconds=60)
    clock.advance(61)
    assert gov.store.sweep(clock.now().timestamp()) == 1
    assert r.state == "expired"
    assert used(gov)["gpt-4o"] == 1000
    ev = list(gov.store.events())
    assert len(ev) == 1 and not ev[0].settled
    r.commit(prompt_tokens=300, completion_tokens=50)
    assert used(gov)["gpt-4o"] == 350
    ev = list(gov.store.events())
    assert len(ev) == 1 and ev[0].settled and ev[0].completion_tokens == 50


def test_expired_leases_are_swept_by_the_next_reservation(
    make_gov: MakeGov, clock: FakeClock
) -> None:
    gov = make_gov(THREE)
    gov.reserve(model="gpt-4o", prompt_tokens=500, max_completion_tokens=500, lease_seconds=5)
    clock.advance(10)
    gov.reserve(model="gpt-4o", prompt_tokens=1, max_completion_tokens=1).commit()
    assert used(gov)["gpt-4o"] == 1002
    assert all(s.reserved == 0 for s in gov.status())


def test_levels_are_announced_once_per_window(make_gov: MakeGov, events: CapturedEvents) -> None:
    gov = make_gov(THREE)
    for _ in range(10):
        gov.record(prompt_tokens=500, completion_tokens=400)
    assert events.kinds() == ["warn", "alert"]
    assert [e.budget for e in events.events] == ["per-run", "per-run"]
    assert [e.kind for e in gov.store.audit_events()] == ["alert", "warn"]


def test_warn_mode_never_refuses_but_reports_would_block(
    make_gov: MakeGov, events: CapturedEvents
) -> None:
    gov = make_gov({**THREE, "mode": "warn"})
    r = gov.reserve(model="gpt-4o", prompt_tokens=9000, max_completion_tokens=100)
    assert r.decision.allowed
    assert "would_block" in events.kinds()
    r.commit()
    assert used(gov)["gpt-4o"] == 9100


def test_per_budget_mode_overrides_policy_mode(make_gov: MakeGov) -> None:
    policy = {
        "mode": "warn",
        "budgets": [{"name": "soft", "limit": 10}, {"name": "hard", "limit": 100, "mode": "block"}],
    }
    gov = make_gov(policy)
    gov.reserve(prompt_tokens=50, max_completion_tokens=0).commit()
    with pytest.raises(BudgetExceeded) as ei:
        gov.reserve(prompt_tokens=51, max_completion_tokens=0)
    assert ei.value.budget == "hard"


def test_per_partitions_counters(make_gov: MakeGov) -> None:
    gov = make_gov({"budgets": [{"name": "agent", "per": ["agent"], "limit": 100}]})
    gov.record(agent="planner", prompt_tokens=90, completion_tokens=0)
    gov.reserve(agent="critic", prompt_tokens=90, max_completion_tokens=0).commit()
    with pytest.raises(BudgetExceeded):
        gov.reserve(agent="planner", prompt_tokens=11, max_completion_tokens=0)
    assert sorted((s.partition["agent"], s.used) for s in gov.status()) == [
        ("critic", 90),
        ("planner", 90),
    ]


def test_units_prompt_and_completion(make_gov: MakeGov) -> None:
    gov = make_gov(
        {
            "budgets": [
                {"name": "p", "unit": "prompt_tokens", "limit": 1000},
                {"name": "c", "unit": "completion_tokens", "limit": 100},
            ]
        }
    )
    gov.reserve(prompt_tokens=900, max_completion_tokens=100).commit(900, 60)
    assert used(gov) == {"p": 900, "c": 60}
    with pytest.raises(BudgetExceeded) as ei:
        gov.reserve(prompt_tokens=10, max_completion_tokens=41)
    assert ei.value.budget == "c"


def test_usd_budget_uses_policy_prices_and_refuses_unknown_models(make_gov: MakeGov) -> None:
    gov = make_gov(
        {
            "prices": {"my-model": {"input": 2.0, "output": 10.0}},
            "budgets": [
                {"name": "spend", "unit": "usd", "limit": 1.0, "match": {"model": "my-*"}},
                {"name": "any-usd", "unit": "usd", "limit": 5, "match": {"model": "mystery*"}},
            ],
        }
    )
    # 100k prompt at $2/M = $0.20, 50k completion at $10/M = $0.50 → $0.70 = 700_000 micros
    gov.reserve(model="my-model", prompt_tokens=100_000, max_completion_tokens=50_000).commit()
    st = {s.budget: s for s in gov.status()}
    assert st["spend"].used == 700_000 and st["spend"].limit == 1_000_000
    with pytest.raises(BudgetExceeded):
        gov.reserve(model="my-model", prompt_tokens=100_000, max_completion_tokens=50_000)
    with pytest.raises(UnknownModel, match="prices"):
        gov.reserve(model="mystery-1", prompt_tokens=1, max_completion_tokens=1)


def test_approve_level_asks_a_person_then_grant_lets_it_through(
    make_gov: MakeGov, events: CapturedEvents
) -> None:
    gov = make_gov(
        {
            "budgets": [
                {
                    "name": "run",
                    "per": ["run"],
                    "limit": 1000,
                    "levels": [{"at": 1000, "action": "approve"}],
                }
            ]
        }
    )
    gov.record(prompt_tokens=900, completion_tokens=0)
    with pytest.raises(ApprovalRequired) as ei:
        gov.reserve(prompt_tokens=200, max_completion_tokens=0)
    rid = ei.value.request_id
    assert f"llmbudget approve {rid}" in ei.value.suggestion
    # asking again reuses the pending request
    with pytest.raises(ApprovalRequired) as again:
        gov.reserve(prompt_tokens=300, max_completion_tokens=0)
    assert again.value.request_id == rid
    assert [a.id for a in gov.approvals()] == [rid]
    a = gov.approve(rid, by="alice", note="release day")
    assert (a.state, a.granted, a.resolved_by) == ("approved", 200, "alice")
    gov.reserve(prompt_tokens=200, max_completion_tokens=0).commit()
    st = gov.status()[0]
    assert (st.used, st.limit) == (1100, 1200)
    assert "approval_requested" in events.kinds() and "approved" in events.kinds()
    with pytest.raises(InvalidUsage, match="already approved"):
        gov.approve(rid)


def test_deny_keeps_refusing_for_the_window(make_gov: MakeGov, clock: FakeClock) -> None:
    gov = make_gov(
        {
            "budgets": [
                {
                    "name": "day",
                    "window": "day",
                    "limit": 100,
                    "levels": [{"at": "100%", "action": "approve"}],
                }
            ]
        }
    )
    gov.record(prompt_tokens=100, completion_tokens=0)
    with pytest.raises(ApprovalRequired) as ei:
        gov.reserve(prompt_tokens=1, max_completion_tokens=0)
    gov.deny(ei.value.request_id, by="bob")
    with pytest.raises(ApprovalDenied) as denied:
        gov.reserve(prompt_tokens=1, max_completion_tokens=0)
    assert denied.value.request_id == ei.value.request_id
    clock.advance(days=1)  # a new window: a new counter, no denial
    gov.reserve(prompt_tokens=1, max_completion_tokens=0).commit()
    with pytest.raises(NotFound):
        gov.approve("nope")


def test_approve_with_explicit_tokens(make_gov: MakeGov) -> None:
    gov = make_gov(
        {"budgets": [{"name": "b", "limit": 10, "levels": [{"at": "100%", "action": "approve"}]}]}
    )
    with pytest.raises(ApprovalRequired) as ei:
        gov.reserve(prompt_tokens=11, max_completion_tokens=0)
    gov.approve(ei.value.request_id, tokens=1000)
    gov.reserve(prompt_tokens=500, max_completion_tokens=0).commit()
    with pytest.raises(InvalidUsage):
        gov.approve(ei.value.request_id, tokens=0)


def test_check_is_a_dry_run(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)
    d = gov.check(model="gpt-4o", prompt_tokens=9000, max_completion_tokens=0)
    assert not d.allowed and d.refusing is not None and d.refusing.budget.name == "gpt-4o"
    d = gov.check(model="gpt-4o", prompt_tokens=100, max_completion_tokens=0)
    assert d.allowed
    assert gov.status() == []
    assert gov.approvals(None) == []


def test_inv_tok_002_prompt_and_completion_sums_per_label(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)
    calls = [("planner", 120, 30), ("critic", 80, 70), ("planner", 15, 5), ("critic", 1, 0)]
    for agent, p, c in calls:
        with gov.reserve(
            agent=agent, model="gpt-4o", prompt_tokens=p, max_completion_tokens=100
        ) as r:
            r.commit(prompt_tokens=p, completion_tokens=c)
    gov.record(agent="planner", prompt_tokens=7, completion_tokens=3)
    evs = list(gov.store.events())
    for agent in ("planner", "critic"):
        mine = [e for e in evs if e.labels["agent"] == agent]
        exp = [(p, c) for a, p, c in calls if a == agent] + ([(7, 3)] if agent == "planner" else [])
        assert sum(e.prompt_tokens for e in mine) == sum(p for p, _ in exp)
        assert sum(e.completion_tokens for e in mine) == sum(c for _, c in exp)
    total = sum(p + c for _, p, c in calls) + 10
    assert used(gov)["daily"] == total == sum(e.prompt_tokens + e.completion_tokens for e in evs)
    assert list(gov.store.events(labels={"agent": "critic"}))[0].estimated_completion == 100


@pytest.mark.parametrize("bad", [-1, math.nan, 1.5, 10**13, "12", True, None])
def test_bad_token_counts_are_refused_clearly(make_gov: MakeGov, bad: Any) -> None:
    gov = make_gov(THREE)
    with pytest.raises(InvalidUsage, match="prompt_tokens"):
        gov.reserve(prompt_tokens=bad, max_completion_tokens=1)
    with pytest.raises(InvalidUsage, match="completion_tokens"):
        gov.record(prompt_tokens=1, completion_tokens=bad)
    assert gov.status() == []


def test_bad_labels_and_commit_values(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)
    with pytest.raises(InvalidUsage, match="label name"):
        gov.record(prompt_tokens=1, completion_tokens=1, **{"Bad-Name": "x"})
    with pytest.raises(InvalidUsage, match="label agent"):
        gov.record(prompt_tokens=1, completion_tokens=1, agent="")
    r = gov.reserve(prompt_tokens=10, max_completion_tokens=10)
    with pytest.raises(InvalidUsage, match="cached_tokens"):
        r.commit(prompt_tokens=10, completion_tokens=1, cached_tokens=11)
    r.commit(prompt_tokens=10, completion_tokens=1, cached_tokens=4, reasoning_tokens=1)
    ev = next(iter(gov.store.events()))
    assert (ev.cached_tokens, ev.reasoning_tokens) == (4, 1)


def test_govern_decorator_sync_and_async(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)

    @gov.govern(
        model="gpt-4o",
        prompt_tokens=lambda text: len(text),
        max_completion_tokens=50,
        usage=lambda r: (r["p"], r["c"]),
    )
    def call(text: str) -> dict[str, int]:
        return {"p": len(text), "c": 7}

    @gov.govern(model="gpt-4o", prompt_tokens=10, max_completion_tokens=50)
    async def acall() -> str:
        return "ok"

    @gov.govern(model="gpt-4o", prompt_tokens=10, max_completion_tokens=50)
    def broken() -> None:
        raise ValueError("provider down")

    assert call("hello") == {"p": 5, "c": 7}
    assert asyncio.run(acall()) == "ok"
    with pytest.raises(ValueError, match="provider down"):
        broken()
    assert used(gov)["gpt-4o"] == 12 + 60
    assert all(s.reserved == 0 for s in gov.status())


def test_async_context_manager(make_gov: MakeGov) -> None:
    gov = make_gov(THREE)

    async def main() -> None:
        async with gov.reserve(model="gpt-4o", prompt_tokens=10, max_completion_tokens=10) as r:
            r.commit(prompt_tokens=10, completion_tokens=3)
        r2 = await gov.areserve(model="gpt-4o", prompt_tokens=5, max_completion_tokens=5)
        async with r2:
            raise_it = False
            if raise_it:
                raise AssertionError
        with pytest.raises(KeyError):
            async with gov.reserve(model="gpt-4o", prompt_tokens=1, max_completion_tokens=1):
                raise KeyError("boom")

    asyncio.run(main())
    assert used(gov)["gpt-4o"] == 13 + 10


def test_default_run_label_is_generated_per_governor(store: Any, clock: FakeClock) -> None:
    policy = {"budgets": [{"name": "run", "per": ["run"], "limit": 100}]}
    a = Governor(policy, store, clock=clock)
    b = Governor(policy, store, clock=clock)
    assert a.labels["run"] != b.labels["run"]
    a.record(prompt_tokens=60, completion_tokens=0)
    b.reserve(prompt_tokens=60, max_completion_tokens=0).commit()
    assert sorted(s.used for s in a.status()) == [60, 60]


def test_completion_estimate_is_learned_from_the_ledger(
    make_gov: MakeGov, clock: FakeClock
) -> None:
    gov = make_gov({"default_completion_tokens": 777, "budgets": [{"name": "all", "limit": 10**9}]})
    r = gov.reserve(model="m-1", operation="summarise", prompt_tokens=10)
    assert r.completion_tokens == 777  # no history yet: the policy default
    r.commit(prompt_tokens=10, completion_tokens=5)
    for i in range(40):
        gov.reserve(
            model="m-1", operation="summarise", prompt_tokens=10, max_completion_tokens=500
        ).commit(prompt_tokens=10, completion_tokens=100 + i)
    clock.advance(301)  # the learned estimate is refreshed every 5 minutes
    r = gov.reserve(model="m-1", operation="summarise", prompt_tokens=10)
    assert 130 <= r.completion_tokens <= 139  # a high percentile of 100..139, not the default
    assert gov.reserve(model="m-1", operation="other", prompt_tokens=1).completion_tokens == 777
    assert gov.reserve(prompt_tokens=1).completion_tokens == 777  # no model label


def test_reserve_counts_messages_with_the_models_tokenizer_and_warns_on_mismatch(
    make_gov: MakeGov,
) -> None:
    from llmbudget.tokens import TokenizerMismatchWarning, count_chat

    gov = make_gov(THREE)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    expected = count_chat("gpt-4o", msgs).tokens
    r = gov.reserve(model="gpt-4o", messages=msgs, max_completion_tokens=10)
    assert r.prompt_tokens == expected
    r.commit(prompt_tokens=expected, completion_tokens=3)  # the provider agrees: silent
    model = f"gpt-4o-test-{uuid.uuid4().hex[:8]}"  # the warning is once per model and process
    r = gov.reserve(model=model, text="hello world", max_completion_tokens=10)
    assert r.prompt_tokens == 2
    with pytest.warns(TokenizerMismatchWarning, match="we counted 2 prompt tokens"):
        r.commit(prompt_tokens=40, completion_tokens=3)
    with pytest.raises(InvalidUsage, match="messages=/text="):
        gov.reserve(messages=msgs, max_completion_tokens=1)


@pytest.mark.sqlite
def test_a_cancelled_areserve_does_not_leak_its_reservation(
    tmp_path: Any, clock: FakeClock
) -> None:
    import sqlite3

    db = tmp_path / "ledger.db"
    gov = Governor(THREE, f"sqlite:///{db}", clock=clock, labels={"run": "r1"}, log_events=False)
    gov.record(model="gpt-4o", prompt_tokens=1, completion_tokens=0)  # schema and counters
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock: reserve waits

    async def main() -> None:
        task = asyncio.ensure_future(
            gov.areserve(model="gpt-4o", prompt_tokens=100, max_completion_tokens=100)
        )
        await asyncio.sleep(0.2)
        task.cancel()  # the caller gives up while the store step still waits
        with pytest.raises(asyncio.CancelledError):
            await task
        holder.execute("ROLLBACK")  # the step now runs and lands

    try:
        asyncio.run(main())
        landed = 0
        for _ in range(500):  # wait until the worker thread has made and settled it
            landed = holder.execute(
                "SELECT count(*) FROM reservations WHERE state != 'active'"
            ).fetchone()[0]
            if landed:
                break
            time.sleep(0.02)
    finally:
        holder.close()
    assert landed == 1
    assert all(s.reserved == 0 for s in gov.status())
    assert {s.used for s in gov.status()} == {1}  # nothing was charged for the cancelled call
