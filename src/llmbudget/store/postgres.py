"""The PostgreSQL store: one ledger for many processes on many hosts, in ordinary tables.

Every atomic step is one transaction on a pooled connection (psycopg 3 + psycopg_pool).
Counter rows are created if missing (``INSERT … ON CONFLICT DO NOTHING``, in key order) and
locked with ``SELECT … ORDER BY key FOR UPDATE`` before the counting rule
(:func:`~llmbudget.core.ledger.fits`) is applied, so two steps touching the same counters
queue on the row locks instead of interleaving, always in the same (key) order. Expired
leases are taken with ``FOR UPDATE SKIP LOCKED``, so concurrent sweeps never settle one
twice. If PostgreSQL still reports a deadlock, the whole step is retried (it was rolled back).

URL: ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB`` plus llmbudget's own query options,
removed before the URL reaches libpq (any other query option is passed on to libpq):

==============  =========================================================================
``schema``      the PostgreSQL schema holding the ledger's tables (default ``llmbudget``)
``clock``       ``server`` (default: lease expiry on the database's ``now()``) or ``caller``
``pool_max``    connections per process (default 10)
``pool_timeout`` seconds a step waits for a connection before StoreUnavailable (default 5)
==============  =========================================================================

The schema is versioned in ``schema_version`` and upgraded by forward migrations under an
advisory lock; a ledger written by a newer llmbudget is refused (:class:`SchemaError`).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
import psycopg_pool
from psycopg.types.json import Jsonb

from .._errors import (
    ConfigError,
    InvalidUsage,
    NotFound,
    ReservationError,
    SchemaError,
    StoreUnavailable,
)
from ..core.ledger import (
    Approval,
    AuditEvent,
    Charge,
    CommitOutcome,
    CounterState,
    ReservationMeta,
    ReserveOutcome,
    Usage,
    UsageEvent,
    fits,
)
from ..core.samples import EstimateSample
from ._base import SCHEMA_VERSION, Store
from .redis import redacted

__all__ = ["PostgresStore"]

T = TypeVar("T")

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE counters (
            key TEXT PRIMARY KEY, budget TEXT NOT NULL, window_id TEXT NOT NULL,
            window_end DOUBLE PRECISION, partition TEXT NOT NULL DEFAULT '[]',
            used BIGINT NOT NULL DEFAULT 0, reserved BIGINT NOT NULL DEFAULT 0,
            granted BIGINT NOT NULL DEFAULT 0, level INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX counters_window_end ON counters (window_end)",
        """CREATE TABLE reservations (
            id TEXT PRIMARY KEY, state TEXT NOT NULL, charges JSONB NOT NULL,
            labels JSONB NOT NULL, est_prompt BIGINT NOT NULL, est_completion BIGINT NOT NULL,
            lease_until DOUBLE PRECISION NOT NULL, created DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX reservations_lease ON reservations (lease_until) WHERE state = 'active'",
        """CREATE TABLE events (
            seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, at DOUBLE PRECISION NOT NULL,
            labels JSONB NOT NULL, model TEXT NOT NULL, operation TEXT NOT NULL,
            prompt BIGINT NOT NULL, completion BIGINT NOT NULL, cached BIGINT NOT NULL,
            reasoning BIGINT NOT NULL, cost_micros BIGINT, est_prompt BIGINT,
            est_completion BIGINT, settled BOOLEAN NOT NULL)""",
        "CREATE INDEX events_at ON events (at, seq)",
        "CREATE INDEX events_model_op ON events (model, operation, seq)",
        """CREATE TABLE audit (
            seq BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL,
            budget TEXT NOT NULL, key TEXT NOT NULL, message TEXT NOT NULL, data TEXT NOT NULL)""",
        "CREATE INDEX audit_kind ON audit (kind, seq)",
        """CREATE TABLE approvals (
            id TEXT PRIMARY KEY, key TEXT NOT NULL, budget TEXT NOT NULL,
            window_id TEXT NOT NULL, requested BIGINT NOT NULL, state TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL, labels JSONB NOT NULL,
            granted BIGINT NOT NULL, resolved_at DOUBLE PRECISION, resolved_by TEXT NOT NULL,
            note TEXT NOT NULL)""",
        "CREATE INDEX approvals_key ON approvals (key, state)",
    ),
}
assert max(MIGRATIONS) == SCHEMA_VERSION

