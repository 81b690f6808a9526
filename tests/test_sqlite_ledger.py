"""The SQLite ledger across real processes: INV-TOK-001 under contention, a client killed
mid-call, schema versions, read-only and locked files."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from llmbudget import BudgetExceeded, Governor, SchemaError, StoreUnavailable
from llmbudget.store import open_store
from llmbudget.store.sqlite import SQLiteStore
from llmbudget.testing import FakeClock

pytestmark = pytest.mark.sqlite

LIMIT = 20_000
POLICY = {
    "budgets": [
        {"name": "shared", "limit": LIMIT},
        {"name": "daily", "window": "day", "limit": 10 * LIMIT},
        {"name": "model", "match": {"model": "m*"}, "window": "month", "limit": 10 * LIMIT},
    ]
}


def _hammer(db: str, seed: int, threads: int, q: mp.Queue) -> None:  # type: ignore[type-arg]
    """One process: `threads` threads reserve upper-bound estimates until refused for good."""
    import random

    gov = Governor(POLICY, f"sqlite:///{db}", labels={"run": "r"}, log_events=False)
    granted = refused = 0
    lock = threading.Lock()

    def worker(n: int) -> None:
        nonlocal granted, refused
        rng = random.Random(seed * 100 + n)
        misses = 0
        while misses < 25:
            est_p, est_c = rng.randint(20, 200), rng.randint(20, 200)
            try:
                with gov.reserve(model="m1", prompt_tokens=est_p, max_completion_tokens=est_c) as r:
                    # actual usage never passes the upper-bound estimate
                    r.commit(prompt_tokens=est_p, completion_tokens=rng.randint(0, est_c))
                with lock:
                    granted += 1
                misses = 0
            except BudgetExceeded:
                with lock:
                    refused += 1
                misses += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put((granted, refused))


@pytest.mark.slow
def test_inv_tok_001_many_processes_and_threads_never_pass_the_limit(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")
    Governor(POLICY, f"sqlite:///{db}").close()  # create the schema once
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_hammer, args=(db, i, 4, q)) for i in range(8)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    store = SQLiteStore(db)
    counters = {c.budget: c for c in store.counters()}
    shared = counters["shared"]
    assert shared.reserved == 0
    assert shared.used <= LIMIT, f"over the limit by {shared.used - LIMIT}"
    assert shared.used >= 0.99 * LIMIT, f"only {shared.used} of {LIMIT} used"
    assert sum(g for g, _ in results) > 50 and sum(r for _, r in results) >= 8 * 4 * 25
    # INV-TOK-002 on the same run: the ledger's events add up to the counters exactly
    events = list(store.events())
    assert len(events) == sum(g for g, _ in results)
    assert sum(e.prompt_tokens + e.completion_tokens for e in events) == shared.used
    assert counters["daily"].used == counters["model"].used == shared.used


def test_killed_client_between_reserve_and_commit_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    child = textwrap.dedent(f"""
        import os, sys, time
        from llmbudget import Governor
        gov = Governor({POLICY!r}, "sqlite:///{db}", labels={{"run": "r"}})
        gov.record(model="m1", prompt_tokens=100, completion_tokens=50, idempotency_key="done")
        gov.reserve(model="m1", prompt_tokens=300, max_completion_tokens=700, lease_seconds=1)
        print("reserved", flush=True)
        time.sleep(60)
    """)
    with subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "reserved"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    store = SQLiteStore(db)
    shared = {c.budget: c for c in store.counters()}["shared"]
    assert (shared.used, shared.reserved) == (150, 1000)  # the committed event survived
    # after the lease, the next process settles the orphan at its estimate, marked unsettled
    time.sleep(1.1)
    gov = Governor(POLICY, store, labels={"run": "r"})
    gov.reserve(model="m1", prompt_tokens=1, max_completion_tokens=1).commit()
    shared = {c.budget: c for c in store.counters()}["shared"]
    assert (shared.used, shared.reserved) == (150 + 1000 + 2, 0)
    events = {e.id: e for e in store.events()}
    assert events["done"].settled
    assert [e.settled for e in events.values()].count(False) == 1


def test_schema_is_versioned_and_a_newer_ledger_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    SQLiteStore(db).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone() == ("3",)
        conn.execute("UPDATE meta SET v = '99' WHERE k = 'schema_version'")
    with pytest.raises(SchemaError, match="schema version 99.*upgrade llmbudget"):
        SQLiteStore(db)


def test_opening_twice_concurrently_migrates_once(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            SQLiteStore(db).close()
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    ts = [threading.Thread(target=open_it) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_ledger_is_a_clear_error(tmp_path: Path) -> None:  # pragma: no cover
    db = tmp_path / "ledger.db"
    gov = Governor(POLICY, f"sqlite:///{db}")
    gov.record(prompt_tokens=1, completion_tokens=1)
    gov.close()
    db.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        gov = Governor(POLICY, f"sqlite:///{db}")
        assert gov.status()  # reading still works
        with pytest.raises(StoreUnavailable, match="read-only"):
            gov.record(prompt_tokens=1, completion_tokens=1)
    finally:
        tmp_path.chmod(0o755)


def test_read_only_database_via_uri_is_a_clear_error(tmp_path: Path) -> None:
    """Root ignores chmod, so make the ledger read-only through SQLite itself."""
    db = tmp_path / "ledger.db"
    store = SQLiteStore(db)
    gov = Governor(POLICY, store)
    gov.record(prompt_tokens=1, completion_tokens=1)
    store._conn().execute("PRAGMA query_only = ON")
    with pytest.raises(StoreUnavailable, match=r"ledger .*ledger\.db.*cannot record usage"):
        gov.record(prompt_tokens=1, completion_tokens=1)
    assert [c.used for c in store.counters() if c.budget == "shared"] == [2]


def test_locked_ledger_times_out_with_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    SQLiteStore(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        gov = Governor(POLICY, SQLiteStore(db, timeout=0.2), clock=FakeClock())
        with pytest.raises(StoreUnavailable, match="locked by another process"):
            gov.record(prompt_tokens=1, completion_tokens=1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    gov.record(prompt_tokens=1, completion_tokens=1)


def test_not_a_ledger_and_bad_urls(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreUnavailable, match="not a usable llmbudget ledger"):
        SQLiteStore(junk)
    from llmbudget import ConfigError

    with pytest.raises(ConfigError, match="unknown scheme 'mysql'"):
        open_store("mysql://x")
    with pytest.raises(ConfigError, match="sqlite:///"):
        open_store("sqlite://relative.db")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot create the folder"):
        SQLiteStore(blocker / "sub" / "ledger.db")


def test_default_ledger_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from llmbudget.store import default_ledger_url

    monkeypatch.setenv("LLMBUDGET_LEDGER", f"sqlite:///{tmp_path}/x.db")
    assert default_ledger_url() == f"sqlite:///{tmp_path}/x.db"
    monkeypatch.delenv("LLMBUDGET_LEDGER")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_ledger_url() == f"sqlite:///{tmp_path}/data/llmbudget/ledger.sqlite3"


def test_forward_migration_from_schema_1_keeps_the_data(tmp_path: Path) -> None:
    from llmbudget.store.sqlite import MIGRATIONS

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # a ledger as llmbudget 0.1 (schema 1) left it
        conn.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        for stmt in MIGRATIONS[1]:
            conn.execute(stmt)
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute(
            "INSERT INTO counters (key, budget, window_id, partition, used) "
            "VALUES ('shared||run', 'shared', 'run', '[]', 1234)"
        )
    store = SQLiteStore(db)
    (c,) = store.counters()
    assert (c.used, c.borrowed, c.lent, c.closed) == (1234, 0, 0, False)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone() == ("3",)
    gov = Governor(POLICY, store)
    gov.record(prompt_tokens=1, completion_tokens=1)
    assert {x.budget: x.used for x in store.counters()}["shared"] == 1236
