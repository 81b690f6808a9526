"""The embedded default store: one SQLite file in WAL mode, safe across processes on one host.

Every atomic step is one ``BEGIN IMMEDIATE`` transaction: SQLite then admits one writer at a
time across all processes, so "check every counter, then apply every charge" cannot interleave
with another process's step. Readers never block writers (WAL). Each thread (and each process
after a fork) gets its own connection. The schema is versioned in ``meta.schema_version`` and
upgraded by forward migrations; a ledger written by a newer llmbudget is refused, not guessed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .._errors import InvalidUsage, NotFound, ReservationError, SchemaError, StoreUnavailable
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
    apply_reserve,
)
from ..core.samples import EstimateSample
from ._base import Store
from ._codec import parse_partition, partition_json

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE counters (
            key TEXT PRIMARY KEY, budget TEXT NOT NULL, window_id TEXT NOT NULL,
            window_end REAL, partition TEXT NOT NULL,
            used INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0,
            granted INTEGER NOT NULL DEFAULT 0, level INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX counters_window_end ON counters(window_end)",
        """CREATE TABLE reservations (
            id TEXT PRIMARY KEY, state TEXT NOT NULL, charges TEXT NOT NULL,
            labels TEXT NOT NULL, est_prompt INTEGER NOT NULL, est_completion INTEGER NOT NULL,
            lease_until REAL NOT NULL, created REAL NOT NULL)""",
        "CREATE INDEX reservations_lease ON reservations(lease_until) WHERE state = 'active'",
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, at REAL NOT NULL,
            labels TEXT NOT NULL, model TEXT NOT NULL, operation TEXT NOT NULL,
            prompt INTEGER NOT NULL, completion INTEGER NOT NULL, cached INTEGER NOT NULL,
            reasoning INTEGER NOT NULL, cost_micros INTEGER, est_prompt INTEGER,
            est_completion INTEGER, settled INTEGER NOT NULL)""",
        "CREATE INDEX events_at ON events(at)",
        "CREATE INDEX events_model_op ON events(model, operation, seq)",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL,
            budget TEXT NOT NULL, key TEXT NOT NULL, message TEXT NOT NULL, data TEXT NOT NULL)""",
        """CREATE TABLE approvals (
            id TEXT PRIMARY KEY, key TEXT NOT NULL, budget TEXT NOT NULL,
            window_id TEXT NOT NULL, requested INTEGER NOT NULL, state TEXT NOT NULL,
            created_at REAL NOT NULL, labels TEXT NOT NULL, granted INTEGER NOT NULL,
            resolved_at REAL, resolved_by TEXT NOT NULL, note TEXT NOT NULL)""",
        "CREATE INDEX approvals_key ON approvals(key, state)",
    ),
    2: (  # pools (headroom borrowed and lent) and confidence gates
        "ALTER TABLE counters ADD COLUMN borrowed INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE counters ADD COLUMN lent INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE counters ADD COLUMN closed INTEGER NOT NULL DEFAULT 0",
    ),
    3: (  # an approval knows its counter's window end and partition (a grant may create it)
        "ALTER TABLE approvals ADD COLUMN window_end REAL",
        "ALTER TABLE approvals ADD COLUMN partition TEXT NOT NULL DEFAULT '[]'",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)  # this store's own schema (each store versions its own)

SWEEP_INTERVAL = 1.0  # seconds between lease sweeps made by reserve (sweep() forces one)
_COUNTER_COLS = (
    "key, budget, window_id, window_end, partition, used, reserved, granted, level, "
    "borrowed, lent, closed"
)


def _where(sql: str, *conds: tuple[str, object | None]) -> tuple[str, list[object]]:
    """``sql`` with `` AND clause`` for every condition whose value is not ``None``."""
    args: list[object] = []
    for clause, value in conds:
        if value is not None:
            sql += f" AND {clause}"
            args.append(value)
    return sql, args


def _counter(row: Any) -> CounterState:
    part = parse_partition(row[4])
    return CounterState(
        row[0],
        row[1],
        row[2],
        row[3],
        part,
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        bool(row[11]),
    )


def _held(charges: Sequence[Charge]) -> dict[str, int]:
    """What a reservation holds per counter (a counter charged twice holds both amounts)."""
    held: dict[str, int] = {}
    for c in charges:
        held[c.key] = held.get(c.key, 0) + c.amount
    return held


class SQLiteStore(Store):
    """The SQLite ledger at ``path`` (created with its parent folder if missing).

    ``timeout`` is how long a step waits for another process's transaction before giving up
    with :class:`~llmbudget.StoreUnavailable`.
    """

    supports_pools = True

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.timeout = timeout
        self._local = threading.local()
        self._next_sweep = 0.0
        if str(path) != ":memory:":
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreUnavailable(
                    f"cannot create the folder for ledger {self.path}: {e.strerror}; "
                    "choose another location with --ledger or LLMBUDGET_LEDGER"
                ) from e
        self._migrate()

    # -- connections and errors ------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        with self._errors("open"):
            conn = sqlite3.connect(
                str(self.path),
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                # a read-only ledger keeps its mode; reads still work
                with suppress(sqlite3.OperationalError):
                    conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as e:
            msg = str(e)
            if "locked" in msg or "busy" in msg:
                raise StoreUnavailable(
                    f"ledger {self.path} stayed locked by another process for over "
                    f"{self.timeout:g}s while trying to {doing}; retry, or find the process "
                    "holding it (e.g. `fuser` on the file)"
                ) from e
            if "readonly" in msg or "read-only" in msg:
                raise StoreUnavailable(
                    f"ledger {self.path} is read-only, cannot {doing}; make the file and its "
                    "folder writable, or point --ledger / LLMBUDGET_LEDGER elsewhere"
                ) from e
            if "unable to open" in msg:
                raise StoreUnavailable(
                    f"cannot open ledger {self.path}: {msg}; check the path and permissions"
                ) from e
            raise StoreUnavailable(f"ledger {self.path}: cannot {doing}: {msg}") from e
        except sqlite3.DatabaseError as e:
            raise StoreUnavailable(
                f"{self.path} is not a usable llmbudget ledger ({e}); move it aside or point "
                "--ledger / LLMBUDGET_LEDGER at another file"
            ) from e

    @contextmanager
    def _tx(self, doing: str) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        with self._errors(doing):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _migrate(self) -> None:
        conn = self._conn()
        with self._errors("read the schema version"):
            has_meta = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
            ).fetchone()
            version = 0
            if has_meta:
                row = conn.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()
                version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"ledger {self.path} has schema version {version}, newer than this llmbudget "
                f"understands ({SCHEMA_VERSION}); upgrade llmbudget to use it"
            )
        if version == SCHEMA_VERSION:
            return
        with self._tx("upgrade the schema") as c:
            c.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
            row = c.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()
            current = int(row[0]) if row else 0  # another process may have migrated meanwhile
            for v in range(current + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v]:
                    c.execute(stmt)
            c.execute(
                "INSERT INTO meta (k, v) VALUES ('schema_version', ?) "
                "ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                (str(SCHEMA_VERSION),),
            )

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- steps (inside a transaction) ---------------------------------------------------------
    @staticmethod
    def _load(c: sqlite3.Connection, keys: Sequence[str]) -> dict[str, CounterState]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = c.execute(f"SELECT {_COUNTER_COLS} FROM counters WHERE key IN ({marks})", keys)
        return {str(r[0]): _counter(r) for r in rows}

    @staticmethod
    def _apply(c: sqlite3.Connection, charges: Sequence[Charge], *, used: bool) -> None:
        col = "used" if used else "reserved"
        c.executemany(
            f"""INSERT INTO counters (key, budget, window_id, window_end, partition, {col})
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(key) DO UPDATE SET {col} = {col} + excluded.{col}""",
            [
                (
                    ch.key,
                    ch.budget,
                    ch.window_id,
                    ch.window_end,
                    partition_json(ch.partition),
                    ch.amount,
                )
                for ch in charges
            ],
        )

    def _try(self, c: sqlite3.Connection, charges: Sequence[Charge]) -> ReserveOutcome:
        out = apply_reserve(
            self._load(c, [ch.key for ch in charges]), charges, lambda ks: self._load(c, ks)
        )
        if out.ok:  # write back every touched counter (donors too), computed in this tx
            c.executemany(
                """INSERT INTO counters (key, budget, window_id, window_end, partition,
                       reserved, borrowed, lent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(key) DO UPDATE SET reserved = excluded.reserved,
                       borrowed = excluded.borrowed, lent = excluded.lent""",
                [
                    (
                        st.key,
                        st.budget,
                        st.window_id,
                        st.window_end,
                        partition_json(st.partition),
                        st.reserved,
                        st.borrowed,
                        st.lent,
                    )
                    for st in out.touched
                ],
            )
        return out

    @staticmethod
    def _event_row(ev: UsageEvent) -> tuple[object, ...]:
        return (
            ev.id,
            ev.at,
            json.dumps(ev.labels, sort_keys=True),
            ev.labels.get("model", ""),
            ev.labels.get("operation", ""),
            ev.prompt_tokens,
            ev.completion_tokens,
            ev.cached_tokens,
            ev.reasoning_tokens,
            ev.cost_micros,
            ev.estimated_prompt,
            ev.estimated_completion,
            int(ev.settled),
        )

    _INSERT_EVENT = (
        "INSERT INTO events (id, at, labels, model, operation, prompt, completion, cached, "
        "reasoning, cost_micros, est_prompt, est_completion, settled) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )

    def _sweep(self, c: sqlite3.Connection, now: float) -> int:
        rows = c.execute(
            "SELECT id, charges, labels, est_prompt, est_completion, created FROM reservations "
            "WHERE state = 'active' AND lease_until < ?",
            (now,),
        ).fetchall()
        for rid, charges_json, labels_json, ep, ec, created in rows:
            charges = json.loads(charges_json)
            c.executemany(
                "UPDATE counters SET used = used + ?, reserved = reserved - ? WHERE key = ?",
                [(amt, amt, key) for key, amt in charges.items()],
            )
            c.execute("UPDATE reservations SET state = 'expired' WHERE id = ?", (rid,))
            c.execute(
                self._INSERT_EVENT,
                self._event_row(
                    UsageEvent(
                        rid,
                        created,  # the reservation's window, like its counters
                        json.loads(labels_json),
                        ep,
                        ec,
                        estimated_prompt=ep,
                        estimated_completion=ec,
                        settled=False,
                    )
                ),
            )
        return len(rows)

    def reserve(
        self,
        rid: str,
        charges: Sequence[Charge],
        meta: ReservationMeta,
        lease_until: float,
        now: float,
    ) -> ReserveOutcome:
        with self._tx("reserve") as c:
            if now >= self._next_sweep:  # orphaned leases are settled within a second
                self._sweep(c, now)
                self._next_sweep = now + SWEEP_INTERVAL
            out = self._try(c, charges)
            if out.ok:
                try:
                    c.execute(
                        "INSERT INTO reservations (id, state, charges, labels, est_prompt, "
                        "est_completion, lease_until, created) VALUES (?,'active',?,?,?,?,?,?)",
                        (
                            rid,
                            json.dumps(_held(charges)),
                            json.dumps(dict(meta.labels)),
                            meta.prompt_tokens,
                            meta.completion_tokens,
                            lease_until,
                            now,
                        ),
                    )
                except sqlite3.IntegrityError as e:
                    raise ReservationError(f"reservation id {rid!r} is already in use") from e
            return out

    def extend(
        self, rid: str, charges: Sequence[Charge], lease_until: float, now: float
    ) -> ReserveOutcome:
        with self._tx("extend a reservation") as c:
            row = c.execute(
                "SELECT state, charges FROM reservations WHERE id = ?", (rid,)
            ).fetchone()
            if row is None or row[0] != "active":
                state = row[0] if row else ("committed" if self._has_event(c, rid) else "unknown")
                raise ReservationError(f"cannot extend reservation {rid!r}: it is {state}")
            out = self._try(c, charges)
            if out.ok:
                held = json.loads(row[1])
                for ch in charges:
                    held[ch.key] = held.get(ch.key, 0) + ch.amount
                c.execute(
                    "UPDATE reservations SET charges = ?, lease_until = ? WHERE id = ?",
                    (json.dumps(held), lease_until, rid),
                )
            return out

    @staticmethod
    def _has_event(c: sqlite3.Connection, eid: str) -> bool:
        return c.execute("SELECT 1 FROM events WHERE id = ?", (eid,)).fetchone() is not None

    def commit(
        self, rid: str, actual: Mapping[str, int], usage: Usage, now: float
    ) -> CommitOutcome:
        with self._tx("commit usage") as c:
            # one statement reads and removes the reservation (a released one is kept: the
            # error below rolls the delete back)
            row = c.execute(
                "DELETE FROM reservations WHERE id = ? "
                "RETURNING state, charges, labels, est_prompt, est_completion, created",
                (rid,),
            ).fetchone()
            if row is None:
                if not self._has_event(c, rid):
                    raise ReservationError(f"cannot commit reservation {rid!r}: unknown id")
                return CommitOutcome((), duplicate=True)
            state, charges_json, labels_json, ep, ec, created = row
            if state == "released":
                raise ReservationError(f"cannot commit reservation {rid!r}: it was released")
            held: dict[str, int] = json.loads(charges_json)
            after = []
            if state == "expired":  # charged at the estimate already: correct it to actuals
                c.execute("DELETE FROM events WHERE id = ?", (rid,))
                for k, amt in held.items():
                    r = c.execute(
                        f"UPDATE counters SET used = used + ? WHERE key = ? "
                        f"RETURNING {_COUNTER_COLS}",
                        (actual.get(k, 0) - amt, k),
                    ).fetchone()
                    if r is not None:
                        after.append(_counter(r))
            else:
                for k, amt in held.items():
                    r = c.execute(
                        f"UPDATE counters SET used = used + ?, reserved = reserved - ? "
                        f"WHERE key = ? RETURNING {_COUNTER_COLS}",
                        (actual.get(k, 0), amt, k),
                    ).fetchone()
                    if r is not None:
                        after.append(_counter(r))
            c.execute(
                self._INSERT_EVENT,
                self._event_row(
                    UsageEvent(
                        rid,
                        created,  # the window it was reserved in, like its counters
                        json.loads(labels_json),
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
            return CommitOutcome(tuple(after))

    def release(self, rid: str, now: float) -> tuple[CounterState, ...]:
        with self._tx("release a reservation") as c:
            row = c.execute(
                "SELECT state, charges FROM reservations WHERE id = ?", (rid,)
            ).fetchone()
            if row is None:
                if self._has_event(c, rid):
                    return ()
                raise ReservationError(f"cannot release reservation {rid!r}: unknown id")
            held: dict[str, int] = json.loads(row[1])
            if row[0] == "active":
                c.executemany(
                    "UPDATE counters SET reserved = reserved - ? WHERE key = ?",
                    [(amt, k) for k, amt in held.items()],
                )
                c.execute("UPDATE reservations SET state = 'released' WHERE id = ?", (rid,))
            elif row[0] == "expired":  # charged at its estimate; the call did not happen
                c.executemany(
                    "UPDATE counters SET used = used - ? WHERE key = ?",
                    [(amt, k) for k, amt in held.items()],
                )
                c.execute(
                    "UPDATE events SET prompt = 0, completion = 0, settled = 1 WHERE id = ?",
                    (rid,),
                )
                c.execute("UPDATE reservations SET state = 'released' WHERE id = ?", (rid,))
            after = self._load(c, list(held))
            return tuple(after[k] for k in held if k in after)

    def record(
        self,
        event_id: str,
        charges: Sequence[Charge],
        labels: Mapping[str, str],
        usage: Usage,
        now: float,
    ) -> CommitOutcome:
        with self._tx("record usage") as c:
            if self._has_event(c, event_id):
                found = self._load(c, [ch.key for ch in charges])
                return CommitOutcome(tuple(found.values()), duplicate=True)
            self._apply(c, charges, used=True)
            c.execute(
                self._INSERT_EVENT,
                self._event_row(
                    UsageEvent(
                        event_id,
                        now,
                        dict(labels),
                        usage.prompt_tokens,
                        usage.completion_tokens,
                        usage.cached_tokens,
                        usage.reasoning_tokens,
                        usage.cost_micros,
                    )
                ),
            )
            after = self._load(c, [ch.key for ch in charges])
            return CommitOutcome(tuple(after[ch.key] for ch in charges))

    def sweep(self, now: float) -> int:
        with self._tx("settle expired reservations") as c:
            return self._sweep(c, now)

    # -- reading ------------------------------------------------------------------------------
    def counters(
        self, keys: Sequence[str] | None = None, *, active_at: float | None = None
    ) -> list[CounterState]:
        c = self._conn()
        with self._errors("read counters"):
            if keys is not None:
                found = self._load(c, list(keys))
                return [found[k] for k in keys if k in found]
            if active_at is None:
                rows = c.execute(f"SELECT {_COUNTER_COLS} FROM counters ORDER BY key")
            else:
                rows = c.execute(
                    # `+key` keeps SQLite on the window_end index instead of scanning by key
                    f"SELECT {_COUNTER_COLS} FROM counters WHERE window_end IS NULL "
                    "OR window_end > ? ORDER BY +key",
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
        sql, args = _where(
            "SELECT id, at, labels, prompt, completion, cached, reasoning, cost_micros, "
            "est_prompt, est_completion, settled FROM events WHERE 1=1",
            ("at >= ?", since),
            ("at < ?", until),
        )
        c = self._conn()
        with self._errors("read events"):
            rows = c.execute(sql + " ORDER BY at, seq", args).fetchall()
        for r in rows:
            lab = json.loads(r[2])
            if labels and any(lab.get(k) != v for k, v in labels.items()):
                continue
            yield UsageEvent(r[0], r[1], lab, r[3], r[4], r[5], r[6], r[7], r[8], r[9], bool(r[10]))

    def estimate_samples(
        self, *, model: str | None = None, operation: str | None = None, limit: int = 1000
    ) -> list[EstimateSample]:
        sql, args = _where(
            "SELECT model, operation, est_prompt, prompt, est_completion, completion, at "
            "FROM events WHERE settled = 1 AND est_completion IS NOT NULL",
            ("model = ?", model),
            ("operation = ?", operation),
        )
        c = self._conn()
        with self._errors("read estimate samples"):
            rows = c.execute(sql + " ORDER BY seq DESC LIMIT ?", [*args, limit]).fetchall()
        return [EstimateSample(*r) for r in rows]

    def reservation_state(self, rid: str) -> str | None:
        c = self._conn()
        with self._errors("read a reservation"):
            row = c.execute("SELECT state FROM reservations WHERE id = ?", (rid,)).fetchone()
            if row:
                return str(row[0])
            return "committed" if self._has_event(c, rid) else None

    # -- levels, audit, approvals ---------------------------------------------------------------
    def close_counters(self, keys: Sequence[str]) -> list[str]:
        with self._tx("close counters (confidence gate)") as c:
            found = self._load(c, list(keys))
            newly = [k for k in keys if k in found and not found[k].closed]
            c.executemany("UPDATE counters SET closed = 1 WHERE key = ?", [(k,) for k in newly])
            return newly

    def raise_level(self, key: str, level: int) -> int:
        with self._tx("record a level") as c:
            row = c.execute("SELECT level FROM counters WHERE key = ?", (key,)).fetchone()
            if row is None:
                return level
            if level > row[0]:
                c.execute("UPDATE counters SET level = ? WHERE key = ?", (level, key))
            return int(row[0])

    def audit(self, event: AuditEvent) -> None:
        with self._tx("write an audit event") as c:
            c.execute(
                "INSERT INTO audit (at, kind, budget, key, message, data) VALUES (?,?,?,?,?,?)",
                (
                    event.at,
                    event.kind,
                    event.budget,
                    event.key,
                    event.message,
                    json.dumps(event.data, default=str),
                ),
            )

    def audit_events(self, *, kind: str | None = None, limit: int = 100) -> list[AuditEvent]:
        c = self._conn()
        with self._errors("read audit events"):
            if kind is None:
                rows = c.execute(
                    "SELECT at, kind, budget, key, message, data FROM audit "
                    "ORDER BY seq DESC LIMIT ?",
                    (limit,),
                ).fetchall()
            else:
                rows = c.execute(
                    "SELECT at, kind, budget, key, message, data FROM audit "
                    "WHERE kind = ? ORDER BY seq DESC LIMIT ?",
                    (kind, limit),
                ).fetchall()
        return [AuditEvent(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    _APPROVAL_COLS = (
        "id, key, budget, window_id, requested, state, created_at, labels, "
        "granted, resolved_at, resolved_by, note, window_end, partition"
    )

    @staticmethod
    def _approval(r: Any) -> Approval:
        part = parse_partition(r[13])
        return Approval(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            json.loads(r[7]),
            r[8],
            r[9],
            r[10],
            r[11],
            r[12],
            part,
        )

    def request_approval(self, approval: Approval) -> Approval:
        a = approval
        with self._tx("request an approval") as c:
            row = c.execute(
                f"SELECT {self._APPROVAL_COLS} FROM approvals WHERE key = ? AND state IN "
                "('pending', 'denied') ORDER BY created_at DESC LIMIT 1",
                (a.key,),
            ).fetchone()
            if row:
                return self._approval(row)
            c.execute(
                f"INSERT INTO approvals ({self._APPROVAL_COLS}) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    a.id,
                    a.key,
                    a.budget,
                    a.window_id,
                    a.requested,
                    a.state,
                    a.created_at,
                    json.dumps(a.labels),
                    a.granted,
                    a.resolved_at,
                    a.resolved_by,
                    a.note,
                    a.window_end,
                    partition_json(a.partition),
                ),
            )
            return a

    def approvals(self, *, state: str | None = None, key: str | None = None) -> list[Approval]:
        sql, args = _where(
            f"SELECT {self._APPROVAL_COLS} FROM approvals WHERE 1=1",
            ("state = ?", state),
            ("key = ?", key),
        )
        c = self._conn()
        with self._errors("read approvals"):
            rows = c.execute(sql + " ORDER BY created_at DESC", args).fetchall()
        return [self._approval(r) for r in rows]

    def resolve_approval(
        self,
        approval_id: str,
        *,
        approve: bool,
        tokens: int | None,
        by: str,
        note: str,
        now: float,
    ) -> Approval:
        with self._tx("resolve an approval") as c:
            row = c.execute(
                f"SELECT {self._APPROVAL_COLS} FROM approvals WHERE id = ?", (approval_id,)
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"no approval request {approval_id!r}; list them with `llmbudget approvals`"
                )
            a = self._approval(row)
            if a.state == "approved":
                raise InvalidUsage(f"approval request {approval_id!r} was already approved")
            grant = (a.requested if tokens is None else tokens) if approve else 0
            state = "approved" if approve else "denied"
            c.execute(
                "UPDATE approvals SET state = ?, granted = ?, resolved_at = ?, "
                "resolved_by = ?, note = ? WHERE id = ?",
                (state, grant, now, by, note, approval_id),
            )
            if approve:
                c.execute(
                    "INSERT INTO counters (key, budget, window_id, window_end, partition, "
                    "granted) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET granted = granted + excluded.granted",
                    (
                        a.key,
                        a.budget,
                        a.window_id,
                        a.window_end,
                        partition_json(a.partition),
                        grant,
                    ),
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
                a.window_end,
                a.partition,
            )
