"""PostgreSQL step functions of migration 6: counter keys that need quoting in an array
literal, and a ledger brought forward from version 5 with a reservation still open."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from llmbudget.core.ledger import Charge, ReservationMeta, Usage
from llmbudget.store.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresStore, _options

from ._servers import drop, fresh_url, need

pytestmark = pytest.mark.postgres

META = ReservationMeta((("model", "m"),), 10, 20)
T = 1_700_000_000.0
# keys a text[] literal must quote or escape (and one that only looks like NULL)
ODD_KEYS = ['q"uote', "back\\slash", "com,ma", "{brace}", "sp ace", "NULL", "", "ü|x", '\\"']


def ch(key: str, amount: int, cap: int | None = 1000) -> Charge:
    return Charge(key, "b", amount, cap, "day:x", 2e9, (("k", key),))


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    need("postgres")
    u = fresh_url("postgres", tmp_path, clock="caller")
    try:
        yield u
    finally:
        drop("postgres", u)


def test_postgres_odd_keys_round_trip(url: str) -> None:
    s = PostgresStore(url)
    try:
        now = time.time()
        charges = [ch(k, 10) for k in ODD_KEYS]
        # first reserve creates the counters, the second finds them all
        for rid in ("r1", "r2"):
            out = s.reserve(rid, charges, META, now + 60, now)
            assert out.ok
            assert [c.key for c in out.counters] == ODD_KEYS
        done = s.commit("r1", dict.fromkeys(ODD_KEYS, 7), Usage(1, 1), now)
        assert [(c.key, c.used, c.reserved) for c in done.counters] == [
            (k, 7, 10) for k in ODD_KEYS
        ]
        assert done.counters[0].partition == (("k", ODD_KEYS[0]),)
        # refused on the last key: every counter reported as found, nothing moved
        refused = s.reserve(
            "r3", [ch(k, 10) for k in ODD_KEYS[:-1]] + [ch(ODD_KEYS[-1], 990)], META, now + 60, now
        )
        assert not refused.ok and refused.refused == ODD_KEYS[-1]
        assert [(c.key, c.used, c.reserved) for c in refused.counters] == [
            (k, 7, 10) for k in ODD_KEYS
        ]
        assert s.commit("r1", dict.fromkeys(ODD_KEYS, 7), Usage(1, 1), now).duplicate
        assert [c.reserved for c in s.commit("r2", {}, Usage(0, 0), now).counters] == [0] * len(
            ODD_KEYS
        )
    finally:
        s.close()


def test_postgres_refused_on_a_new_counter_leaves_no_counter(url: str) -> None:
    s = PostgresStore(url)
    try:
        now = time.time()
        assert s.reserve("r1", [ch("A", 5)], META, now + 60, now).ok
        out = s.reserve("r2", [ch("A", 5), ch("B", 2000)], META, now + 60, now)
        assert not out.ok and out.refused == "B"
        assert [(c.key, c.used, c.reserved, c.window_id) for c in out.counters] == [
            ("A", 0, 5, "day:x"),
            ("B", 0, 0, "day:x"),
        ]
        assert [c.key for c in s.counters()] == ["A"]
    finally:
        s.close()


def test_postgres_migration_6_from_version_5(url: str) -> None:
    """A ledger at version 5 with an open reservation is brought to version 6; the
    reservation commits, and the previous release's reserve (its own signature) still works
    for a process that has not restarted yet."""
    driver_url, schema = _options(url)[:2]
    with psycopg.connect(driver_url, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
        c.execute(f'SET search_path TO "{schema}"')
        c.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for v in range(1, 6):
            for stmt in MIGRATIONS[v]:
                c.execute(stmt)
            c.execute("INSERT INTO schema_version VALUES (%s)", (v,))
        old_reserve = (
            "SELECT * FROM llmb_reserve(%s, %s::jsonb, %s::jsonb, %s::jsonb, 1, 2, 60, %s, "
            "false, false)"
        )
        charges = json.dumps([["A", "A", 5, 100, "run", None, "[]", []]])

        def reserve_v5(rid: str) -> list[tuple[object, ...]]:
            return c.execute(
                old_reserve, (rid, charges, json.dumps([["A", 5]]), '{"model": "m"}', 1.0)
            ).fetchall()

        assert reserve_v5("old")[0][0] == 0
        s = PostgresStore(url)
        try:
            row = c.execute("SELECT max(version) FROM schema_version").fetchone()
            assert row is not None and row[0] == SCHEMA_VERSION == 6
            done = s.commit("old", {"A": 4}, Usage(2, 2), 2.0)
            assert [(x.key, x.used, x.reserved) for x in done.counters] == [("A", 4, 0)]
            assert reserve_v5("older-process")[0][0] == 0  # migration 4's reserve is kept
            assert s.reserve("new", [Charge("A", "A", 5, 100)], META, 60.0, 2.0).ok
            assert [(x.used, x.reserved) for x in s.counters(["A"])] == [(4, 10)]
            assert [e.id for e in s.events()] == ["old"]
        finally:
            s.close()


def test_postgres_keys_keep_their_name_whatever_the_client_encoding(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prepared steps send UTF-8: a LATIN1 client encoding (PGCLIENTENCODING, a role or
    database setting) must not store a non-ASCII key under another name."""
    monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    store = PostgresStore(url)
    try:
        key = "café|run"
        assert store.reserve("r0", [ch(key, 95, 100)], META, T + 600, T).ok
        store.commit("r0", {key: 95}, Usage(95, 0), T + 1)
        out = store.reserve("r1", [ch(key, 95, 100)], META, T + 600, T + 2)
        assert not out.ok and out.refused == key
        assert [(c.key, c.used, c.reserved) for c in store.counters()] == [(key, 95, 0)]
    finally:
        store.close()


