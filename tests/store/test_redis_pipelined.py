"""Pipelined commits on the Redis store (``?commit=pipelined``): a commit is written and its
reply read before the thread's next step. The contract suite runs over this mode too
(tests/store/conftest.py); these tests cover what is particular to it: the reply read later,
errors surfacing at the next step, a lost connection, close(), reads on other connections,
and what the commit answers without waiting."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from llmbudget import ConfigError, ReservationError, StoreUnavailable
from llmbudget.core.ledger import Charge, ReservationMeta, Usage
from llmbudget.store import open_store
from llmbudget.store.redis import AsyncRedisStore, RedisStore, _Plan

from ._servers import drop, fresh_url, need
from .test_outage import RedisServer, replay_when_back

pytestmark = pytest.mark.redis

META = ReservationMeta((("model", "m"),), 10, 20)
KEY = "b||run"


def _charges(amount: int = 30) -> list[Charge]:
    return [Charge(KEY, "b", amount, 1000)]


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    need("redis")
    u = fresh_url("redis", tmp_path, clock="caller", commit="pipelined")
    yield u
    drop("redis", u)


def _server_counts(url: str) -> tuple[int, int]:
    """(used, reserved) as another client sees them, with commit=wait."""
    other = open_store(url.replace("commit=pipelined", "commit=wait"))
    try:
        (c,) = other.counters([KEY])
        return c.used, c.reserved
    finally:
        other.close()


def test_commit_returns_before_the_reply_and_the_next_step_reads_it(url: str) -> None:
    store = RedisStore(url)
    r = redis.Redis.from_url(_Plan(url).driver_url, decode_responses=True)
    try:
        assert store.reserve("r1", _charges(), META, 1e10, 1.0).ok
        r.config_resetstat()
        out = store.commit("r1", {KEY: 25}, Usage(10, 15), 2.0)
        # answered from the reserve's view plus this settlement, without waiting
        assert [(c.key, c.used, c.reserved) for c in out.counters] == [(KEY, 25, 0)]
        assert not out.duplicate
        conn = store._lanes.peek()
        assert getattr(conn, "_llmbudget_pending", None) is not None
        # the next step on this thread reads the reply first, then runs
        assert store.reserve("r2", _charges(), META, 1e10, 3.0).ok
        assert getattr(conn, "_llmbudget_pending", None) is None
        assert r.info("commandstats")["cmdstat_fcall"]["calls"] == 2
        assert _server_counts(url) == (25, 30)
    finally:
        store.close()
        r.close()


def test_a_repeated_commit_waits_and_says_duplicate(url: str) -> None:
    store = RedisStore(url)
    try:
        assert store.reserve("r1", _charges(), META, 1e10, 1.0).ok
        store.commit("r1", {KEY: 25}, Usage(10, 15), 2.0)
        again = store.commit("r1", {KEY: 25}, Usage(10, 15), 2.0)
        assert again.duplicate
        assert [(c.used, c.reserved) for c in again.counters] == [(25, 0)]
    finally:
        store.close()


def test_commit_of_an_unknown_or_released_id_fails_at_once(url: str) -> None:
    store = RedisStore(url)
    try:
        with pytest.raises(ReservationError, match="unknown id"):
            store.commit("nope", {KEY: 1}, Usage(1, 0), 1.0)
        assert store.reserve("r1", _charges(), META, 1e10, 1.0).ok
        store.release("r1", 2.0)
        with pytest.raises(ReservationError, match="released"):
            store.commit("r1", {KEY: 1}, Usage(1, 0), 3.0)
    finally:
        store.close()


def test_a_commit_the_server_refuses_is_logged_at_the_next_step(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The reservation vanished on the server (deleted by hand) between reserve and commit:
    the pipelined commit cannot know at once. Its reply is read with the thread's next step,
    which has run by then and answers; the refusal is logged with the reservation's id."""
    store = RedisStore(url)
    r = redis.Redis.from_url(_Plan(url).driver_url, decode_responses=True)
    try:
        assert store.reserve("gone", _charges(), META, 1e10, 1.0).ok
        r.delete(_Plan(url).base + "r:gone")
        store.commit("gone", {KEY: 5}, Usage(5, 0), 2.0)  # written, not read
        with caplog.at_level("ERROR", logger="llmbudget.store.redis"):
            assert store.reserve("next", _charges(), META, 1e10, 3.0).ok
        assert "pipelined commit of reservation gone" in caplog.text
        assert "unknown id" in caplog.text
        assert getattr(store._lanes.peek(), "_llmbudget_pending", None) is None
        assert store.reserve("next2", _charges(), META, 1e10, 4.0).ok
        assert _server_counts(url) == (0, 90)
    finally:
        store.close()
        r.close()


