"""Pools (``Charge.borrow``) and confidence gates (``close_counters``) on every backend: the
rule of llmbudget.core.ledger (``fits``, ``plan_borrow``, ``apply_reserve``), applied inside
each store's atomic step."""

from __future__ import annotations

import random
import time

from llmbudget.core.ledger import (
    Charge,
    CounterState,
    Donor,
    ReservationMeta,
    ReserveOutcome,
    Transfer,
    Usage,
)
from llmbudget.store import Store
from llmbudget.store.memory import MemoryStore

T = float(int(time.time()))  # Redis expires windowed counters on its own clock
META = ReservationMeta((("model", "m1"),), 10, 10)
PART = (("run", "r1"),)
USAGE = Usage(60, 40)


def donor(key: str, cap: int, *, pr: int = 0, mr: int = 0, end: float | None = None) -> Donor:
    return Donor(key, "b" + key, cap, mr, pr, "day:x" if end else "run", end, PART)


def ch(key: str, amount: int, cap: int | None, *donors: Donor) -> Charge:
    return Charge(key, "b" + key, amount, cap, "run", None, PART, tuple(donors))


def state(s: Store, key: str) -> CounterState:
    (c,) = s.counters([key])
    return c


def books(s: Store, *keys: str) -> dict[str, tuple[int, int, int, int, bool]]:
    """used, reserved, borrowed, lent, closed of the counters that exist."""
    return {c.key: (c.used, c.reserved, c.borrowed, c.lent, c.closed) for c in s.counters(keys)}


def prime(s: Store, key: str, amount: int) -> None:
    assert s.reserve("p-" + key, [ch(key, amount, None)], META, T + 600, T).ok


# -- borrowing --------------------------------------------------------------------------------


def test_a_fitting_charge_borrows_nothing(store: Store) -> None:
    out = store.reserve("r1", [ch("A", 60, 100, donor("B", 100))], META, T + 60, T)
    assert out.ok and out.transfers == ()
    assert store.counters(["B"]) == []  # donors are only read (and created) to borrow


def test_borrows_from_the_lowest_priority_then_the_most_idle(store: Store) -> None:
    prime(store, "C", 50)  # half used
    prime(store, "D", 10)  # most idle of priority 1
    assert store.reserve("r0", [ch("A", 100, 100)], META, T + 60, T).ok
    donors = (donor("B", 100, pr=2), donor("C", 100, pr=1), donor("D", 100, pr=1))
    out = store.reserve("r1", [ch("A", 120, 100, *donors)], META, T + 60, T)
    assert out.ok
    assert out.transfers == (
        Transfer("D", "bD", "A", "bA", 90),
        Transfer("C", "bC", "A", "bA", 30),
    )
    (a,) = out.counters
    assert (a.reserved, a.borrowed, a.lent, a.headroom) == (220, 120, 0, 120)
    assert books(store, "A", "B", "C", "D") == {
        "A": (0, 220, 120, 0, False),
        "C": (0, 50, 0, 30, False),
        "D": (0, 10, 0, 90, False),
    }  # B (more important) was not needed, so never created


def test_ties_keep_the_given_order(store: Store) -> None:
    out = store.reserve(
        "r1", [ch("A", 150, 100, donor("Y", 100), donor("X", 100))], META, T + 60, T
    )
    assert [(t.donor, t.amount) for t in out.transfers] == [("Y", 50)]


def test_never_below_a_donors_min_reserve_then_the_next_donor(store: Store) -> None:
    prime(store, "B", 20)
    donors = (donor("B", 100, mr=50), donor("C", 100, pr=1, mr=90))
    out = store.reserve("r1", [ch("A", 140, 100, *donors)], META, T + 60, T)
    assert out.ok
    assert [(t.donor, t.amount) for t in out.transfers] == [("B", 30), ("C", 10)]
    b, c = state(store, "B"), state(store, "C")
    assert 100 + b.headroom - b.total == 50  # exactly its min_reserve
    assert (c.lent, 100 + c.headroom - c.total) == (10, 90)
    # nothing more to lend: refused
    assert not store.reserve("r2", [ch("A", 1, 100, *donors)], META, T + 60, T).ok


