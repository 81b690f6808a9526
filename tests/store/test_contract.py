"""The store contract (the docstrings of llmbudget/store/_base.py), run on every backend."""

from __future__ import annotations

import threading
import time

import pytest

from llmbudget import InvalidUsage, NotFound, ReservationError
from llmbudget.core.ledger import (
    Approval,
    AuditEvent,
    Charge,
    CounterState,
    ReservationMeta,
    Usage,
)
from llmbudget.store import Store

# a realistic "now": Redis expires windowed counters on its own clock, so windows in the
# test must end in the real future
T = float(int(time.time()))
META = ReservationMeta((("model", "m1"), ("operation", "chat")), 60, 40)


def ch(key: str, amount: int, cap: int | None = None, end: float | None = None) -> Charge:
    return Charge(
        key, key.split("|")[0], amount, cap, "day:x" if end else "run", end, (("run", "r1"),)
    )


def state(s: Store, key: str) -> CounterState:
    (c,) = s.counters([key])
    return c


def totals(s: Store, key: str) -> tuple[int, int, int]:
    c = state(s, key)
    return c.used, c.reserved, c.granted


# -- reserve --------------------------------------------------------------------------------


def test_reserve_all_or_none_across_counters(store: Store) -> None:
    out = store.reserve("r1", [ch("A", 40, 100), ch("B", 40, 50)], META, T + 60, T)
    assert out.ok
    assert out.refused is None
    assert [(c.key, c.reserved) for c in out.counters] == [("A", 40), ("B", 40)]
    out = store.reserve("r2", [ch("A", 20, 100), ch("B", 20, 50), ch("C", 5, 10)], META, T + 60, T)
    assert not out.ok
    assert out.refused == "B"
    assert [(c.key, c.used, c.reserved) for c in out.counters] == [
        ("A", 0, 40),
        ("B", 0, 40),
        ("C", 0, 0),
    ]  # as found, in charge order
    assert totals(store, "A") == (0, 40, 0)  # nothing applied
    assert store.counters(["C"]) == []
    assert store.reservation_state("r2") is None
    assert store.reservation_state("r1") == "active"


def test_reserve_exactly_to_the_cap_fits(store: Store) -> None:
    assert store.reserve("r1", [ch("A", 100, 100)], META, T + 60, T).ok
    assert not store.reserve("r2", [ch("A", 1, 100)], META, T + 60, T).ok
    assert store.reserve("r3", [ch("A", 0, 100)], META, T + 60, T).ok  # zero always fits
    assert store.reserve("r4", [ch("A", 10**6, None)], META, T + 60, T).ok  # no cap
    assert totals(store, "A") == (0, 100 + 10**6, 0)


def test_reserve_keeps_counter_description(store: Store) -> None:
    c = Charge(
        "B|run=x|day:2026-01-01",
        "B",
        5,
        10,
        "day:2026-01-01",
        T + 3600,
        (("agent", "a b"), ("run", "x")),
    )
    out = store.reserve("r1", [c], META, T + 60, T)
    (st,) = out.counters
    assert (st.key, st.budget, st.window_id, st.window_end, st.partition) == (
        c.key,
        "B",
        "day:2026-01-01",
        T + 3600,
        (("agent", "a b"), ("run", "x")),
    )
    assert store.counters([c.key]) == [st]


def test_duplicate_reservation_id_is_refused(store: Store) -> None:
    assert store.reserve("r1", [ch("A", 1, 10)], META, T + 60, T).ok
    with pytest.raises(ReservationError):
        store.reserve("r1", [ch("A", 1, 10)], META, T + 60, T)
    assert totals(store, "A") == (0, 1, 0)


def test_granted_extends_the_cap(store: Store) -> None:
    assert store.reserve("r1", [ch("A", 100, 100)], META, T + 60, T).ok
    a = store.request_approval(Approval("ap1", "A", "A", "run", 50, "pending", T))
    store.resolve_approval(a.id, approve=True, tokens=None, by="me", note="", now=T)
    assert totals(store, "A") == (0, 100, 50)
    assert store.reserve("r2", [ch("A", 50, 100)], META, T + 60, T).ok
    assert not store.reserve("r3", [ch("A", 1, 100)], META, T + 60, T).ok


# -- extend ---------------------------------------------------------------------------------