def test_a_commit_whose_lease_is_ending_waits_for_the_server(url: str) -> None:
    store = RedisStore(url)
    try:
        assert store.reserve("r1", _charges(), META, 10.0, 1.0).ok
        out = store.commit("r1", {KEY: 7}, Usage(7, 0), 9.5)  # within 2 s of the lease end
        assert getattr(store._lanes.peek(), "_llmbudget_pending", None) is None
        assert [(c.used, c.reserved) for c in out.counters] == [(7, 0)]
    finally:
        store.close()


def test_a_pipelined_commit_lands_by_itself_when_no_step_follows(url: str) -> None:
    """Queued with MSG_MORE, a commit leaves with the next step, or on its own within the
    kernel's cork limit (about 200 ms) when the thread makes no other call."""
    store = RedisStore(url)
    try:
        assert store.reserve("r1", _charges(), META, 1e10, 1.0).ok
        store.commit("r1", {KEY: 11}, Usage(11, 0), 2.0)
        deadline = time.monotonic() + 5
        while _server_counts(url) != (11, 0):
            assert time.monotonic() < deadline, "the commit never reached the server"
            time.sleep(0.02)
    finally:
        store.close()


def test_a_library_lost_under_a_pipelined_commit_is_loaded_and_both_land(url: str) -> None:
    from llmbudget.store.redis import _LIBRARY

    store = RedisStore(url)
    r = redis.Redis.from_url(_Plan(url).driver_url, decode_responses=True)
    try:
        assert store.reserve("r1", _charges(), META, 1e10, 1.0).ok
        r.function_delete(_LIBRARY.split("\n", 1)[0].removeprefix("#!lua name="))
        store.commit("r1", {KEY: 8}, Usage(8, 0), 2.0)
        assert store.reserve("r2", _charges(), META, 1e10, 3.0).ok
        assert getattr(store._lanes.peek(), "_llmbudget_pending", None) is None
        assert _server_counts(url) == (8, 30)
    finally:
        store.close()
        r.close()


def test_close_reads_every_pending_reply(url: str) -> None:
    store = RedisStore(url)
    assert store.reserve("r1", _charges(), META, 1e10, 1.0).ok
    store.commit("r1", {KEY: 12}, Usage(12, 0), 2.0)
    store.close()
    assert _server_counts(url) == (12, 0)