def test_only_the_listed_donors_lend(store: Store) -> None:
    """No uphill borrowing: the governor lists only less important members; the store never
    takes from a counter that is not a donor of the charge."""
    prime(store, "Boss", 0)
    out = store.reserve("r1", [ch("A", 150, 100, donor("C", 30))], META, T + 60, T)
    assert not out.ok and out.refused == "A"
    assert books(store, "Boss")["Boss"][3] == 0


def test_a_refused_borrow_moves_nothing(store: Store) -> None:
    prime(store, "B", 10)
    before = books(store, "B")
    charges = [ch("N", 5, 10), ch("A", 300, 100, donor("B", 100), donor("M", 50))]
    out = store.reserve("r1", charges, META, T + 60, T)
    assert not out.ok and out.refused == "A" and out.transfers == ()
    assert [(c.key, c.reserved, c.borrowed) for c in out.counters] == [
        ("N", 0, 0),
        ("A", 0, 0),
    ]  # as found
    assert books(store, "B", "A", "N", "M") == before  # no counter created, nothing lent


def test_a_later_refusal_undoes_an_earlier_borrow(store: Store) -> None:
    charges = [ch("A", 150, 100, donor("B", 100)), ch("Z", 20, 10)]
    out = store.reserve("r1", charges, META, T + 60, T)
    assert not out.ok and out.refused == "Z"
    assert books(store, "A", "B", "Z") == {}


def test_a_donor_charged_by_the_same_call_is_not_overdrawn(store: Store) -> None:
    charges = [ch("B", 80, 100), ch("A", 150, 100, donor("B", 100))]
    out = store.reserve("r1", charges, META, T + 60, T)
    assert not out.ok and out.refused == "A"  # B has 20 spare once it holds its own 80
    assert books(store, "A", "B") == {}
    charges = [ch("B", 30, 100), ch("A", 150, 100, donor("B", 100))]
    out = store.reserve("r2", charges, META, T + 60, T)
    assert out.ok
    assert books(store, "A", "B") == {"A": (0, 150, 50, 0, False), "B": (0, 30, 0, 50, False)}
    b = state(store, "B")
    assert b.total <= 100 + b.headroom


def test_a_key_charged_twice_sees_its_first_charge(store: Store) -> None:
    out = store.reserve("r1", [ch("A", 60, 100), ch("A", 60, 100)], META, T + 60, T)
    assert not out.ok and out.refused == "A"
    out = store.reserve(
        "r2", [ch("A", 60, 100), ch("A", 60, 100, donor("B", 100))], META, T + 60, T
    )
    assert out.ok and [t.amount for t in out.transfers] == [20]
    assert books(store, "A") == {"A": (0, 120, 20, 0, False)}


def test_a_missing_donor_is_created_with_its_window(store: Store) -> None:
    end = T + 86_400
    out = store.reserve("r1", [ch("A", 130, 100, donor("W", 100, end=end))], META, T + 60, T)
    assert out.ok
    w = state(store, "W")
    assert (w.budget, w.window_id, w.window_end, w.partition) == ("bW", "day:x", end, PART)
    assert (w.used, w.reserved, w.lent) == (0, 0, 30)


def test_extend_borrows_too(store: Store) -> None:
    assert store.reserve("r1", [ch("A", 90, 100)], META, T + 60, T).ok
    out = store.extend("r1", [ch("A", 40, 100, donor("B", 100))], T + 120, T)
    assert out.ok and out.transfers == (Transfer("B", "bB", "A", "bA", 30),)
    assert not store.extend("r1", [ch("A", 100, 100, donor("B", 100, mr=50))], T + 120, T).ok
    store.commit("r1", {"A": 100}, USAGE, T)
    assert books(store, "A", "B") == {"A": (100, 0, 30, 0, False), "B": (0, 0, 0, 30, False)}