def test_extend_same_rule_and_commit_frees_everything(store: Store) -> None:
    assert store.reserve("r1", [ch("A", 30, 100), ch("B", 30, 50)], META, T + 10, T).ok
    out = store.extend("r1", [ch("A", 20, 100), ch("B", 20, 50)], T + 100, T + 5)
    assert out.ok
    assert [c.reserved for c in out.counters] == [50, 50]
    out = store.extend("r1", [ch("A", 20, 100), ch("B", 20, 50)], T + 100, T + 6)
    assert not out.ok
    assert out.refused == "B"
    assert totals(store, "A") == (0, 50, 0)
    # the lease was renewed to T+100: a sweep at T+50 leaves it alone
    assert store.sweep(T + 50) == 0
    assert store.reservation_state("r1") == "active"
    done = store.commit("r1", {"A": 45, "B": 45}, Usage(30, 15), T + 60)
    assert not done.duplicate
    assert totals(store, "A") == (45, 0, 0)
    assert totals(store, "B") == (45, 0, 0)


def test_extend_adds_a_new_counter(store: Store) -> None:
    assert store.reserve("r1", [ch("A", 10, 100)], META, T + 10, T).ok
    assert store.extend("r1", [ch("N", 7, 10)], T + 20, T + 1).ok
    store.release("r1", T + 2)
    assert totals(store, "A") == (0, 0, 0)
    assert totals(store, "N") == (0, 0, 0)


def test_extend_needs_an_active_reservation(store: Store) -> None:
    with pytest.raises(ReservationError):
        store.extend("nope", [ch("A", 1, 10)], T + 10, T)
    assert store.reserve("r1", [ch("A", 1, 10)], META, T + 10, T).ok
    store.commit("r1", {"A": 1}, Usage(1, 0), T)
    with pytest.raises(ReservationError):
        store.extend("r1", [ch("A", 1, 10)], T + 10, T)
    assert store.reserve("r2", [ch("A", 1, 10)], META, T + 10, T).ok
    store.release("r2", T)
    with pytest.raises(ReservationError):
        store.extend("r2", [ch("A", 1, 10)], T + 10, T)


# -- commit ---------------------------------------------------------------------------------


def test_commit_replaces_reservation_with_actuals_once(store: Store) -> None:
    assert store.reserve("r1", [ch("A", 100, 1000), ch("B", 100, None)], META, T + 60, T).ok
    out = store.commit("r1", {"A": 70, "B": 70, "ignored": 5}, Usage(50, 20, 10, 5, 1234), T + 1)
    assert not out.duplicate
    assert {c.key: (c.used, c.reserved) for c in out.counters} == {"A": (70, 0), "B": (70, 0)}
    again = store.commit("r1", {"A": 70, "B": 70}, Usage(50, 20), T + 2)
    assert again.duplicate
    assert totals(store, "A") == (70, 0, 0)
    assert store.reservation_state("r1") == "committed"
    (ev,) = list(store.events())
    # stamped with the reservation's time, not the commit's: the window of its counters
    assert (ev.id, ev.at, ev.labels) == ("r1", T, {"model": "m1", "operation": "chat"})
    assert (
        ev.prompt_tokens,
        ev.completion_tokens,
        ev.cached_tokens,
        ev.reasoning_tokens,
        ev.cost_micros,
    ) == (50, 20, 10, 5, 1234)
    assert (ev.estimated_prompt, ev.estimated_completion, ev.settled) == (60, 40, True)


def test_commit_unknown_or_released_is_an_error(store: Store) -> None:
    with pytest.raises(ReservationError):
        store.commit("nope", {}, Usage(1, 1), T)
    assert store.reserve("r1", [ch("A", 10, 100)], META, T + 60, T).ok
    store.release("r1", T)
    with pytest.raises(ReservationError):
        store.commit("r1", {"A": 10}, Usage(5, 5), T)
    assert totals(store, "A") == (0, 0, 0)


# -- lease expiry ---------------------------------------------------------------------------


def test_sweep_charges_the_estimate_and_marks_unsettled(store: Store) -> None:
    assert store.reserve("r1", [ch("A", 100, 1000)], META, T + 10, T).ok
    assert store.reserve("r2", [ch("A", 50, 1000)], META, T + 100, T).ok
    assert store.sweep(T + 10) == 0  # the lease ends *before* now
    assert store.sweep(T + 11) == 1
    assert store.sweep(T + 12) == 0
    assert store.reservation_state("r1") == "expired"
    assert store.reservation_state("r2") == "active"
    assert totals(store, "A") == (100, 50, 0)
    (ev,) = list(store.events())
    assert (ev.id, ev.settled, ev.prompt_tokens, ev.completion_tokens) == ("r1", False, 60, 40)
    assert (ev.estimated_prompt, ev.estimated_completion) == (60, 40)
    # unsettled events are not calibration samples
    assert store.estimate_samples() == []


