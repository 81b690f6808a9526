"""Bad input and faults on the server-backed stores: clock skew between hosts, wrong
credentials, a ledger at a newer schema, an evicting Redis, and the Redis Cluster key layout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from redis.crc import key_slot

from llmbudget import ConfigError, SchemaError, StoreError, StoreUnavailable
from llmbudget.core.ledger import Approval, Charge, ReservationMeta, Usage
from llmbudget.store import Store, open_store
from llmbudget.store.postgres import SCHEMA_VERSION as PG_SCHEMA_VERSION
from llmbudget.store.postgres import PostgresStore, _options
from llmbudget.store.redis import AsyncRedisStore, RedisStore, _Plan

from ._async_adapter import SyncOverAsync
from ._servers import POSTGRES_URL, drop, fresh_url, need
from .test_outage import RedisServer

META = ReservationMeta((("model", "m"),), 10, 20)
DAY = 86400.0


def ch(key: str, amount: int, cap: int | None = 1000) -> Charge:
    return Charge(key, key.split("|")[0], amount, cap)


SERVER_KINDS = [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis-async", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


def _open(kind: str, url: str) -> Store:
    return SyncOverAsync(url) if kind == "redis-async" else open_store(url)


@pytest.fixture(params=SERVER_KINDS)
def server_clock_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store in the default ``clock=server`` mode."""
    kind: str = request.param
    server = kind.removesuffix("-async")
    need(server)
    url = fresh_url(server, tmp_path)
    s = _open(kind, url)
    try:
        yield s
    finally:
        s.close()
        drop(server, url)


# -- clock skew -----------------------------------------------------------------------------


def test_a_caller_clock_far_ahead_does_not_expire_leases_early(server_clock_store: Store) -> None:
    s = server_clock_store
    real = time.time()
    # host B (right clock) holds a 60 s lease
    assert s.reserve("b", [ch("A", 100)], META, real + 60, real).ok
    # host A's clock runs a day ahead: its sweep and its reserve leave B's lease alone
    assert s.sweep(real + DAY) == 0
    assert s.reserve("a", [ch("A", 100)], META, real + DAY + 60, real + DAY).ok
    assert s.reservation_state("b") == "active"
    # and A's own lease is 60 s of *server* time: host C, a day behind, does not see it
    # as having a day left nor expire it: it is simply active
    assert s.sweep(real - DAY) == 0
    assert s.reservation_state("a") == "active"
    (c,) = s.counters(["A"])
    assert (c.used, c.reserved) == (0, 200)


def test_leases_end_on_the_server_clock(server_clock_store: Store) -> None:
    s = server_clock_store
    real = time.time()
    # a 1 s lease taken by a caller whose clock is a day behind
    assert s.reserve("r", [ch("A", 100)], META, real - DAY + 1, real - DAY).ok
    assert s.sweep(real - DAY + 5) == 0  # the caller's clock says nothing about expiry
    time.sleep(1.3)
    # the server's clock has passed the lease end: any caller's sweep settles it
    assert s.sweep(real - DAY) == 1
    assert s.reservation_state("r") == "expired"
    (c,) = s.counters(["A"])
    assert (c.used, c.reserved) == (100, 0)


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
)
def test_caller_clock_mode_trusts_the_caller(kind: str, tmp_path: Path) -> None:
    """The contrast: with clock=caller a host whose clock runs ahead expires others' leases."""
    need(kind)
    url = fresh_url(kind, tmp_path, clock="caller")
    s = open_store(url)
    try:
        real = time.time()
        assert s.reserve("b", [ch("A", 100)], META, real + 60, real).ok
        assert s.sweep(real + DAY) == 1
        assert s.reservation_state("b") == "expired"
    finally:
        s.close()
        drop(kind, url)


# -- credentials ----------------------------------------------------------------------------


