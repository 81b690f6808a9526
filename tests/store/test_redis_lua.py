"""How the Redis store runs its Lua: a function library on Redis 7+ (loaded on connect,
reloaded when the server lost it), scripts by SHA otherwise, and the URL option that picks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from llmbudget import ConfigError
from llmbudget.core.ledger import Charge, ReservationMeta, Usage
from llmbudget.store.redis import _FUNCTIONS, _LIBRARY, AsyncRedisStore, RedisStore, _Plan

from ._servers import drop, fresh_url, need

pytestmark = pytest.mark.redis

META = ReservationMeta((("model", "m"),), 10, 20)


def _charge(amount: int = 30) -> Charge:
    return Charge("b||run", "b", amount, 1000)


def _library_name() -> str:
    return _LIBRARY.split("\n", 1)[0].removeprefix("#!lua name=")


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    need("redis")
    u = fresh_url("redis", tmp_path, clock="caller")
    yield u
    drop("redis", u)


def test_function_library_is_loaded_and_steps_are_fcalls(url: str) -> None:
    store = RedisStore(url)
    r = redis.Redis.from_url(_Plan(url).driver_url, decode_responses=True)
    try:
        # FUNCTION LIST replies flat [name, value, ...] lists per library
        libs = [dict(zip(x[::2], x[1::2], strict=True)) for x in r.function_list()]
        assert _library_name() in {lib["library_name"] for lib in libs}
        r.config_resetstat()
        assert store.reserve("r1", [_charge()], META, 1e10, 1.0).ok
        store.commit("r1", {"b||run": 25}, Usage(10, 15), 2.0)
        stats = r.info("commandstats")
        assert stats["cmdstat_fcall"]["calls"] == 2
        assert "cmdstat_evalsha" not in stats
        assert [c.used for c in store.counters(["b||run"])] == [25]
    finally:
        store.close()
        r.close()


def test_a_server_that_lost_the_library_gets_it_again(url: str) -> None:
    """A restart without persistence (or FUNCTION FLUSH) drops the library: the next step
    reloads it and runs, applied once."""
    store = RedisStore(url)
    r = redis.Redis.from_url(_Plan(url).driver_url, decode_responses=True)
    try:
        assert store.reserve("r1", [_charge()], META, 1e10, 1.0).ok
        r.function_delete(_library_name())
        assert store.reserve("r2", [_charge()], META, 1e10, 1.0).ok
        assert [c.reserved for c in store.counters(["b||run"])] == [60]
    finally:
        store.close()
        r.close()


def test_async_store_uses_the_library_and_reloads_it(url: str) -> None:
    async def go() -> list[int]:
        store = await AsyncRedisStore.open(url)
        r = redis.asyncio.Redis.from_url(_Plan(url).driver_url, decode_responses=True)
        try:
            assert (await store.reserve("a1", [_charge()], META, 1e10, 1.0)).ok
            await r.function_delete(_library_name())
            assert (await store.reserve("a2", [_charge()], META, 1e10, 1.0)).ok
            return [c.reserved for c in await store.counters(["b||run"])]
        finally:
            await store.aclose()
            await r.aclose()

    assert asyncio.run(go()) == [60]


def test_scripts_mode_runs_evalsha_and_loads_on_noscript(url: str) -> None:
    store = RedisStore(url + "&lua=scripts")
    r = redis.Redis.from_url(_Plan(url).driver_url, decode_responses=True)
    try:
        r.script_flush()
        r.config_resetstat()
        assert store.reserve("s1", [_charge()], META, 1e10, 1.0).ok
        stats = r.info("commandstats")
        assert "cmdstat_fcall" not in stats
        assert stats["cmdstat_evalsha"]["calls"] == 2  # NOSCRIPT, then again after loading
        assert [c.reserved for c in store.counters(["b||run"])] == [30]
    finally:
        store.close()
        r.close()


def test_scripts_and_functions_share_one_ledger(url: str) -> None:
    """Two llmbudget processes, one on each path, see and settle each other's work."""
    fn, sc = RedisStore(url), RedisStore(url + "&lua=scripts")
    try:
        assert fn.reserve("x", [_charge()], META, 1e10, 1.0).ok
        sc.commit("x", {"b||run": 12}, Usage(5, 7), 2.0)
        assert [(c.used, c.reserved) for c in fn.counters(["b||run"])] == [(12, 0)]
    finally:
        fn.close()
        sc.close()


def test_function_names_carry_the_library_hash() -> None:
    lib = _library_name()
    assert lib.startswith("llmb_")
    assert all(name.startswith(lib + "_") for name in _FUNCTIONS.values())


def test_bad_lua_option_is_named(url: str) -> None:
    with pytest.raises(ConfigError, match="lua must be 'auto', 'functions' or 'scripts'"):
        RedisStore(url + "&lua=fast")