def test_late_commit_corrects_an_expired_lease(store: Store) -> None:
    assert store.reserve("r1", [ch("A", 100, 1000), ch("B", 100, 1000)], META, T + 10, T).ok
    assert store.sweep(T + 20) == 1
    out = store.commit("r1", {"A": 30, "B": 130}, Usage(20, 10), T + 30)
    assert not out.duplicate
    assert totals(store, "A") == (30, 0, 0)
    assert totals(store, "B") == (130, 0, 0)
    (ev,) = list(store.events())
    assert (ev.id, ev.settled, ev.prompt_tokens, ev.completion_tokens) == ("r1", True, 20, 10)
    assert store.commit("r1", {"A": 30, "B": 130}, Usage(20, 10), T + 31).duplicate
    assert totals(store, "A") == (30, 0, 0)


# -- window edges: a reservation's event falls in the window of its counters (INV-TOK-002) ---


def _window_sum(store: Store, since: float, until: float) -> int:
    return sum(
        e.prompt_tokens + e.completion_tokens for e in store.events(since=since, until=until)
    )


def test_commit_after_the_window_ended_is_dated_in_the_reserved_window(store: Store) -> None:
    end = T + 10  # the counter's window is [T - 10, T + 10); the commit comes after it ended
    assert store.reserve("r1", [ch("A", 100, 1000, end=end)], META, T + 60, T).ok
    store.commit("r1", {"A": 70}, Usage(50, 20), T + 30)
    store.record("e1", [ch("A|next", 5, end=end + 20)], {}, Usage(3, 2), T + 30)
    (ev, rec) = list(store.events())
    assert (ev.id, ev.at, ev.settled) == ("r1", T, True)
    assert (rec.id, rec.at) == ("e1", T + 30)  # record() keeps its own time
    assert _window_sum(store, T - 10, end) == state(store, "A").used == 70
    assert list(store.events(since=end, until=end + 30)) == [rec]


def test_sweep_after_the_window_ended_is_dated_in_the_reserved_window(store: Store) -> None:
    end = T + 10
    assert store.reserve("r1", [ch("A", 100, 1000, end=end)], META, T + 5, T).ok
    assert store.sweep(T + 30) == 1
    (ev,) = list(store.events())
    assert (ev.id, ev.at, ev.settled) == ("r1", T, False)
    assert _window_sum(store, T - 10, end) == state(store, "A").used == 100
    # a late commit corrects it and keeps the reservation's time
    store.commit("r1", {"A": 70}, Usage(50, 20), T + 40)
    (ev,) = list(store.events())
    assert (ev.id, ev.at, ev.settled) == ("r1", T, True)
    assert _window_sum(store, T - 10, end) == state(store, "A").used == 70
    assert list(store.events(since=end)) == []


def test_reserve_sweeps_expired_leases_first(store: Store) -> None:
    assert store.reserve("r1", [ch("A", 100, 100)], META, T + 10, T).ok
    assert not store.reserve("r2", [ch("A", 1, 100)], META, T + 60, T + 20).ok
    assert store.reservation_state("r1") == "expired"  # swept by the reserve
    assert totals(store, "A") == (100, 0, 0)  # charged at its estimate: still no room


def test_release_is_idempotent(store: Store) -> None:
    with pytest.raises(ReservationError):
        store.release("nope", T)
    assert store.reserve("r1", [ch("A", 40, 100)], META, T + 60, T).ok
    store.release("r1", T + 1)
    store.release("r1", T + 2)
    assert totals(store, "A") == (0, 0, 0)
    assert store.reservation_state("r1") == "released"
    assert list(store.events()) == []
    assert store.reserve("r2", [ch("A", 40, 100)], META, T + 60, T).ok
    store.commit("r2", {"A": 10}, Usage(5, 5), T)
    store.release("r2", T)  # after commit: changes nothing
    assert totals(store, "A") == (10, 0, 0)


# -- record ---------------------------------------------------------------------------------


