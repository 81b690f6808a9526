"""Where the test servers are, and how a test namespace is opened on each backend."""

from __future__ import annotations

import os
import uuid
from functools import cache
from pathlib import Path

import pytest

REDIS_URL = os.environ.get("LLMBUDGET_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "LLMBUDGET_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE = os.environ.get("LLMBUDGET_REQUIRE_SERVERS") == "1"

HOWTO = {
    "redis": (
        "no Redis at {url}: start one (`redis-server --port 6379 --save '' --appendonly no`) "
        "or point LLMBUDGET_TEST_REDIS_URL at one"
    ),
    "postgres": (
        "no PostgreSQL at {url}: start one (`pg_ctlcluster 15 main start`; trust auth, "
        "database `test`) or point LLMBUDGET_TEST_POSTGRES_URL at one"
    ),
}


@cache
def _reachable(kind: str) -> str | None:
    """``None`` when the server answers, else why not."""
    try:
        if kind == "redis":
            import redis

            r = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
            r.ping()
            r.close()
        else:
            import psycopg

            with psycopg.connect(POSTGRES_URL, connect_timeout=2) as c:
                c.execute("SELECT 1")
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def need(kind: str) -> None:
    """Skip (or, with LLMBUDGET_REQUIRE_SERVERS=1, fail) when the server is absent."""
    if kind not in HOWTO:
        return
    why = _reachable(kind)
    if why is None:
        return
    url = REDIS_URL if kind == "redis" else POSTGRES_URL
    msg = HOWTO[kind].format(url=url) + f" ({why})"
    if REQUIRE:
        pytest.fail("LLMBUDGET_REQUIRE_SERVERS=1 but " + msg, pytrace=False)
    pytest.skip(msg)


def _with(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={v}" for k, v in params.items())


def fresh_url(kind: str, tmp: Path, **params: str) -> str:
    """A URL naming an empty ledger of this kind (a fresh prefix / schema / file)."""
    ns = "t" + uuid.uuid4().hex[:12]
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp / (ns + '.db')}"
    if kind == "redis":
        return _with(REDIS_URL, prefix=ns, **params)
    return _with(POSTGRES_URL, schema=ns, **params)


def drop(kind: str, url: str) -> None:
    """Remove what a test namespace left on a server."""
    if kind == "redis":
        import redis

        from llmbudget.store.redis import _Plan

        plan = _Plan(url)
        r = redis.Redis.from_url(plan.driver_url)
        keys = list(r.scan_iter(match=plan.base.replace("{", "\\{").replace("}", "\\}") + "*"))
        if keys:
            r.delete(*keys)
        r.close()
    elif kind == "postgres":
        import psycopg

        from llmbudget.store.postgres import _options

        driver_url, schema = _options(url)[:2]
        with psycopg.connect(driver_url, autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