# -- confidence gates ---------------------------------------------------------------------------


def test_close_counters_returns_the_keys_closed_now(store: Store) -> None:
    prime(store, "A", 10)
    prime(store, "B", 10)
    assert store.close_counters(["A", "missing", "B"]) == ["A", "B"]
    assert store.close_counters(["A", "B"]) == []
    assert state(store, "A").closed and state(store, "B").closed
    assert store.counters(["missing"]) == []


def test_a_closed_counter_refuses_every_capped_charge(store: Store) -> None:
    prime(store, "A", 10)
    store.close_counters(["A"])
    for amount in (0, 1):
        out = store.reserve(f"r{amount}", [ch("A", amount, 1000)], META, T + 60, T)
        assert not out.ok and out.refused == "A" and out.counters[0].closed
    # nor does it borrow
    out = store.reserve("rb", [ch("A", 5, 1000, donor("B", 100))], META, T + 60, T)
    assert not out.ok and store.counters(["B"]) == []
    # a charge without a cap (warn mode, usage being recorded) is never refused
    assert store.reserve("rw", [ch("A", 5, None)], META, T + 60, T).ok
    assert store.extend("rw", [ch("A", 5, None)], T + 60, T).ok
    assert not store.extend("rw", [ch("A", 0, 10)], T + 60, T).ok
    assert books(store, "A") == {"A": (0, 20, 0, 0, True)}


def test_a_closed_donor_still_lends_its_spare(store: Store) -> None:
    """A gate closes a counter to its own charges; the pool rule does not look at it."""
    prime(store, "B", 10)
    store.close_counters(["B"])
    out = store.reserve("r1", [ch("A", 120, 100, donor("B", 100))], META, T + 60, T)
    assert out.ok and [t.amount for t in out.transfers] == [20]


# -- the same answers as the reference (apply_reserve on the memory store) ---------------------


def _summary(out: ReserveOutcome) -> tuple[object, ...]:
    return (
        out.ok,
        out.refused,
        tuple((c.key, c.used, c.reserved, c.borrowed, c.lent, c.closed) for c in out.counters),
        out.transfers,
    )


def test_random_pool_steps_match_the_reference(store: Store) -> None:
    rng = random.Random(20261126)
    ref = MemoryStore()
    keys = ["A", "B", "C", "D", "E"]
    active: list[str] = []
    for i in range(120):
        op = rng.random()
        now = T + i
        if op < 0.08:
            ks = rng.sample(keys, 2)
            assert store.close_counters(ks) == ref.close_counters(ks)
            continue
        if op < 0.3 and active:
            rid = active.pop(rng.randrange(len(active)))
            if rng.random() < 0.5:
                store.release(rid, now)
                ref.release(rid, now)
            else:
                amounts = {k: rng.randrange(0, 60) for k in keys}
                store.commit(rid, amounts, USAGE, now)
                ref.commit(rid, amounts, USAGE, now)
            continue
        charges = []
        for k in rng.sample(keys, rng.randrange(1, 4)):
            others = [d for d in keys if d != k]
            donors = tuple(
                donor(d, 100, pr=rng.randrange(3), mr=rng.choice([0, 0, 20]))
                for d in rng.sample(others, rng.randrange(0, 4))
            )
            cap = rng.choice([None, 100, 100, 100])
            charges.append(ch(k, rng.randrange(0, 90), cap, *donors))
        rid = f"r{i}"
        if active and rng.random() < 0.25:
            rid = rng.choice(active)
            got, want = (
                store.extend(rid, charges, now + 10_000, now),
                ref.extend(rid, charges, now + 10_000, now),
            )
        else:
            got = store.reserve(rid, charges, META, now + 10_000, now)
            want = ref.reserve(rid, charges, META, now + 10_000, now)
            if want.ok:
                active.append(rid)
        assert _summary(got) == _summary(want), i
    mine = {c.key: c for c in store.counters(keys)}
    theirs = {c.key: c for c in ref.counters(keys)}
    assert mine == theirs