def test_record_is_never_refused_and_idempotent(store: Store) -> None:
    out = store.record("e1", [ch("A", 500), ch("B", 500)], {"model": "m"}, Usage(300, 200), T)
    assert not out.duplicate
    assert [(c.key, c.used) for c in out.counters] == [("A", 500), ("B", 500)]
    again = store.record("e1", [ch("A", 500), ch("B", 500)], {"model": "m"}, Usage(300, 200), T)
    assert again.duplicate
    assert totals(store, "A") == (500, 0, 0)
    (ev,) = list(store.events())
    assert (ev.id, ev.prompt_tokens, ev.completion_tokens, ev.settled) == ("e1", 300, 200, True)
    assert ev.estimated_prompt is None
    assert ev.estimated_completion is None


# -- reading --------------------------------------------------------------------------------


def test_counters_by_key_and_active_at(store: Store) -> None:
    store.record("e1", [ch("W", 1, end=T + 3600), ch("L", 2)], {}, Usage(1, 0), T)
    assert [c.key for c in store.counters(["L", "missing", "W"])] == ["L", "W"]
    assert sorted(c.key for c in store.counters()) == ["L", "W"]
    assert sorted(c.key for c in store.counters(active_at=T)) == ["L", "W"]
    assert [c.key for c in store.counters(active_at=T + 3600)] == ["L"]  # ended at T+3600
    assert [c.key for c in store.counters(active_at=T + 7200)] == ["L"]


def test_events_filters_and_time_order(store: Store) -> None:
    store.record("e3", [], {"model": "a", "agent": "x"}, Usage(3, 0), T + 3)
    store.record("e1", [], {"model": "a", "agent": "y"}, Usage(1, 0), T + 1)
    store.record("e2", [], {"model": "b", "agent": "x"}, Usage(2, 0), T + 2)
    assert [e.id for e in store.events()] == ["e1", "e2", "e3"]
    assert [e.id for e in store.events(since=T + 2)] == ["e2", "e3"]
    assert [e.id for e in store.events(until=T + 2)] == ["e1"]
    assert [e.id for e in store.events(since=T + 1, until=T + 3)] == ["e1", "e2"]
    assert [e.id for e in store.events(labels={"agent": "x"})] == ["e2", "e3"]
    assert [e.id for e in store.events(labels={"agent": "x", "model": "a"})] == ["e3"]
    assert list(store.events(labels={"agent": "z"})) == []


def test_estimate_samples_newest_first(store: Store) -> None:
    for i, model in enumerate(["m1", "m2", "m1", "m1"]):
        meta = ReservationMeta((("model", model), ("operation", "chat")), 100 + i, 50)
        assert store.reserve(f"r{i}", [ch("A", 150)], meta, T + 60, T + i).ok
        store.commit(f"r{i}", {"A": 100}, Usage(90 + i, 10 + i), T + i)
    store.record("e", [ch("A", 5)], {"model": "m1"}, Usage(5, 0), T + 9)  # no estimate
    samples = store.estimate_samples()
    assert [s.actual_prompt for s in samples] == [93, 92, 91, 90]
    s = samples[0]
    assert (
        s.model,
        s.operation,
        s.estimated_prompt,
        s.estimated_completion,
        s.actual_completion,
        s.at,
    ) == ("m1", "chat", 103, 50, 13, T + 3)
    assert [s.actual_prompt for s in store.estimate_samples(model="m1")] == [93, 92, 90]
    assert [s.actual_prompt for s in store.estimate_samples(model="m1", limit=2)] == [93, 92]
    assert store.estimate_samples(operation="embed") == []


# -- levels, audit, approvals ---------------------------------------------------------------


def test_raise_level_returns_previous_once(store: Store) -> None:
    store.record("e", [ch("A", 1)], {}, Usage(1, 0), T)
    assert store.raise_level("A", 2) == 0
    assert store.raise_level("A", 2) == 2
    assert store.raise_level("A", 1) == 2
    assert state(store, "A").level == 2
    assert store.raise_level("A", 3) == 2
    assert state(store, "A").level == 3


def test_raise_level_announces_once_under_concurrency(store: Store) -> None:
    store.record("e", [ch("A", 1)], {}, Usage(1, 0), T)
    results: list[int] = []
    lock = threading.Lock()

    def go() -> None:
        prev = store.raise_level("A", 4)
        with lock:
            results.append(prev)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0] + [4] * 7


def test_audit_newest_first(store: Store) -> None:
    store.audit(AuditEvent(T, "warn", "B", "k1", "first", {"used": 1, "labels": {"a": "b"}}))
    store.audit(AuditEvent(T + 1, "alert", "B", "k1", "second"))
    store.audit(AuditEvent(T + 2, "warn", "C", "k2", "third", {"x": [1, 2]}))
    evs = store.audit_events()
    assert [e.message for e in evs] == ["third", "second", "first"]
    assert evs[2] == AuditEvent(T, "warn", "B", "k1", "first", {"used": 1, "labels": {"a": "b"}})
    assert [e.message for e in store.audit_events(kind="warn")] == ["third", "first"]
    assert [e.message for e in store.audit_events(limit=1)] == ["third"]