_COLS = "key, budget, window_id, window_end, partition, used, reserved, granted, level"
_OPTIONS = ("schema", "clock", "pool_max", "pool_timeout")
_EVENT_COLS = (
    "id, at, labels, prompt, completion, cached, reasoning, cost_micros, est_prompt, "
    "est_completion, settled"
)
_APPROVAL_COLS = (
    "id, key, budget, window_id, requested, state, created_at, labels, granted, "
    "resolved_at, resolved_by, note"
)
_INSERT_EVENT = (
    "INSERT INTO events (id, at, labels, model, operation, prompt, completion, cached, "
    "reasoning, cost_micros, est_prompt, est_completion, settled) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _options(url: str) -> tuple[str, str, str, int]:
    """``(libpq URL, schema, clock, pool_max)`` from a ledger URL."""
    shown = redacted(url)
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise ConfigError(f"ledger URL {shown!r} is not a valid URL: {e}") from e
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError(
            f"ledger URL {shown!r}: the PostgreSQL store needs postgresql://USER@HOST:PORT/DB"
        )
    ours: dict[str, str] = {}
    theirs = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in _OPTIONS:
            ours[k] = v
        else:
            theirs.append((k, v))
    schema = ours.get("schema", "llmbudget")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ConfigError(
            f"ledger URL {shown!r}: schema {schema!r} must be lower-case letters, digits "
            "and underscores"
        )
    clock = ours.get("clock", "server")
    if clock not in ("server", "caller"):
        raise ConfigError(f"ledger URL {shown!r}: clock must be 'server' or 'caller'")
    try:
        pool_max = int(ours.get("pool_max", "10"))
    except ValueError as e:
        raise ConfigError(f"ledger URL {shown!r}: pool_max must be a whole number") from e
    return urlunsplit(parts._replace(query=urlencode(theirs))), schema, clock, pool_max


def _counter(r: Sequence[Any]) -> CounterState:
    part = tuple((str(k), str(v)) for k, v in json.loads(r[4]))
    return CounterState(r[0], r[1], r[2], r[3], part, r[5], r[6], r[7], r[8])


def _approval(r: Sequence[Any]) -> Approval:
    return Approval(r[0], r[1], r[2], r[3], r[4], r[5], r[6], dict(r[7]), r[8], r[9], r[10], r[11])


def _event_row(ev: UsageEvent) -> tuple[object, ...]:
    return (
        ev.id,
        ev.at,
        Jsonb(ev.labels),
        ev.labels.get("model", ""),
        ev.labels.get("operation", ""),
        ev.prompt_tokens,
        ev.completion_tokens,
        ev.cached_tokens,
        ev.reasoning_tokens,
        ev.cost_micros,
        ev.estimated_prompt,
        ev.estimated_completion,
        ev.settled,
    )


class _Refused(Exception):
    def __init__(self, outcome: ReserveOutcome) -> None:
        self.outcome = outcome


class PostgresStore(Store):
    """The PostgreSQL ledger at ``url`` (see the module docstring for the URL options).

    Raises :class:`~llmbudget.StoreUnavailable` when the server cannot be reached or refuses
    the credentials, :class:`~llmbudget.ConfigError` for a bad URL and
    :class:`~llmbudget.SchemaError` for a ledger written by a newer llmbudget.
    """

    def __init__(self, url: str = "postgresql://postgres@127.0.0.1:5432/postgres") -> None:
        self.url = redacted(url)
        self._driver_url, self.schema, self.clock, self.pool_max = _options(url)
        try:
            self.pool_timeout = float(dict(parse_qsl(urlsplit(url).query)).get("pool_timeout", 5))
        except ValueError as e:
            raise ConfigError(f"ledger URL {self.url!r}: pool_timeout must be a number") from e
        self._lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pid = 0
        self._closed = False
        # a direct first connection, for a precise error (the pool only says "timeout")
        with self._errors("connect"):
            try:
                conn = psycopg.connect(self._driver_url, connect_timeout=5, autocommit=True)
            except psycopg.ProgrammingError as e:
                raise ConfigError(f"ledger URL {self.url!r}: {e}") from None
            with conn:
                self._migrate(conn)

    # -- connections and errors ------------------------------------------------------------
    def _get_pool(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[Any]]:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._closed:
                raise StoreUnavailable(f"PostgreSQL ledger {self.url} was closed")
            if self._pool is None or self._pid != os.getpid():
                # after a fork the parent's pool is not ours to use (nor to close)
                self._pool = psycopg_pool.ConnectionPool(
                    self._driver_url,
                    min_size=1,
                    max_size=self.pool_max,
                    timeout=self.pool_timeout,
                    kwargs={"options": f"-c search_path={self.schema}", "connect_timeout": 5},
                    open=True,
                    name=f"llmbudget-{self.schema}",
                )
                self._pid = os.getpid()
            return self._pool

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except psycopg.OperationalError as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if "password authentication failed" in msg or (
                "role" in msg and "does not exist" in msg
            ):
                raise StoreUnavailable(
                    f"PostgreSQL at {self.url} refused the credentials while trying to "
                    f"{doing}: {msg}; put the right user/password in the URL "
                    "(postgresql://USER:PASSWORD@HOST:PORT/DB) or in ~/.pgpass"
                ) from None
            if "database" in msg and "does not exist" in msg:
                raise StoreUnavailable(
                    f"PostgreSQL at {self.url}: {msg}; create it (`createdb NAME`) or fix the "
                    "database name in the URL"
                ) from None
            raise StoreUnavailable(
                f"cannot reach PostgreSQL at {self.url} to {doing} ({msg}); check that the "
                "server runs and the URL's host/port are right, or use a failover store "
                "(on_store_failure='fail_open')"
            ) from None
        except psycopg_pool.PoolTimeout:
            raise StoreUnavailable(
                f"no connection to PostgreSQL at {self.url} within {self.pool_timeout:g}s to "
                f"{doing}; check "
                "that the server runs, or raise ?pool_max= if all connections are busy"
            ) from None
        except psycopg.errors.InsufficientPrivilege as e:
            raise StoreUnavailable(
                f"PostgreSQL at {self.url}: cannot {doing}: {e}; grant the role rights on "
                f"schema {self.schema!r}"
            ) from None
        except psycopg.Error as e:
            raise StoreUnavailable(f"PostgreSQL at {self.url} failed to {doing}: {e}") from None

    def _step(self, doing: str, fn: Callable[[psycopg.Cursor[Any]], T]) -> T:
        """Run ``fn`` in one transaction; retry it whole if PostgreSQL broke a deadlock."""
        for attempt in range(5):
            try:
                with (
                    self._errors(doing),
                    self._get_pool().connection() as conn,
                    conn.transaction(),
                    conn.cursor() as cur,
                ):
                    return fn(cur)
            except StoreUnavailable as e:
                cause = str(e)
                if attempt < 4 and ("deadlock detected" in cause or "could not serialize" in cause):
                    continue
                raise
        raise AssertionError("unreachable")

    def _read(self, doing: str, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._errors(doing), self._get_pool().connection() as conn:
            return conn.execute(sql, args).fetchall()

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        s = self.schema
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"llmbudget:{s}",))
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{s}"')
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{s}".schema_version (version INTEGER NOT NULL)'
            )
            row = conn.execute(f'SELECT max(version) FROM "{s}".schema_version').fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise SchemaError(
                    f"PostgreSQL ledger {self.url} (schema {s!r}) has schema version "
                    f"{version}, newer than this llmbudget understands ({SCHEMA_VERSION}); "
                    "upgrade llmbudget to use it"
                )
            conn.execute(f'SET LOCAL search_path TO "{s}"')
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v]:
                    conn.execute(stmt)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (v,))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None

    # -- helpers inside a transaction --------------------------------------------------------
    def _now_sql(self, now: float) -> tuple[str, list[Any]]:
        if self.clock == "server":
            return "extract(epoch from now())::float8", []
        return "%s::float8", [now]

    @staticmethod
    def _lock_counters(
        cur: psycopg.Cursor[Any],
        charges: Sequence[Charge],
    ) -> tuple[dict[str, CounterState], list[str]]:
        """Create missing counters and lock every one in key order; return them as found
        and the keys that were created."""
        first: dict[str, Charge] = {}
        for c in charges:
            first.setdefault(c.key, c)
        keys = sorted(first)
        if not keys:
            return {}, []
        created = [
            r[0]
            for r in cur.execute(
                "INSERT INTO counters (key, budget, window_id, window_end, partition) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[], "
                "%s::text[]) ORDER BY 1 ON CONFLICT (key) DO NOTHING RETURNING key",
                (
                    list(keys),
                    [first[k].budget for k in keys],
                    [first[k].window_id for k in keys],
                    [first[k].window_end for k in keys],
                    [json.dumps([list(p) for p in first[k].partition]) for k in keys],
                ),
            ).fetchall()
        ]
        rows = cur.execute(
            f"SELECT {_COLS} FROM counters WHERE key = ANY(%s) ORDER BY key FOR UPDATE", (keys,)
        ).fetchall()
        return {r[0]: _counter(r) for r in rows}, created

    @staticmethod
    def _add(
        cur: psycopg.Cursor[Any],
        used: Mapping[str, int],
        reserved: Mapping[str, int],
    ) -> dict[str, CounterState]:
        keys = sorted(set(used) | set(reserved))
        if not keys:
            return {}
        rows = cur.execute(
            "UPDATE counters c SET used = c.used + d.u, reserved = c.reserved + d.r "
            "FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) AS d(key, u, r) "
            f"WHERE c.key = d.key RETURNING {', '.join('c.' + x for x in _COLS.split(', '))}",
            (keys, [used.get(k, 0) for k in keys], [reserved.get(k, 0) for k in keys]),
        ).fetchall()
        return {r[0]: _counter(r) for r in rows}

    def _sweep(self, cur: psycopg.Cursor[Any], now: float) -> int:
        expr, args = self._now_sql(now)
        rows = cur.execute(
            "SELECT id, charges, labels, est_prompt, est_completion FROM reservations "
            f"WHERE state = 'active' AND lease_until < {expr} ORDER BY id "
            "FOR UPDATE SKIP LOCKED",
            args,
        ).fetchall()
        if not rows:
            return 0
        delta: dict[str, int] = {}
        for r in rows:
            for key, amt in r[1]:
                delta[key] = delta.get(key, 0) + amt
        cur.execute(
            "SELECT 1 FROM counters WHERE key = ANY(%s) ORDER BY key FOR UPDATE", (sorted(delta),)
        )
        self._add(cur, delta, {k: -v for k, v in delta.items()})
        cur.execute(
            "UPDATE reservations SET state = 'expired' WHERE id = ANY(%s)", ([r[0] for r in rows],)
        )
        cur.executemany(
            _INSERT_EVENT,
            [
                _event_row(
                    UsageEvent(
                        r[0],
                        now,
                        dict(r[2]),
                        r[3],
                        r[4],
                        estimated_prompt=r[3],
                        estimated_completion=r[4],
                        settled=False,
                    )
                )
                for r in rows
            ],
        )
        return len(rows)

    def _try(self, cur: psycopg.Cursor[Any], charges: Sequence[Charge]) -> ReserveOutcome:
        found, created = self._lock_counters(cur, charges)
        for c in charges:
            if not fits(found.get(c.key), c.amount, c.cap):
                if created:
                    cur.execute("DELETE FROM counters WHERE key = ANY(%s)", (created,))
                return ReserveOutcome(False, tuple(found[x.key] for x in charges), c.key)
        delta: dict[str, int] = {}
        for c in charges:
            delta[c.key] = delta.get(c.key, 0) + c.amount
        after = self._add(cur, {}, delta)
        return ReserveOutcome(True, tuple(after[c.key] for c in charges))

    @staticmethod
    def _settled_id(cur: psycopg.Cursor[Any], eid: str) -> bool:
        return cur.execute("SELECT 1 FROM events WHERE id = %s", (eid,)).fetchone() is not None

    # -- the atomic steps -------------------------------------------------------------------
    def reserve(
        self,
        rid: str,
        charges: Sequence[Charge],
        meta: ReservationMeta,
        lease_until: float,
        now: float,
    ) -> ReserveOutcome:
        def step(cur: psycopg.Cursor[Any]) -> ReserveOutcome:
            self._sweep(cur, now)
            if cur.execute(
                "SELECT 1 FROM reservations WHERE id = %s", (rid,)
            ).fetchone() or self._settled_id(cur, rid):
                raise ReservationError(f"reservation id {rid!r} is already in use")
            out = self._try(cur, charges)
            if out.ok:
                held: dict[str, int] = {}
                for c in charges:
                    held[c.key] = held.get(c.key, 0) + c.amount
                expr, args = self._now_sql(now)
                cur.execute(
                    "INSERT INTO reservations (id, state, charges, labels, est_prompt, "
                    f"est_completion, lease_until, created) VALUES (%s, 'active', %s, %s, %s, "
                    f"%s, {expr} + %s, %s)",
                    [
                        rid,
                        Jsonb([[k, v] for k, v in held.items()]),
                        Jsonb(dict(meta.labels)),
                        meta.prompt_tokens,
                        meta.completion_tokens,
                        *args,
                        lease_until - now,
                        now,
                    ],
                )
            return out

        return self._step("reserve", step)

    def extend(
        self, rid: str, charges: Sequence[Charge], lease_until: float, now: float
    ) -> ReserveOutcome:
        def step(cur: psycopg.Cursor[Any]) -> ReserveOutcome:
            row = cur.execute(
                "SELECT state, charges FROM reservations WHERE id = %s FOR UPDATE", (rid,)
            ).fetchone()
            if row is None or row[0] != "active":
                state = (
                    row[0] if row else ("committed" if self._settled_id(cur, rid) else "unknown")
                )
                raise ReservationError(f"cannot extend reservation {rid!r}: it is {state}")
            out = self._try(cur, charges)
            if out.ok:
                held = dict(row[1])
                for c in charges:
                    held[c.key] = held.get(c.key, 0) + c.amount
                expr, args = self._now_sql(now)
                cur.execute(
                    f"UPDATE reservations SET charges = %s, lease_until = {expr} + %s "
                    "WHERE id = %s",
                    [Jsonb([[k, v] for k, v in held.items()]), *args, lease_until - now, rid],
                )
            return out

        return self._step("extend a reservation", step)

    def commit(
        self, rid: str, actual: Mapping[str, int], usage: Usage, now: float
    ) -> CommitOutcome:
        def step(cur: psycopg.Cursor[Any]) -> CommitOutcome:
            row = cur.execute(
                "SELECT state, charges, labels, est_prompt, est_completion FROM reservations "
                "WHERE id = %s FOR UPDATE",
                (rid,),
            ).fetchone()
            if row is None:
                if self._settled_id(cur, rid):
                    return CommitOutcome((), duplicate=True)
                raise ReservationError(f"cannot commit reservation {rid!r}: unknown id")
            state, held_list, labels, ep, ec = row
            held = [(str(k), int(v)) for k, v in held_list]
            if state == "committed":
                found = {
                    r[0]: _counter(r)
                    for r in cur.execute(
                        f"SELECT {_COLS} FROM counters WHERE key = ANY(%s)", ([k for k, _ in held],)
                    ).fetchall()
                }
                return CommitOutcome(tuple(found[k] for k, _ in held if k in found), True)
            if state == "released":
                raise ReservationError(f"cannot commit reservation {rid!r}: it was released")
            cur.execute(
                "SELECT 1 FROM counters WHERE key = ANY(%s) ORDER BY key FOR UPDATE",
                (sorted(k for k, _ in held),),
            )
            used = {k: actual.get(k, 0) - (amt if state == "expired" else 0) for k, amt in held}
            reserved = {k: 0 if state == "expired" else -amt for k, amt in held}
            after = self._add(cur, used, reserved)
            if state == "expired":
                cur.execute("DELETE FROM events WHERE id = %s", (rid,))
            cur.execute(
                _INSERT_EVENT,
                _event_row(
                    UsageEvent(
                        rid,
                        now,
                        dict(labels),
                        usage.prompt_tokens,
                        usage.completion_tokens,
                        usage.cached_tokens,
                        usage.reasoning_tokens,
                        usage.cost_micros,
                        ep,
                        ec,
                        True,
                    )
                ),
            )
            cur.execute("UPDATE reservations SET state = 'committed' WHERE id = %s", (rid,))
            return CommitOutcome(tuple(after[k] for k, _ in held if k in after))

        return self._step("commit usage", step)

    def release(self, rid: str, now: float) -> tuple[CounterState, ...]:
        def step(cur: psycopg.Cursor[Any]) -> tuple[CounterState, ...]:
            row = cur.execute(
                "SELECT state, charges FROM reservations WHERE id = %s FOR UPDATE", (rid,)
            ).fetchone()
            if row is None:
                if self._settled_id(cur, rid):
                    return ()
                raise ReservationError(f"cannot release reservation {rid!r}: unknown id")
            held = [(str(k), int(v)) for k, v in row[1]]
            if row[0] == "active":
                cur.execute(
                    "SELECT 1 FROM counters WHERE key = ANY(%s) ORDER BY key FOR UPDATE",
                    (sorted(k for k, _ in held),),
                )
                after = self._add(cur, {}, {k: -amt for k, amt in held})
                cur.execute("UPDATE reservations SET state = 'released' WHERE id = %s", (rid,))
            else:
                after = {
                    r[0]: _counter(r)
                    for r in cur.execute(
                        f"SELECT {_COLS} FROM counters WHERE key = ANY(%s)", ([k for k, _ in held],)
                    ).fetchall()
                }
            return tuple(after[k] for k, _ in held if k in after)

        return self._step("release a reservation", step)

    def record(
        self,
        event_id: str,
        charges: Sequence[Charge],
        labels: Mapping[str, str],
        usage: Usage,
        now: float,
    ) -> CommitOutcome:
        def step(cur: psycopg.Cursor[Any]) -> CommitOutcome:
            ev = UsageEvent(
                event_id,
                now,
                dict(labels),
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens,
                usage.reasoning_tokens,
                usage.cost_micros,
            )
            fresh = cur.execute(
                _INSERT_EVENT + " ON CONFLICT (id) DO NOTHING RETURNING seq", _event_row(ev)
            ).fetchone()
            if fresh is None:
                found = {
                    r[0]: _counter(r)
                    for r in cur.execute(
                        f"SELECT {_COLS} FROM counters WHERE key = ANY(%s)",
                        ([c.key for c in charges],),
                    ).fetchall()
                }
                return CommitOutcome(tuple(found[c.key] for c in charges if c.key in found), True)
            self._lock_counters(cur, charges)
            delta: dict[str, int] = {}
            for c in charges:
                delta[c.key] = delta.get(c.key, 0) + c.amount
            after = self._add(cur, delta, {})
            return CommitOutcome(tuple(after[c.key] for c in charges))

        return self._step("record usage", step)

    def sweep(self, now: float) -> int:
        return self._step("settle expired reservations", lambda cur: self._sweep(cur, now))

    # -- reading ------------------------------------------------------------------------------
    def counters(
        self, keys: Sequence[str] | None = None, *, active_at: float | None = None
    ) -> list[CounterState]:
        if keys is not None:
            rows = self._read(
                "read counters", f"SELECT {_COLS} FROM counters WHERE key = ANY(%s)", (list(keys),)
            )
            found = {r[0]: _counter(r) for r in rows}
            return [found[k] for k in keys if k in found]
        if active_at is None:
            rows = self._read("read counters", f"SELECT {_COLS} FROM counters ORDER BY key")
        else:
            rows = self._read(
                "read counters",
                f"SELECT {_COLS} FROM counters WHERE "
                "window_end IS NULL OR window_end > %s ORDER BY key",
                (active_at,),
            )
        return [_counter(r) for r in rows]

    def events(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Iterable[UsageEvent]:
        sql = f"SELECT {_EVENT_COLS} FROM events WHERE true"
        args: list[Any] = []
        if since is not None:
            sql += " AND at >= %s"
            args.append(since)
        if until is not None:
            sql += " AND at < %s"
            args.append(until)
        if labels:
            sql += " AND labels @> %s"
            args.append(Jsonb(dict(labels)))
        rows = self._read("read events", sql + " ORDER BY at, seq", args)
        return [
            UsageEvent(
                r[0], r[1], dict(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], bool(r[10])
            )
            for r in rows
        ]

    def estimate_samples(
        self, *, model: str | None = None, operation: str | None = None, limit: int = 1000
    ) -> list[EstimateSample]:
        sql = (
            "SELECT model, operation, est_prompt, prompt, est_completion, completion, at "
            "FROM events WHERE settled AND est_completion IS NOT NULL "
            "AND est_prompt IS NOT NULL"
        )
        args: list[Any] = []
        if model is not None:
            sql += " AND model = %s"
            args.append(model)
        if operation is not None:
            sql += " AND operation = %s"
            args.append(operation)
        rows = self._read(
            "read estimate samples", sql + " ORDER BY seq DESC LIMIT %s", [*args, limit]
        )
        return [EstimateSample(*r) for r in rows]

    def reservation_state(self, rid: str) -> str | None:
        rows = self._read(
            "read a reservation",
            "SELECT state FROM reservations WHERE id = %s UNION ALL "
            "SELECT 'committed' FROM events WHERE id = %s",
            (rid, rid),
        )
        return str(rows[0][0]) if rows else None

    # -- levels, audit, approvals ---------------------------------------------------------------
    def raise_level(self, key: str, level: int) -> int:
        def step(cur: psycopg.Cursor[Any]) -> int:
            row = cur.execute(
                "UPDATE counters c SET level = GREATEST(c.level, %s) FROM "
                "(SELECT key, level FROM counters WHERE key = %s FOR UPDATE) old "
                "WHERE c.key = old.key RETURNING old.level",
                (level, key),
            ).fetchone()
            return level if row is None else int(row[0])

        return self._step("record a level", step)

    def audit(self, event: AuditEvent) -> None:
        self._step(
            "write an audit event",
            lambda cur: cur.execute(
                "INSERT INTO audit (at, kind, budget, key, message, data) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    event.at,
                    event.kind,
                    event.budget,
                    event.key,
                    event.message,
                    json.dumps(event.data, default=str),
                ),
            ),
        )

    def audit_events(self, *, kind: str | None = None, limit: int = 100) -> list[AuditEvent]:
        sql = "SELECT at, kind, budget, key, message, data FROM audit"
        args: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = %s"
            args.append(kind)
        rows = self._read("read audit events", sql + " ORDER BY seq DESC LIMIT %s", [*args, limit])
        return [AuditEvent(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def request_approval(self, approval: Approval) -> Approval:
        a = approval

        def step(cur: psycopg.Cursor[Any]) -> Approval:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"approval:{a.key}",))
            row = cur.execute(
                f"SELECT {_APPROVAL_COLS} FROM approvals WHERE key = %s AND state IN "
                "('pending', 'denied') ORDER BY created_at DESC LIMIT 1",
                (a.key,),
            ).fetchone()
            if row:
                return _approval(row)
            cur.execute(
                f"INSERT INTO approvals ({_APPROVAL_COLS}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    a.id,
                    a.key,
                    a.budget,
                    a.window_id,
                    a.requested,
                    a.state,
                    a.created_at,
                    Jsonb(a.labels),
                    a.granted,
                    a.resolved_at,
                    a.resolved_by,
                    a.note,
                ),
            )
            return a

        return self._step("request an approval", step)

    def approvals(self, *, state: str | None = None, key: str | None = None) -> list[Approval]:
        sql = f"SELECT {_APPROVAL_COLS} FROM approvals WHERE true"
        args: list[Any] = []
        if state is not None:
            sql += " AND state = %s"
            args.append(state)
        if key is not None:
            sql += " AND key = %s"
            args.append(key)
        return [
            _approval(r)
            for r in self._read("read approvals", sql + " ORDER BY created_at DESC", args)
        ]

    def resolve_approval(
        self, approval_id: str, *, approve: bool, tokens: int | None, by: str, note: str, now: float
    ) -> Approval:
        def step(cur: psycopg.Cursor[Any]) -> Approval:
            row = cur.execute(
                f"SELECT {_APPROVAL_COLS} FROM approvals WHERE id = %s FOR UPDATE", (approval_id,)
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"no approval request {approval_id!r}; list them with `llmbudget approvals`"
                )
            a = _approval(row)
            if a.state == "approved":
                raise InvalidUsage(f"approval request {approval_id!r} was already approved")
            grant = (a.requested if tokens is None else tokens) if approve else 0
            state = "approved" if approve else "denied"
            cur.execute(
                "UPDATE approvals SET state = %s, granted = %s, resolved_at = %s, "
                "resolved_by = %s, note = %s WHERE id = %s",
                (state, grant, now, by, note, approval_id),
            )
            if approve:
                cur.execute(
                    "INSERT INTO counters (key, budget, window_id, granted) "
                    "VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET granted = counters.granted + "
                    "excluded.granted",
                    (a.key, a.budget, a.window_id, grant),
                )
            return Approval(
                a.id,
                a.key,
                a.budget,
                a.window_id,
                a.requested,
                state,
                a.created_at,
                a.labels,
                grant,
                now,
                by,
                note,
            )

        return self._step("resolve an approval", step)