@pytest.fixture
def redis_with_acl(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(
        tmp_path,
        "--requirepass",
        "s3cret",
        "--user",
        "budgeteer",
        "on",
        ">right-pass",
        "~*",
        "&*",
        "+@all",
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.redis
@pytest.mark.parametrize(
    ("auth", "ok"),
    [
        ("", False),  # no password: NOAUTH
        (":wrong@", False),  # default user, wrong password
        ("budgeteer:wrong-pass@", False),  # ACL user, wrong password
        ("nobody:right-pass@", False),  # unknown ACL user
        (":s3cret@", True),
        ("budgeteer:right-pass@", True),
    ],
)
def test_redis_credentials(redis_with_acl: RedisServer, auth: str, ok: bool) -> None:
    url = f"redis://{auth}127.0.0.1:{redis_with_acl.port}/0"
    if ok:
        s = RedisStore(url)
        assert s.reserve("r", [ch("A", 1)], META, time.time() + 60, time.time()).ok
        s.close()
        return
    with pytest.raises(StoreUnavailable, match="credentials") as err:
        RedisStore(url)
    assert "wrong-pass" not in str(err.value)  # the password is never printed
    assert "s3cret" not in str(err.value)


@pytest.mark.redis
def test_async_redis_credentials(redis_with_acl: RedisServer) -> None:
    url = f"redis://budgeteer:wrong-pass@127.0.0.1:{redis_with_acl.port}/0"
    with pytest.raises(StoreUnavailable, match="credentials"):
        asyncio.run(AsyncRedisStore.open(url))


@pytest.mark.postgres
def test_postgres_role_that_does_not_exist() -> None:
    need("postgres")
    parts = POSTGRES_URL.split("://", 1)[1].split("@", 1)[-1]
    url = f"postgresql://no_such_role_{uuid.uuid4().hex[:8]}:pw@{parts}"
    with pytest.raises(StoreUnavailable, match="credentials") as err:
        PostgresStore(url)
    assert ":pw@" not in str(err.value)
    assert "does not exist" in str(err.value)


# -- a ledger at a newer schema ---------------------------------------------------------------


@pytest.mark.redis
def test_redis_ledger_at_a_newer_schema(tmp_path: Path) -> None:
    need("redis")
    url = fresh_url("redis", tmp_path)
    plan = _Plan(url)
    r = redis.Redis.from_url(plan.driver_url)
    try:
        r.hset(plan.meta, "schema_version", "99")
        with pytest.raises(SchemaError, match="schema version 99"):
            RedisStore(url)
        with pytest.raises(SchemaError, match="schema version 99"):
            asyncio.run(AsyncRedisStore.open(url))
    finally:
        r.close()
        drop("redis", url)


@pytest.mark.postgres
def test_postgres_ledger_at_a_newer_schema(tmp_path: Path) -> None:
    need("postgres")
    url = fresh_url("postgres", tmp_path)
    PostgresStore(url).close()
    driver_url, schema = _options(url)[:2]
    try:
        with psycopg.connect(driver_url, autocommit=True) as c:
            row = c.execute(f'SELECT max(version) FROM "{schema}".schema_version').fetchone()
            assert row is not None
            assert row[0] == PG_SCHEMA_VERSION
            c.execute(f'INSERT INTO "{schema}".schema_version VALUES (99)')
        with pytest.raises(SchemaError, match="schema version 99"):
            PostgresStore(url)
    finally:
        drop("postgres", url)


@pytest.mark.postgres
def test_postgres_migrates_a_version_1_ledger_forward(tmp_path: Path) -> None:
    """A ledger made by the first release (tables only) gains the step functions."""
    need("postgres")
    from llmbudget.store.postgres import MIGRATIONS

    url = fresh_url("postgres", tmp_path, clock="caller")
    driver_url, schema = _options(url)[:2]
    try:
        with psycopg.connect(driver_url, autocommit=True) as c:
            c.execute(f'CREATE SCHEMA "{schema}"')
            c.execute(f'SET search_path TO "{schema}"')
            c.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            for stmt in MIGRATIONS[1]:
                c.execute(stmt)
            c.execute("INSERT INTO schema_version VALUES (1)")
        s = PostgresStore(url)
        now = time.time()
        assert s.reserve("r", [ch("A", 5)], META, now + 60, now).ok
        assert not s.commit("r", {"A": 4}, Usage(2, 2), now).duplicate
        assert [(c.key, c.used) for c in s.counters(["A"])] == [("A", 4)]
        s.close()
    finally:
        drop("postgres", url)


@pytest.mark.postgres
def test_postgres_migration_5_dates_events_at_the_reservation(tmp_path: Path) -> None:
    """A ledger at version 4 gains commit and sweep functions that date a reservation's
    event at its creation (the window of its counters)."""
    need("postgres")
    from llmbudget.store.postgres import MIGRATIONS

    url = fresh_url("postgres", tmp_path, clock="caller")
    driver_url, schema = _options(url)[:2]
    try:
        with psycopg.connect(driver_url, autocommit=True) as c:
            c.execute(f'CREATE SCHEMA "{schema}"')
            c.execute(f'SET search_path TO "{schema}"')
            c.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            for v in range(1, 5):
                for stmt in MIGRATIONS[v]:
                    c.execute(stmt)
                c.execute("INSERT INTO schema_version VALUES (%s)", (v,))
        s = PostgresStore(url)
        now = float(int(time.time()))
        assert s.reserve("r1", [ch("A", 5)], META, now + 60, now).ok
        assert s.reserve("r2", [ch("A", 5)], META, now + 5, now + 1).ok
        s.commit("r1", {"A": 4}, Usage(2, 2), now + 30)
        assert s.sweep(now + 30) == 1
        assert [(e.id, e.at) for e in s.events()] == [("r1", now), ("r2", now + 1)]
        s.close()
    finally:
        drop("postgres", url)


@pytest.mark.redis
@pytest.mark.parametrize("step", ["commit", "sweep"])
def test_redis_reservation_written_before_its_time_was_kept(tmp_path: Path, step: str) -> None:
    """A reservation hash without 'at' (written by an older llmbudget) still settles: its
    event is dated at the commit or sweep, as it was then."""
    need("redis")
    url = fresh_url("redis", tmp_path, clock="caller")
    s = RedisStore(url)
    plan = _Plan(url)
    r = redis.Redis.from_url(plan.driver_url)
    try:
        now = float(int(time.time()))
        assert s.reserve("r1", [ch("A", 5)], META, now + 5, now).ok
        assert r.hget(plan.base + "r:r1", "at") is not None
        r.hdel(plan.base + "r:r1", "at")
        if step == "commit":
            s.commit("r1", {"A": 4}, Usage(2, 2), now + 3)
        else:
            assert s.sweep(now + 30) == 1
        (ev,) = s.events()
        assert ev.at == (now + 3 if step == "commit" else now + 30)
    finally:
        r.close()
        s.close()
        drop("redis", url)


# -- an evicting Redis ------------------------------------------------------------------------


@pytest.fixture
def evicting_redis(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path, "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.redis
def test_redis_that_may_evict_is_refused(evicting_redis: RedisServer) -> None:
    url = evicting_redis.url
    with pytest.raises(ConfigError, match="allkeys-lru") as err:
        RedisStore(url)
    assert "noeviction" in str(err.value)
    assert "eviction=allow" in str(err.value)
    with pytest.raises(ConfigError, match="allkeys-lru"):
        asyncio.run(AsyncRedisStore.open(url))
    # the risk can be accepted explicitly, with a warning
    with pytest.warns(RuntimeWarning, match="allkeys-lru"):
        RedisStore(url + "?eviction=allow").close()


@pytest.mark.redis
@pytest.mark.parametrize("kind", ["redis", "redis-async"])
def test_lost_keys_are_detected_not_guessed(kind: str, tmp_path: Path) -> None:
    need("redis")
    url = fresh_url("redis", tmp_path, clock="caller")
    s = _open(kind, url)
    plan = _Plan(url)
    r = redis.Redis.from_url(plan.driver_url)
    try:
        now = time.time()
        assert s.reserve("r1", [ch("A", 5)], META, now + 1, now).ok
        # an evicted reservation record behind a live lease
        r.delete(plan.base + "r:r1")
        with pytest.raises(StoreError, match="evicted"):
            s.sweep(now + 5)
        # the ledger marker gone (evicted or flushed)
        r.delete(plan.meta)
        with pytest.raises(StoreError, match="evicted or flushed"):
            s.reserve("r2", [ch("A", 5)], META, now + 60, now)
    finally:
        s.close()
        r.close()
        drop("redis", url)


# -- Redis Cluster: one call's keys in one slot --------------------------------------------------


def test_every_key_of_a_ledger_shares_the_hash_slot_of_its_prefix() -> None:
    """Unit test of the key layout (no server): the key names the scripts build all start
    with the ``{prefix}`` hash tag, whatever braces a counter key or id contains."""
    plan = _Plan("redis://127.0.0.1:6379/0?prefix=team-a")
    slot = key_slot(plan.meta.encode())
    assert slot == key_slot(b"team-a")
    names = ["counters", "leases", "events", "audit", "approvals"]
    tricky = ["run|agent=x|run", "weird{brace}key", "}{", "{", "day|day:2026-11-26", "é|ü"]
    for k in tricky:
        names += [f"c:{k}", f"r:{k}", f"e:{k}", f"a:{k}", f"ak:{k}"]
    for n in names:
        assert key_slot((plan.base + n).encode()) == slot, n
    # a different prefix is (in general) another slot: ledgers spread over a cluster
    other = _Plan("redis://127.0.0.1:6379/0?prefix=team-b")
    assert key_slot(other.meta.encode()) != slot


@pytest.mark.redis
def test_every_key_a_ledger_writes_is_in_one_slot(tmp_path: Path) -> None:
    need("redis")
    url = fresh_url("redis", tmp_path, clock="caller")
    s = RedisStore(url)
    plan = _Plan(url)
    r = redis.Redis.from_url(plan.driver_url)
    try:
        now = time.time()
        charges = [
            Charge("run|run=x{1}", "run", 10, 100),
            Charge("daily|day", "daily", 10, 100, "day:x", now + 3600),
        ]
        assert s.reserve("r{1}", charges, META, now + 60, now).ok
        s.commit("r{1}", {c.key: 8 for c in charges}, Usage(4, 4), now)
        assert s.reserve("r2", charges, META, now + 1, now).ok
        s.sweep(now + 5)
        s.record("e}1", charges, {"model": "m"}, Usage(1, 1), now)
        s.raise_level("daily|day", 1)
        s.audit_events()
        a = s.request_approval(Approval("ap{1}", "daily|day", "daily", "day:x", 5, "pending", now))
        s.resolve_approval(a.id, approve=True, tokens=None, by="me", note="", now=now)
        pattern = plan.base.replace("{", "\\{").replace("}", "\\}") + "*"
        keys = list(r.scan_iter(match=pattern))
        assert len(keys) >= 10
        assert {key_slot(k) for k in keys} == {key_slot(plan.meta.encode())}
    finally:
        s.close()
        r.close()
        drop("redis", url)


def test_a_counter_key_with_the_reply_separator_is_refused() -> None:
    from llmbudget import InvalidUsage
    from llmbudget.store.redis import _charges_json

    with pytest.raises(InvalidUsage, match="U\\+001F"):
        _charges_json([Charge("a\x1fb", "a", 1, 10)])


# -- bad URLs, unreachable hosts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "url", "match"),
    [
        (RedisStore, "http://127.0.0.1:6379/0", "redis://HOST:PORT/DB"),
        (RedisStore, "redis://127.0.0.1:6379/0?clock=sundial", "clock must be"),
        (RedisStore, "redis://127.0.0.1:6379/0?prefix={x}", "prefix"),
        (RedisStore, "redis://127.0.0.1:6379/0?eviction=maybe", "eviction"),
        (RedisStore, "redis://127.0.0.1:6379/0?maxlen=lots", "whole numbers"),
        (PostgresStore, "mysql://u@127.0.0.1/db", "postgresql://USER@HOST"),
        (PostgresStore, "postgresql://u@127.0.0.1/db?schema=Bad-Name", "schema"),
        (PostgresStore, "postgresql://u@127.0.0.1/db?pool_max=many", "pool_max"),
    ],
)
def test_bad_urls_are_config_errors(cls: type, url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cls(url)


def test_unreachable_hosts_are_unavailable_and_say_where() -> None:
    from .test_outage import _port

    port = _port()  # nothing listens there
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        RedisStore(f"redis://:pw@127.0.0.1:{port}/0")
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        PostgresStore(f"postgresql://u:pw@127.0.0.1:{port}/db")
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        asyncio.run(AsyncRedisStore.open(f"redis://127.0.0.1:{port}/0"))