def test_approvals_lifecycle(store: Store) -> None:
    store.record("e", [ch("A", 10)], {}, Usage(10, 0), T)
    a1 = Approval("ap1", "A", "A", "run", 100, "pending", T, {"agent": "x"})
    assert store.request_approval(a1) == a1
    # one pending request per counter: a second request returns the first
    assert store.request_approval(Approval("ap2", "A", "A", "run", 7, "pending", T + 1)) == a1
    b1 = Approval("bp1", "B", "B", "run", 5, "pending", T + 2)
    assert store.request_approval(b1) == b1
    assert [a.id for a in store.approvals()] == ["bp1", "ap1"]  # newest first
    assert [a.id for a in store.approvals(key="A")] == ["ap1"]
    assert [a.id for a in store.approvals(state="pending")] == ["bp1", "ap1"]

    denied = store.resolve_approval(
        "bp1", approve=False, tokens=None, by="boss", note="no", now=T + 3
    )
    assert (denied.state, denied.granted, denied.resolved_by, denied.note, denied.resolved_at) == (
        "denied",
        0,
        "boss",
        "no",
        T + 3,
    )
    # a denied request also stands for its counter
    assert store.request_approval(Approval("bp2", "B", "B", "run", 5, "pending", T + 4)).id == "bp1"
    assert [a.id for a in store.approvals(state="denied")] == ["bp1"]

    got = store.resolve_approval("ap1", approve=True, tokens=None, by="boss", note="ok", now=T + 5)
    assert (got.state, got.granted, got.labels, got.requested) == (
        "approved",
        100,
        {"agent": "x"},
        100,
    )
    assert totals(store, "A") == (10, 0, 100)
    with pytest.raises(InvalidUsage):
        store.resolve_approval("ap1", approve=True, tokens=None, by="boss", note="", now=T + 6)
    with pytest.raises(NotFound):
        store.resolve_approval("zzz", approve=True, tokens=None, by="boss", note="", now=T)
    # once approved, a new request for the counter is a new request
    a3 = Approval("ap3", "A", "A", "run", 20, "pending", T + 7)
    assert store.request_approval(a3) == a3
    got = store.resolve_approval("ap3", approve=True, tokens=35, by="boss", note="", now=T + 8)
    assert got.granted == 35
    assert totals(store, "A") == (10, 0, 135)
    assert [a.state for a in store.approvals(key="A")] == ["approved", "approved"]


def test_a_grant_creates_the_counter_of_its_window(store: Store) -> None:
    end = T + 3600
    a = Approval(
        "ap1",
        "W|run=r1|day:x",
        "W",
        "day:x",
        50,
        "pending",
        T,
        {"run": "r1"},
        window_end=end,
        partition=(("run", "r1"),),
    )
    assert store.request_approval(a) == a
    assert store.approvals() == [a]  # window end and partition are kept
    got = store.resolve_approval("ap1", approve=True, tokens=None, by="me", note="", now=T + 1)
    assert (got.window_end, got.partition, got.granted) == (end, (("run", "r1"),), 50)
    (c,) = store.counters(["W|run=r1|day:x"])
    assert (c.window_id, c.window_end, c.partition, c.granted) == (
        "day:x",
        end,
        (("run", "r1"),),
        50,
    )
    assert [x.key for x in store.counters(active_at=T)] == ["W|run=r1|day:x"]
    assert store.counters(active_at=end) == []  # it ends with its window


def test_a_counter_charged_twice_holds_both_amounts(store: Store) -> None:
    """Two charges on one counter in one reserve: the reservation holds their sum, and a
    commit or a release frees all of it (nothing left reserved forever)."""
    assert store.reserve("twice", [ch("K", 10, 100), ch("K", 5, 100)], META, T + 600, T).ok
    assert totals(store, "K")[:2] == (0, 15)
    store.commit("twice", {"K": 12}, Usage(12, 0), T + 1)
    assert totals(store, "K")[:2] == (12, 0)
    assert store.reserve("again", [ch("K", 7, 100), ch("K", 3, 100)], META, T + 600, T + 2).ok
    store.release("again", T + 3)
    assert totals(store, "K")[:2] == (12, 0)