def test_postgres_refuses_nul_in_ids_and_keys(url: str) -> None:
    from llmbudget import InvalidUsage

    store = PostgresStore(url)
    try:
        with pytest.raises(InvalidUsage, match="U\\+0000"):
            store.reserve("job\x00A", [ch("k", 1)], META, T + 600, T)
        with pytest.raises(InvalidUsage, match="U\\+0000"):
            store.reserve("job", [ch("k\x00", 1)], META, T + 600, T)
        with pytest.raises(InvalidUsage, match="U\\+0000"):
            store.commit("job\x00A", {"k": 1}, Usage(1, 0), T)
        assert store.counters() == []
    finally:
        store.close()


def _reserve_blocked(url: str, ready: object) -> None:  # a child process
    store = PostgresStore(url)
    ready.set()  # type: ignore[attr-defined]
    try:
        store.reserve("blocked", [ch("locked", 5)], META, T + 600, T)
    except KeyboardInterrupt:
        os._exit(3)
    os._exit(0)


def test_postgres_ctrl_c_cancels_a_reserve_waiting_on_a_lock(url: str) -> None:
    """A reserve queued behind a row lock, interrupted: it is cancelled on the server, not
    applied behind the caller's back once the lock goes."""
    store = PostgresStore(url)
    assert store.reserve("first", [ch("locked", 1)], META, T + 600, T).ok
    driver_url, schema = _options(url)[:2]
    locker = psycopg.connect(driver_url)
    try:
        locker.execute(f"SELECT * FROM {schema}.counters WHERE key = 'locked' FOR UPDATE")
        ctx = multiprocessing.get_context("fork")
        ready = ctx.Event()
        p = ctx.Process(target=_reserve_blocked, args=(url, ready))
        p.start()
        assert ready.wait(10)
        time.sleep(0.5)  # the child's reserve now waits for the row lock
        assert p.is_alive()
        os.kill(p.pid, signal.SIGINT)
        p.join(5)
        assert p.exitcode == 3, "the interrupted reserve did not return while the lock was held"
    finally:
        locker.rollback()
        locker.close()
    (c,) = store.counters(["locked"])
    assert c.reserved == 1  # only "first": the cancelled reserve left nothing
    assert store.reservation_state("blocked") is None
    store.close()