def test_pending_commits_of_other_threads_are_read_at_close(url: str) -> None:
    store = RedisStore(url)

    def work(i: int) -> None:
        rid = f"t{i}"
        assert store.reserve(rid, _charges(10), META, 1e10, 1.0).ok
        store.commit(rid, {KEY: 4}, Usage(4, 0), 2.0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert _server_counts(url) == (24, 0)


def test_reads_on_other_connections_see_this_threads_commit(url: str) -> None:
    store = RedisStore(url)
    try:
        assert store.reserve("r1", _charges(), META, 1e10, 1.0).ok
        store.commit("r1", {KEY: 9}, Usage(9, 0), 2.0)
        # events() reads the stream on a pooled connection: the pending reply is read first
        assert [e.id for e in store.events()] == ["r1"]
        assert store.reservation_state("r1") == "committed"
    finally:
        store.close()


def test_a_lost_connection_sends_the_commit_again_and_it_counts_once(tmp_path: Path) -> None:
    """The server goes away after a commit was written: the next step writes it again
    (commits are idempotent by id) once the server is back; the usage counts once."""
    srv = RedisServer(tmp_path)  # append-only file, fsync always: a restart keeps the data
    srv.start()
    url = srv.url + "?clock=caller&commit=pipelined"
    store = RedisStore(url)
    try:
        # 1. the connection is cut while the commit waits, unapplied, on the server (writes
        # paused): the next step finds the connection gone and writes the commit again
        assert store.reserve("r1", _charges(), META, 1e10, 1.0).ok
        admin = redis.Redis.from_url(srv.url)
        admin.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
        store.commit("r1", {KEY: 25}, Usage(10, 15), 2.0)
        time.sleep(0.1)
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
        assert store.reserve("r2", _charges(), META, 1e10, 3.0).ok
        assert _server_counts(url) == (25, 30)
        # 2. the server is down when the commit is written: it stays pending, the steps in
        # between say the store is unavailable, and it lands once the server is back
        srv.stop()
        # the write itself may fail or not, depending on the socket's state
        with contextlib.suppress(StoreUnavailable):
            store.commit("r2", {KEY: 1}, Usage(1, 0), 4.0)
        with pytest.raises(StoreUnavailable):
            store.reserve("r3", _charges(), META, 1e10, 5.0)
        srv.start()
        (c,) = store.counters([KEY])
        assert (c.used, c.reserved) == (26, 0)
        assert _server_counts(url) == (26, 0)
    finally:
        store.close()
        srv.stop()


def test_async_store_refuses_pipelined_commits(url: str) -> None:
    with pytest.raises(ConfigError, match="commit=pipelined is for RedisStore"):
        asyncio.run(AsyncRedisStore.open(url))


def test_bad_commit_option_is_named(url: str) -> None:
    with pytest.raises(ConfigError, match="commit must be 'wait' or 'pipelined'"):
        RedisStore(url.replace("commit=pipelined", "commit=later"))


def test_a_commit_queued_before_an_outage_lands_once_under_fail_open(tmp_path: Path) -> None:
    """A commit queued just before Redis stops, under a fail_open failover store: the steps
    during the outage are journalled, the queued commit stays pending on its connection, and
    once Redis is back both land, each once."""
    from llmbudget.store._failover import FailoverStore

    srv = RedisServer(tmp_path)
    srv.start()
    url = srv.url + "?clock=caller&commit=pipelined"
    store = FailoverStore(
        open_store(url), mode="fail_open", journal=tmp_path / "j.jsonl", retry_after=30.0
    )
    try:
        assert store.reserve("r1", _charges(), META, 1e10, 1.0).ok
        store.commit("r1", {KEY: 25}, Usage(10, 15), 2.0)  # queued, not read
        srv.stop()
        assert store.reserve("r2", _charges(), META, 1e10, 3.0).ok  # journalled
        store.commit("r2", {KEY: 7}, Usage(7, 0), 4.0)
        assert store.down
        srv.start()
        replay_when_back(store)
        assert store.pending() == 0
        assert _server_counts(url) == (32, 0)
        assert sorted(e.id for e in store.events()) == ["r1", "r2"]
    finally:
        store.close()
        srv.stop()


def test_a_lost_library_and_a_failing_step_behind_the_commit_lose_nothing(url: str) -> None:
    """The library vanished under a queued commit and the step written behind it fails on
    its own (an unknown id): the commit is still written again and the connection stays in
    step (no reply read for the wrong command)."""
    from llmbudget.store.redis import _LIBRARY

    store = RedisStore(url + "&socket_timeout=5")
    r = redis.Redis.from_url(_Plan(url).driver_url, decode_responses=True)
    try:
        assert store.reserve("r1", _charges(), META, 1e10, 1.0).ok
        r.function_delete(_LIBRARY.split("\n", 1)[0].removeprefix("#!lua name="))
        store.commit("r1", {KEY: 25}, Usage(10, 15), 2.0)
        with pytest.raises(ReservationError, match="unknown id"):
            store.release("no-such-rid", 3.0)
        started = time.monotonic()
        (c,) = store.counters([KEY])
        assert time.monotonic() - started < 2
        assert (c.used, c.reserved) == (25, 0)
        assert store.reservation_state("r1") == "committed"
    finally:
        store.close()
        r.close()


def test_a_commit_refused_for_now_is_written_again_later(tmp_path: Path) -> None:
    """Redis out of memory (noeviction) refuses the queued commit: it is kept, the steps in
    between fail as in wait mode, and it lands once the server takes writes again."""
    srv = RedisServer(tmp_path)
    srv.start()
    url = srv.url + "?clock=caller&commit=pipelined"
    store = RedisStore(url)
    admin = redis.Redis.from_url(srv.url)
    try:
        assert store.reserve("r1", _charges(), META, 1e10, 1.0).ok
        admin.config_set("maxmemory", "1")
        store.commit("r1", {KEY: 25}, Usage(10, 15), 2.0)
        with pytest.raises(StoreUnavailable, match="maxmemory"):
            store.reserve("r2", _charges(), META, 1e10, 3.0)
        assert getattr(store._lanes.peek(), "_llmbudget_pending", None) is not None
        admin.config_set("maxmemory", "0")
        (c,) = store.counters([KEY])
        assert (c.used, c.reserved) == (25, 0)
        assert getattr(store._lanes.peek(), "_llmbudget_pending", None) is None
    finally:
        store.close()
        admin.close()
        srv.stop()


def _commit_and_exit(url: str) -> None:  # runs in a child process
    store = RedisStore(url)
    assert store.reserve("child", _charges(), META, 1e10, 1.0).ok
    store.commit("child", {KEY: 17}, Usage(17, 0), 2.0)  # queued, never read
    os._exit(0)  # no close(), no flush: the kernel sends what the socket holds


def test_a_process_that_exits_without_close_still_lands_its_commit(url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_commit_and_exit, args=(url,))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    deadline = time.monotonic() + 5
    while _server_counts(url) != (17, 0):
        assert time.monotonic() < deadline, f"counts are {_server_counts(url)}"
        time.sleep(0.02)
