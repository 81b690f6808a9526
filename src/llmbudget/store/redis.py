"""The Redis store: one ledger shared by every process on every host that reaches one Redis.

Every atomic step (reserve, extend, commit, release, record, sweep, raise_level, approvals) is
one Lua function, shipped as a package resource (``llmbudget/store/lua/*.lua``): on Redis 7+
all steps are one function library (``FUNCTION LOAD`` once, then ``FCALL``; reloaded if the
server lost it), on older servers each step is a script run by SHA (``EVALSHA``, loaded on
``NOSCRIPT``). Redis runs a function or script whole, with nothing interleaved, so "check
every counter, then apply every charge" is all-or-none across all clients.

URL: ``redis://[:password@]host:6379/0`` (``rediss://`` for TLS, ``unix:///path.sock``) plus
llmbudget's own query options, removed before the URL reaches redis-py:

==============  =========================================================================
``prefix``      key namespace (default ``llmb``): every key is ``{prefix}:…``
``clock``       ``server`` (default: lease expiry on Redis ``TIME``) or ``caller``
``maxlen``      events stream length, approximately trimmed (default 10 000 000)
``retention``   seconds settled reservations and idempotency keys are kept (default 35 days)
``margin``      seconds a windowed counter outlives its window (default 2 days)
``eviction``    ``refuse`` (default) or ``allow`` a ``maxmemory-policy`` that may evict keys
``lua``         ``auto`` (default: a function library on Redis 7+, scripts by SHA before),
                ``functions`` or ``scripts``
``commit``      ``wait`` (default) or ``pipelined``: a commit is written and its reply read
                before the thread's next step (one round trip per governed call instead of
                two; :class:`RedisStore` only, see ``store/_pipelined.py`` and docs/stores.md)
==============  =========================================================================

Key layout (``P`` = prefix; the braces are a Redis Cluster hash tag, so every key of one
ledger hashes to one slot and every script's keys are co-located)::

    {P}:meta               hash: schema version; its absence means keys were lost
    {P}:c:<counter key>    hash: budget window_id window_end partition used reserved granted
                           level borrowed lent closed; PEXPIREAT window_end + margin
    {P}:counters           zset: counter key -> window_end (+inf for lifetime counters)
    {P}:r:<rid>            hash: state keys amts labels ep ec lease at ev; EXPIRE retention once
                           settled
    {P}:leases             zset: active rid -> lease end (on the clock chosen above)
    {P}:e:<id>             string: events-stream id of a settled reservation or record;
                           the idempotency key of commit/record, EXPIRE retention
    {P}:events             stream of usage events, field ``d`` = JSON, MAXLEN ~ maxlen
    {P}:audit              stream of governance events, MAXLEN ~ 100 000
    {P}:a:<id>             hash: one approval request;  {P}:approvals zset id -> created_at
    {P}:ak:<counter key>   string: the latest request id for a counter (dedupe)

:class:`RedisStore` is synchronous: each thread runs its steps on a dedicated connection (see
:class:`_Lanes`), and each script answers with one packed string (``lua/_prelude.lua``).
:class:`AsyncRedisStore` has the same steps as coroutines (the same scripts, arguments and reply
parsing: only the I/O differs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.exceptions as rex

from .._errors import (
    ConfigError,
    InvalidUsage,
    LLMBudgetError,
    NotFound,
    ReservationError,
    SchemaError,
    StoreError,
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
    Transfer,
    Usage,
    UsageEvent,
)
from ..core.samples import EstimateSample
from ._base import SCHEMA_VERSION, Store
from ._codec import parse_partition as _partition
from ._codec import partition_json as _partition_json
from ._pipelined import Held

__all__ = ["AsyncRedisStore", "RedisStore", "redacted"]

log = logging.getLogger("llmbudget.store.redis")

SCRIPTS = (
    "reserve",
    "extend",
    "commit",
    "release",
    "record",
    "sweep",
    "raise_level",
    "request_approval",
    "resolve_approval",
    "counters",
    "close",
)
AUDIT_MAXLEN = 100_000
SWEEP_INTERVAL = 1.0  # seconds between the lease sweeps reserves make (sweep() forces one)
HEALTH_CHECK = 2  # seconds a connection may idle before a step PINGs it first
_OPTIONS = ("prefix", "clock", "maxlen", "retention", "margin", "eviction", "lua", "commit")


def redacted(url: str) -> str:
    """The URL without its password (safe to print)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:  # the redis extra installs hiredis; redis-py's own packer is the fallback
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover
    _hiredis_pack = None


def _pack(conn: Any, cmd: tuple[Any, ...]) -> list[bytes]:
    """A command in the wire format (hiredis directly: redis-py's packer re-checks every
    argument in Python first)."""
    if _hiredis_pack is not None:
        return [_hiredis_pack(cmd)]
    return list(conn.pack_command(*cmd))


_BEGIN = "local __err = begin(ARGV)\nif __err then return __err end\n"


def _load_scripts() -> tuple[dict[str, tuple[str, str]], str, dict[str, str]]:
    """Each step as a script (prelude + body, run by SHA on servers without functions) and
    all of them as one Redis function library, whose name carries its hash (so llmbudget
    versions sharing a server never call each other's code): the scripts, the library
    source, and step -> function name."""
    pkg = resources.files("llmbudget.store") / "lua"
    prelude = (pkg / "_prelude.lua").read_text(encoding="utf-8")
    bodies = {name: (pkg / f"{name}.lua").read_text(encoding="utf-8") for name in SCRIPTS}
    scripts = {}
    for name, body in bodies.items():
        src = prelude + "\n" + _BEGIN + body
        scripts[name] = (src, hashlib.sha1(src.encode()).hexdigest())
    tag = hashlib.sha1("\0".join([prelude, *bodies.values()]).encode()).hexdigest()[:12]
    lib = f"llmb_{tag}"
    functions = {name: f"{lib}_{name}" for name in SCRIPTS}
    parts = [f"#!lua name={lib}\n", prelude, "\n"]
    for name, body in bodies.items():
        parts += [
            f"redis.register_function('{functions[name]}', function(KEYS, ARGV)\n",
            _BEGIN,
            body,
            "\nend)\n",
        ]
    return scripts, "".join(parts), functions


_SCRIPTS, _LIBRARY, _FUNCTIONS = _load_scripts()


# -- the shared, I/O-free half --------------------------------------------------------------


def _num(x: float) -> str:
    if not math.isfinite(x):
        raise InvalidUsage(f"time {x!r} is not a finite number")
    return repr(float(x))


_US = "\x1f"  # the unit separator between the items of a packed reply


def _no_separator(*names: str) -> None:
    for n in names:
        if _US in n:
            raise InvalidUsage(
                f"{n!r}: counter keys, budget names and window ids stored in Redis cannot "
                "contain the control character U+001F"
            )


def _charge_json(c: Charge) -> list[Any]:
    for d in c.borrow:
        if _US in d.key or _US in d.budget or _US in d.window_id:
            _no_separator(d.key, d.budget, d.window_id)
    return [
        c.key,
        c.budget,
        str(int(c.amount)),
        "" if c.cap is None else str(int(c.cap)),
        c.window_id,
        "" if c.window_end is None else _num(c.window_end),
        _partition_json(c.partition),
        [
            [
                d.key,
                d.budget,
                str(int(d.cap)),
                str(int(d.min_reserve)),
                str(int(d.priority)),
                d.window_id,
                "" if d.window_end is None else _num(d.window_end),
                _partition_json(d.partition),
            ]
            for d in c.borrow
        ],
    ]


_MAX_CACHED = 4096
# a charge's JSON around its amount, for the charges without pool donors (the same few
# counters recur on every call): (key, budget, cap, window, end, partition) -> (head, tail)
_CHARGE_PARTS: dict[tuple[Any, ...], tuple[str, str]] = {}


def _charges_json(charges: Sequence[Charge]) -> str:
    """The charges as the steps read them (see lua/_prelude.lua)."""
    out = []
    for c in charges:
        if _US in c.key or _US in c.budget or _US in c.window_id:
            _no_separator(c.key, c.budget, c.window_id)
        if c.borrow:
            out.append(json.dumps(_charge_json(c)))
            continue
        k = (c.key, c.budget, c.cap, c.window_id, c.window_end, c.partition)
        parts = _CHARGE_PARTS.get(k)
        if parts is None:
            whole = _charge_json(c)
            head = json.dumps(whole[:2])[:-1] + ", "  # '["key", "budget", '
            tail = ", " + json.dumps(whole[3:])[1:]  # ', "cap", ..., []]'
            parts = (head, tail)
            if len(_CHARGE_PARTS) >= _MAX_CACHED:  # old windows' counters: start again
                _CHARGE_PARTS.clear()
            _CHARGE_PARTS[k] = parts
        out.append(f'{parts[0]}"{int(c.amount)}"{parts[1]}')
    return "[" + ", ".join(out) + "]"


_LABELS: dict[tuple[tuple[str, str], ...], str] = {}


def _labels_json(labels: Mapping[str, str] | tuple[tuple[str, str], ...]) -> str:
    """Labels as a JSON object with sorted keys (memoised: the same few label sets recur)."""
    key = labels if isinstance(labels, tuple) else tuple(labels.items())
    got = _LABELS.get(key)
    if got is None:
        got = json.dumps(dict(key), sort_keys=True)
        if len(_LABELS) >= _MAX_CACHED:
            _LABELS.clear()
        _LABELS[key] = got
    return got


_KEYS: dict[str, str] = {}


def _actual_json(actual: Mapping[str, int]) -> str:
    """``{counter key: "amount"}`` as JSON (the keys' encodings memoised)."""
    parts = []
    for k, v in actual.items():
        kj = _KEYS.get(k)
        if kj is None:
            kj = json.dumps(k)
            if len(_KEYS) >= _MAX_CACHED:
                _KEYS.clear()
            _KEYS[k] = kj
        parts.append(f'{kj}: "{int(v)}"')
    return "{" + ", ".join(parts) + "}"


def _usage_fragment(u: Usage) -> str:
    cost = "null" if u.cost_micros is None else str(int(u.cost_micros))
    return (
        f'"p":{int(u.prompt_tokens)},"c":{int(u.completion_tokens)},'
        f'"ca":{int(u.cached_tokens)},"re":{int(u.reasoning_tokens)},"cost":{cost}'
    )


def _unpack(raw: str) -> list[str]:
    """A packed reply (items joined by U+001F, see lua/_prelude.lua) as a list."""
    return raw.split(_US)


def _states(a: Sequence[str], start: int, end: int | None = None) -> tuple[CounterState, ...]:
    """The counters packed in ``a[start:end]``, 12 items each."""
    return tuple(
        CounterState(
            a[i],
            a[i + 1],
            a[i + 2],
            float(a[i + 3]) if a[i + 3] else None,
            _partition(a[i + 4]),
            int(a[i + 5]),
            int(a[i + 6]),
            int(a[i + 7]),
            int(a[i + 8]),
            int(a[i + 9]),
            int(a[i + 10]),
            a[i + 11] == "1",
        )
        for i in range(start, len(a) if end is None else end, 12)
    )


def _reserve_outcome(raw: str, charges: Sequence[Charge]) -> ReserveOutcome:
    """Granted: ``'1', n, n transfers (5 items each), the counters after``; refused: ``'0',
    index, the counters as found`` (see lua/_prelude.lua). The counters a step wrote back
    (``touched``) stay on the server: only stores that write back themselves need them."""
    a = _unpack(raw)
    if a[0] == "1":
        n = int(a[1])
        if not n:
            return ReserveOutcome(True, _states(a, 2))
        transfers = tuple(
            Transfer(a[i], a[i + 1], a[i + 2], a[i + 3], int(a[i + 4]))
            for i in range(2, 2 + 5 * n, 5)
        )
        return ReserveOutcome(True, _states(a, 2 + 5 * n), None, transfers)
    return ReserveOutcome(False, _states(a, 2), charges[int(a[1]) - 1].key)


def _closed_keys(raw: str) -> list[str]:
    return _unpack(raw)[1:]


def _commit_outcome(raw: str) -> CommitOutcome:
    a = _unpack(raw)
    return CommitOutcome(_states(a, 1), duplicate=a[0] == "1")


def _event(data: str) -> UsageEvent:
    d = json.loads(data)
    return UsageEvent(
        d["id"],
        float(d["at"]),
        {str(k): str(v) for k, v in d["labels"].items()},
        int(d["p"]),
        int(d["c"]),
        int(d["ca"]),
        int(d["re"]),
        d["cost"],
        d["ep"],
        d["ec"],
        bool(d["s"]),
    )


def _matches(
    e: UsageEvent, since: float | None, until: float | None, labels: Mapping[str, str] | None
) -> bool:
    if since is not None and e.at < since:
        return False
    if until is not None and e.at >= until:
        return False
    return not (labels and any(e.labels.get(k) != v for k, v in labels.items()))


def _sample(e: UsageEvent, model: str | None, operation: str | None) -> EstimateSample | None:
    if not e.settled or e.estimated_completion is None or e.estimated_prompt is None:
        return None
    m, op = e.labels.get("model", ""), e.labels.get("operation", "")
    if (model is not None and m != model) or (operation is not None and op != operation):
        return None
    return EstimateSample(
        m,
        op,
        e.estimated_prompt,
        e.prompt_tokens,
        e.estimated_completion,
        e.completion_tokens,
        e.at,
    )


def _approval(h: Mapping[str, str]) -> Approval:
    return Approval(
        h["id"],
        h["key"],
        h["budget"],
        h["window_id"],
        int(h["requested"]),
        h["state"],
        float(h["created_at"]),
        json.loads(h["labels"]),
        int(h.get("granted", "0")),
        float(h["resolved_at"]) if h.get("resolved_at") else None,
        h.get("resolved_by", ""),
        h.get("note", ""),
        float(h["window_end"]) if h.get("window_end") else None,
        _partition(h.get("partition") or "[]"),
    )


def _approval_fields(a: Approval) -> list[str]:
    fields = {
        "id": a.id,
        "key": a.key,
        "budget": a.budget,
        "window_id": a.window_id,
        "requested": str(int(a.requested)),
        "state": a.state,
        "created_at": _num(a.created_at),
        "labels": json.dumps(a.labels, sort_keys=True),
        "granted": str(int(a.granted)),
        "resolved_at": "" if a.resolved_at is None else _num(a.resolved_at),
        "resolved_by": a.resolved_by,
        "note": a.note,
        "window_end": "" if a.window_end is None else _num(a.window_end),
        "partition": _partition_json(a.partition),
    }
    return [x for kv in fields.items() for x in kv]


def _audit_fields(e: AuditEvent) -> dict[str, str]:
    return {
        "d": json.dumps(
            {
                "at": e.at,
                "kind": e.kind,
                "budget": e.budget,
                "key": e.key,
                "message": e.message,
                "data": e.data,
            },
            default=str,
        )
    }


def _audit_event(data: str) -> AuditEvent:
    d = json.loads(data)
    return AuditEvent(float(d["at"]), d["kind"], d["budget"], d["key"], d["message"], d["data"])


class _Plan:
    """Everything about a Redis ledger that is not I/O: options, key names, arguments."""

    def __init__(self, url: str) -> None:
        self.url = redacted(url)
        try:
            parts = urlsplit(url)
        except ValueError as e:
            raise ConfigError(f"ledger URL {self.url!r} is not a valid URL: {e}") from e
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"ledger URL {self.url!r}: the Redis store needs redis://HOST:PORT/DB, "
                "rediss://… (TLS) or unix:///path/to/redis.sock"
            )
        ours: dict[str, str] = {}
        theirs = []
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            (ours.__setitem__(k, v) if k in _OPTIONS else theirs.append((k, v)))
        self.driver_url = urlunsplit(parts._replace(query=urlencode(theirs)))
        self.prefix = ours.get("prefix", "llmb")
        if not self.prefix or any(c in self.prefix for c in "{}"):
            raise ConfigError(f"ledger URL {self.url!r}: prefix must be non-empty, without braces")
        self.clock = ours.get("clock", "server")
        if self.clock not in ("server", "caller"):
            raise ConfigError(f"ledger URL {self.url!r}: clock must be 'server' or 'caller'")
        self.eviction = ours.get("eviction", "refuse")
        if self.eviction not in ("refuse", "allow"):
            raise ConfigError(f"ledger URL {self.url!r}: eviction must be 'refuse' or 'allow'")
        try:
            self.maxlen = int(ours.get("maxlen", "10000000"))
            self.retention = int(ours.get("retention", str(35 * 86400)))
            self.margin = int(ours.get("margin", str(2 * 86400)))
        except ValueError as e:
            raise ConfigError(
                f"ledger URL {self.url!r}: maxlen, retention and margin are whole numbers"
            ) from e
        self.lua = ours.get("lua", "auto")
        if self.lua not in ("auto", "functions", "scripts"):
            raise ConfigError(
                f"ledger URL {self.url!r}: lua must be 'auto', 'functions' or 'scripts'"
            )
        self.functions = False  # decided on connecting (see no_functions)
        self.commit = ours.get("commit", "wait")
        if self.commit not in ("wait", "pipelined"):
            raise ConfigError(f"ledger URL {self.url!r}: commit must be 'wait' or 'pipelined'")
        self.base = "{" + self.prefix + "}:"
        self._fixed = (self.clock, str(self.maxlen), str(self.retention), str(self.margin))
        self.next_sweep = 0.0
        self.meta = self.base + "meta"

    def sweep_flag(self, now: float) -> str:
        """``'1'`` when a reserve should settle expired leases first: at most once a second
        per store object (``sweep()`` forces one), or when the caller's clock moved back."""
        if now >= self.next_sweep or now < self.next_sweep - 2 * SWEEP_INTERVAL:
            self.next_sweep = now + SWEEP_INTERVAL
            return "1"
        return "0"

    def argv(self, now: float, *rest: str) -> list[str]:
        return [self.base, _num(now), *self._fixed, *rest]

    def check_policy(self, policy: str | None) -> None:
        if policy is None:
            log.warning(
                "cannot read maxmemory-policy of %s (CONFIG is disabled); make sure "
                "it is noeviction, or counters may vanish",
                self.url,
            )
            return
        if policy != "noeviction":
            msg = (
                f"Redis at {self.url} has maxmemory-policy {policy!r}: it may evict "
                "budget counters and reservations, silently allowing spend past limits. "
                "Set `maxmemory-policy noeviction` (CONFIG SET or redis.conf)"
            )
            if self.eviction == "refuse":
                raise ConfigError(msg + ", or add ?eviction=allow to the URL to accept the risk")
            warnings.warn(msg, RuntimeWarning, stacklevel=4)

    def check_meta(self, meta: Mapping[Any, Any]) -> None:
        version = int(meta.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"Redis ledger {self.url} (prefix {self.prefix!r}) has schema version "
                f"{version}, newer than this llmbudget understands ({SCHEMA_VERSION}); "
                "upgrade llmbudget to use it"
            )

    def no_functions(self, error: Exception) -> None:
        """The server would not load the function library (before Redis 7, or an ACL without
        FUNCTION): use scripts, unless the URL asked for functions."""
        if self.lua == "functions":
            raise ConfigError(
                f"Redis at {self.url} cannot load llmbudget's function library ({error}): "
                "it needs Redis 7+ and the FUNCTION command; use ?lua=scripts (or auto)"
            )
        log.info("Redis at %s: no function library (%s); running steps as scripts", self.url, error)

    @contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except rex.ResponseError as e:
            msg = str(e)
            if "LLMB_RESERVATION" in msg:
                raise ReservationError(msg.split("LLMB_RESERVATION ", 1)[1]) from None
            if "LLMB_INUSE" in msg:
                raise ReservationError(msg.split("LLMB_INUSE ", 1)[1]) from None
            if "LLMB_EVICTED" in msg:
                raise StoreError(
                    f"Redis ledger {self.url}: {msg.split('LLMB_EVICTED ', 1)[1]}; refusing "
                    "to guess. Set maxmemory-policy noeviction, then rebuild or reset the "
                    "ledger (a new prefix starts an empty one)"
                ) from None
            if "NOAUTH" in msg or "WRONGPASS" in msg or "NOPERM" in msg:
                raise StoreUnavailable(
                    f"Redis at {self.url} refused the credentials while trying to {doing}: "
                    f"{msg}; put the right user/password in the URL "
                    "(redis://USER:PASSWORD@HOST:PORT/DB)"
                ) from None
            raise StoreUnavailable(f"Redis at {self.url} failed to {doing}: {msg}") from None
        except rex.AuthenticationError as e:
            raise StoreUnavailable(
                f"Redis at {self.url} refused the credentials while trying to {doing}: {e}; "
                "put the right user/password in the URL (redis://USER:PASSWORD@HOST:PORT/DB)"
            ) from None
        except (rex.ConnectionError, rex.TimeoutError, OSError) as e:
            raise StoreUnavailable(
                f"cannot reach Redis at {self.url} to {doing} ({e}); check that the server "
                "runs and the URL's host/port/db are right, or use a failover store "
                "(on_store_failure='fail_open')"
            ) from None
        except rex.RedisError as e:
            raise StoreUnavailable(f"Redis at {self.url} failed to {doing}: {e}") from None


class _Lanes:
    """One dedicated redis-py ``Connection`` per thread (and per process: a forked child
    opens its own), for the atomic steps.

    A step is one ``EVALSHA`` written and read straight on the connection: no pool check-out
    and release, no client-side retry of a step that may already have been applied (a
    connection error surfaces as :class:`~llmbudget.StoreUnavailable`; the next step
    reconnects). A connection idle for more than ``HEALTH_CHECK`` seconds is PINGed first
    (redis-py reconnects if the server restarted meanwhile). Connections are made by the
    client's pool factory, so they carry the URL's credentials, database, TLS and timeouts.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._local = threading.local()
        self._lock = threading.Lock()
        self._mine: list[tuple[int, Any]] = []

    def get(self) -> Any:
        loc = self._local
        conn = getattr(loc, "conn", None)
        pid = os.getpid()
        if conn is None or loc.pid != pid:
            conn = self._client.connection_pool.make_connection()
            loc.conn, loc.pid = conn, pid
            with self._lock:
                self._mine.append((pid, conn))
        return conn

    def peek(self) -> Any:
        """This thread's connection if it has one (no new connection)."""
        loc = self._local
        conn = getattr(loc, "conn", None)
        return conn if conn is not None and loc.pid == os.getpid() else None

    def connections(self) -> list[Any]:
        pid = os.getpid()
        with self._lock:
            return [conn for owner, conn in self._mine if owner == pid]

    def close(self) -> None:
        pid = os.getpid()
        with self._lock:
            mine, self._mine = self._mine, []
        for owner, conn in mine:
            if owner == pid:  # a parent's sockets are not ours to close after a fork
                conn.disconnect()


def _step_command(functions: bool, name: str, keys: list[str], argv: list[str]) -> tuple[Any, ...]:
    if functions:
        return ("FCALL", _FUNCTIONS[name], len(keys), *keys, *argv)
    return ("EVALSHA", _SCRIPTS[name][1], len(keys), *keys, *argv)


def _load_command(functions: bool, name: str, error: Exception) -> tuple[Any, ...] | None:
    """What to send before retrying a step the server did not know (it restarted without
    persistence, or was flushed), or None when ``error`` is something else."""
    if functions:
        if isinstance(error, rex.ResponseError) and "Function not found" in str(error):
            return ("FUNCTION", "LOAD", "REPLACE", _LIBRARY)
        return None
    if isinstance(error, rex.NoScriptError):
        return ("SCRIPT", "LOAD", _SCRIPTS[name][0])
    return None


def _step(conn: Any, functions: bool, name: str, keys: list[str], argv: list[str]) -> Any:
    """One step written and read straight on ``conn``, loading its code if the server lost
    it. A pipelined commit pending on ``conn`` leaves in the same write, ahead of the step,
    and its reply is read first."""
    cmd = _step_command(functions, name, keys, argv)
    pending: _Pending | None = getattr(conn, _PENDING, None)
    if pending is not None and (pending.sock is None or pending.sock is not conn._sock):
        # not written on this connection (refused for now, or the connection was lost
        # since): write it again first, then go on
        _drain(conn)
        pending = None
    if pending is None:
        conn.send_packed_command(_pack(conn, cmd))
        return _answer(conn, functions, name, cmd)
    try:
        conn.send_packed_command(_pack(conn, cmd), check_health=False)
    except (rex.ConnectionError, rex.TimeoutError, OSError):
        # the connection was lost: this step did not reach the server (nothing does on a
        # closed connection); the commit may have. Write the commit again on a new
        # connection, then this step.
        conn.disconnect()
        _drain(conn)
        conn.send_packed_command(_pack(conn, cmd))
        return _answer(conn, functions, name, cmd)
    try:
        _read_commit(conn, pending)
        out = _answer(conn, functions, name, cmd)  # reloads the code too, if it was lost
    except rex.ResponseError:
        raise  # this step's own refusal: the connection is in step
    except BaseException:
        # lost, timed out or interrupted between two replies: whatever is unread must not
        # be read as the next step's reply. The commit, if still pending, is written again.
        conn.disconnect()
        raise
    if getattr(conn, _PENDING, None) is not None:  # refused for now: try once more now
        try:
            _resend_commit(conn, pending)
        except (rex.RedisError, OSError) as e:  # still pending: the next step tries again
            log.warning("pipelined commit of reservation %s still pending: %s", pending.rid, e)
    return out


def _answer(conn: Any, functions: bool, name: str, cmd: tuple[Any, ...]) -> Any:
    try:
        return conn.read_response()
    except rex.ResponseError as e:
        load = _load_command(functions, name, e)
        if load is None:
            raise
    conn.send_packed_command(_pack(conn, load))
    conn.read_response()
    conn.send_packed_command(_pack(conn, cmd))
    return conn.read_response()


# -- pipelined commits (?commit=pipelined; the bookkeeping is in _pipelined.py) ---------------
#
# A commit is queued on the lane's socket and not waited for; a _Pending on the connection
# says so until its reply is read. On Linux TCP it is queued with MSG_MORE, so it leaves in
# one segment with the thread's next step (or by itself after at most ~200 ms, or when
# _drain pushes it): one write and one wake-up of Redis for both. A commit whose reply cannot
# be read (the connection was lost) is written again: commits are idempotent, a repeat
# answers "duplicate".

_PENDING = "_llmbudget_pending"
_MSG_MORE = getattr(socket, "MSG_MORE", 0)


@dataclass(frozen=True, slots=True)
class _Pending:
    rid: str
    cmd: tuple[Any, ...]
    functions: bool
    sock: Any  # the socket it was written to (another socket never saw it)
    corked: bool  # queued with MSG_MORE: may still sit in the kernel until pushed


def _send_commit(conn: Any, functions: bool, rid: str, keys: list[str], argv: list[str]) -> None:
    """Queue a commit on ``conn`` without waiting for its reply."""
    _drain(conn)
    cmd = _step_command(functions, "commit", keys, argv)
    if conn._sock is None:
        conn.connect()
    sock = conn._sock
    cork = bool(
        _MSG_MORE
        and type(sock) is socket.socket
        and sock.family in (socket.AF_INET, socket.AF_INET6)
    )
    setattr(conn, _PENDING, _Pending(rid, cmd, functions, sock, cork))
    if not cork:  # TLS, a unix socket, another OS: written at once
        conn.send_packed_command(_pack(conn, cmd), check_health=False)
        return
    try:
        sock.sendall(b"".join(_pack(conn, cmd)), _MSG_MORE)
    except OSError as e:
        conn.disconnect()
        raise rex.ConnectionError(f"writing to Redis: {e}") from None


# a refusal that writing the commit again cannot change (the rest, e.g. out of memory, a
# replica that is read-only or loading, an ACL, lost step code, may pass on a later try)
_FINAL = ("LLMB_RESERVATION", "LLMB_EVICTED", "LLMB_INUSE")


def _refused(conn: Any, p: _Pending, e: rex.ResponseError) -> bool:
    """A pending commit's refusal: a final one is logged and the commit dropped (True);
    otherwise the commit stays pending, as not written, for the next step to write again."""
    if any(f in str(e) for f in _FINAL):
        setattr(conn, _PENDING, None)
        log.error(
            "Redis refused the pipelined commit of reservation %s: %s; its usage is not in "
            "the ledger",
            p.rid,
            e,
        )
        return True
    setattr(conn, _PENDING, _Pending(p.rid, p.cmd, p.functions, None, False))
    return False


def _read_commit(conn: Any, p: _Pending) -> None:
    """Read a pending commit's reply, with a step already written behind it. A refusal is
    not raised (the step behind it has run and must answer): see :func:`_refused`. A lost
    connection raises, the commit still pending."""
    try:
        conn.read_response()
    except rex.ResponseError as e:
        _refused(conn, p, e)
        return
    except (rex.ConnectionError, rex.TimeoutError, OSError):
        conn.disconnect()
        raise
    setattr(conn, _PENDING, None)


def _resend_commit(conn: Any, p: _Pending) -> None:
    """Write a pending commit again, nothing behind it, and read its reply (loading the step
    code first if the server lost it). Raises when that fails, the commit still pending."""
    unsent = _Pending(p.rid, p.cmd, p.functions, None, False)
    setattr(conn, _PENDING, unsent)
    for attempt in (1, 2):
        conn.send_packed_command(_pack(conn, p.cmd))
        try:
            conn.read_response()
        except rex.ResponseError as e:
            load = _load_command(p.functions, "commit", e)
            if load is not None and attempt == 1:
                conn.send_packed_command(_pack(conn, load))
                conn.read_response()
                continue
            if _refused(conn, unsent, e):
                return
            raise rex.ResponseError(
                f"{e} (writing again the pipelined commit of reservation {p.rid})"
            ) from None
        except (rex.ConnectionError, rex.TimeoutError, OSError):
            conn.disconnect()
            raise
        setattr(conn, _PENDING, None)
        return


def _drain(conn: Any) -> None:
    """Settle the commit pending on ``conn``, if any: push it out and read its reply, or
    write it again if it was refused for now or the connection was lost since (raises if
    that fails too; the commit stays pending for the next step)."""
    p: _Pending | None = getattr(conn, _PENDING, None)
    if p is None:
        return
    if p.sock is not None and p.sock is conn._sock:
        try:
            if p.corked:
                p.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # pushes it out
            conn.read_response()
        except rex.ResponseError as e:
            if _refused(conn, p, e):
                return
        except (rex.ConnectionError, rex.TimeoutError, OSError):
            conn.disconnect()
        except BaseException:
            conn.disconnect()
            raise
        else:
            setattr(conn, _PENDING, None)
            return
    _resend_commit(conn, p)


class RedisStore(Store):
    """The Redis ledger at ``url`` (see the module docstring for the URL options).

    ``client``: an existing ``redis.Redis`` (``decode_responses=True``) to use instead of
    opening one from the URL. Raises :class:`~llmbudget.StoreUnavailable` when the server
    cannot be reached, :class:`~llmbudget.ConfigError` for a bad URL or an evicting server.
    """

    supports_pools = True

    def __init__(
        self, url: str = "redis://127.0.0.1:6379/0", *, client: redis.Redis | None = None
    ) -> None:
        self._plan = _Plan(url)
        self.url = self._plan.url
        self.prefix = self._plan.prefix
        own = client is None
        with self._plan.errors("connect"):
            if client is None:
                try:
                    client = redis.Redis.from_url(
                        self._plan.driver_url,
                        decode_responses=True,
                        socket_connect_timeout=5,
                        socket_timeout=30,
                        health_check_interval=HEALTH_CHECK,
                    )
                except (ValueError, TypeError) as e:
                    raise ConfigError(f"ledger URL {self.url!r}: {e}") from None
            self._r: Any = client  # redis-py types replies loosely; ours are str
            self._lanes = _Lanes(client)
            self._keys = [self._plan.meta]
            # reservations a pipelined commit can answer for without waiting
            self._held: Held | None = Held() if self._plan.commit == "pipelined" else None
            try:
                try:
                    policy = self._r.config_get("maxmemory-policy").get("maxmemory-policy")
                except rex.ResponseError:
                    policy = None
                self._plan.check_policy(policy)
                self._r.hsetnx(self._plan.meta, "schema_version", str(SCHEMA_VERSION))
                self._plan.check_meta(self._r.hgetall(self._plan.meta))
                if self._plan.lua != "scripts":
                    try:
                        self._r.function_load(_LIBRARY, replace=True)
                        self._plan.functions = True
                    except rex.ResponseError as e:
                        self._plan.no_functions(e)
            except BaseException:
                if own:
                    self._r.close()
                raise

    def _run(self, name: str, now: float, *rest: str, doing: str) -> Any:
        with self._plan.errors(doing):
            return _step(
                self._lanes.get(),
                self._plan.functions,
                name,
                self._keys,
                self._plan.argv(now, *rest),
            )

    # -- the atomic steps -------------------------------------------------------------------
    def reserve(
        self,
        rid: str,
        charges: Sequence[Charge],
        meta: ReservationMeta,
        lease_until: float,
        now: float,
    ) -> ReserveOutcome:
        raw = self._run(
            "reserve",
            now,
            rid,
            _charges_json(charges),
            _labels_json(meta.labels),
            str(int(meta.prompt_tokens)),
            str(int(meta.completion_tokens)),
            _num(lease_until),
            self._plan.sweep_flag(now),
            doing="reserve",
        )
        out = _reserve_outcome(raw, charges)
        if self._held is not None and out.ok:
            self._held.reserved(rid, lease_until, charges, out.counters, now)
        return out

    def extend(
        self, rid: str, charges: Sequence[Charge], lease_until: float, now: float
    ) -> ReserveOutcome:
        raw = self._run(
            "extend",
            now,
            rid,
            _charges_json(charges),
            _num(lease_until),
            doing="extend a reservation",
        )
        out = _reserve_outcome(raw, charges)
        if self._held is not None and out.ok:
            self._held.extended(rid, lease_until, charges, out.counters)
        return out

    def commit(
        self, rid: str, actual: Mapping[str, int], usage: Usage, now: float
    ) -> CommitOutcome:
        args = (
            rid,
            _actual_json(actual),
            _usage_fragment(usage),
        )
        after = None if self._held is None else self._held.settle(rid, actual, now)
        if after is None:
            return _commit_outcome(self._run("commit", now, *args, doing="commit usage"))
        with self._plan.errors("commit usage"):
            _send_commit(
                self._lanes.get(),
                self._plan.functions,
                rid,
                self._keys,
                self._plan.argv(now, *args, "1"),  # a quiet reply: only errors matter
            )
        return CommitOutcome(after)

    def release(self, rid: str, now: float) -> tuple[CounterState, ...]:
        if self._held is not None:
            self._held.forget(rid)
        raw = self._run("release", now, rid, doing="release a reservation")
        return _states(_unpack(raw), 1)

    def _settle_pending(self) -> None:
        """Read this thread's pending pipelined commit, so a read on another connection
        sees it."""
        if self._held is not None:
            conn = self._lanes.peek()
            if conn is not None:
                with self._plan.errors("commit usage"):
                    _drain(conn)

    def record(
        self,
        event_id: str,
        charges: Sequence[Charge],
        labels: Mapping[str, str],
        usage: Usage,
        now: float,
    ) -> CommitOutcome:
        raw = self._run(
            "record",
            now,
            event_id,
            _charges_json(charges),
            _labels_json(dict(labels)),
            _usage_fragment(usage),
            doing="record usage",
        )
        return _commit_outcome(raw)

    def sweep(self, now: float) -> int:
        return int(self._run("sweep", now, doing="settle expired reservations"))

    # -- reading ------------------------------------------------------------------------------
    def counters(
        self, keys: Sequence[str] | None = None, *, active_at: float | None = None
    ) -> list[CounterState]:
        if keys is not None:
            args = ("keys", json.dumps(list(keys)))
        else:
            args = ("active", "" if active_at is None else _num(active_at))
        raw = self._run("counters", time.time(), *args, doing="read counters")
        return list(_states(_unpack(raw), 1))

    def _stream(self, name: str, reverse: bool) -> Iterator[str]:
        key = self._plan.base + name
        cursor = "+" if reverse else "-"
        while True:
            with self._plan.errors("read events"):
                if reverse:
                    batch = self._r.xrevrange(key, cursor, "-", count=1000)
                else:
                    batch = self._r.xrange(key, cursor, "+", count=1000)
            if not batch:
                return
            for _, fields in batch:
                yield fields["d"]
            last = batch[-1][0]
            cursor = "(" + last
            if len(batch) < 1000:
                return

    def events(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Iterable[UsageEvent]:
        self._settle_pending()
        evs = [
            e
            for e in map(_event, self._stream("events", False))
            if _matches(e, since, until, labels)
        ]
        evs.sort(key=lambda e: e.at)  # stable: stream order within one instant
        return evs

    def estimate_samples(
        self, *, model: str | None = None, operation: str | None = None, limit: int = 1000
    ) -> list[EstimateSample]:
        self._settle_pending()
        out = []
        for data in self._stream("events", True):
            s = _sample(_event(data), model, operation)
            if s is not None:
                out.append(s)
                if len(out) >= limit:
                    break
        return out

    def reservation_state(self, rid: str) -> str | None:
        self._settle_pending()
        with self._plan.errors("read a reservation"):
            pipe = self._r.pipeline(transaction=False)
            pipe.hget(self._plan.base + "r:" + rid, "state")
            pipe.exists(self._plan.base + "e:" + rid)
            state, settled = pipe.execute()
        if state is not None:
            return str(state)
        return "committed" if settled else None

    # -- levels, audit, approvals ---------------------------------------------------------------
    def close_counters(self, keys: Sequence[str]) -> list[str]:
        raw = self._run(
            "close", time.time(), json.dumps(list(keys)), doing="close counters (a gate)"
        )
        return _closed_keys(raw)

    def raise_level(self, key: str, level: int) -> int:
        return int(
            self._run("raise_level", time.time(), key, str(int(level)), doing="record a level")
        )

    def audit(self, event: AuditEvent) -> None:
        with self._plan.errors("write an audit event"):
            self._r.xadd(
                self._plan.base + "audit",
                _audit_fields(event),
                maxlen=AUDIT_MAXLEN,
                approximate=True,
            )

    def audit_events(self, *, kind: str | None = None, limit: int = 100) -> list[AuditEvent]:
        out = []
        for data in self._stream("audit", True):
            e = _audit_event(data)
            if kind is None or e.kind == kind:
                out.append(e)
                if len(out) >= limit:
                    break
        return out

    def request_approval(self, approval: Approval) -> Approval:
        a = approval
        _no_separator(a.key, a.budget, a.window_id)
        got = self._run(
            "request_approval",
            a.created_at,
            a.id,
            a.key,
            _num(a.created_at),
            *_approval_fields(a),
            doing="request an approval",
        )
        if got == a.id:
            return a
        with self._plan.errors("read an approval"):
            return _approval(self._r.hgetall(self._plan.base + "a:" + str(got)))

    def approvals(self, *, state: str | None = None, key: str | None = None) -> list[Approval]:
        with self._plan.errors("read approvals"):
            ids = self._r.zrevrange(self._plan.base + "approvals", 0, -1)
            pipe = self._r.pipeline(transaction=False)
            for i in ids:
                pipe.hgetall(self._plan.base + "a:" + i)
            rows = pipe.execute()
        return [
            a
            for a in (_approval(h) for h in rows if h)
            if (state is None or a.state == state) and (key is None or a.key == key)
        ]

    def resolve_approval(
        self, approval_id: str, *, approve: bool, tokens: int | None, by: str, note: str, now: float
    ) -> Approval:
        got = self._run(
            "resolve_approval",
            now,
            approval_id,
            "1" if approve else "0",
            "" if tokens is None else str(int(tokens)),
            by,
            note,
            doing="resolve an approval",
        )
        _resolved(got, approval_id)
        with self._plan.errors("read an approval"):
            return _approval(self._r.hgetall(self._plan.base + "a:" + approval_id))

    def close(self) -> None:
        if self._held is not None:
            for conn in self._lanes.connections():
                try:
                    with self._plan.errors("commit usage"):
                        _drain(conn)
                except LLMBudgetError as e:
                    pending = getattr(conn, _PENDING, None)
                    log.error(
                        "Redis at %s: a pipelined commit%s was not confirmed (%s); if it was "
                        "lost, its reservation is settled at its estimate when its lease ends",
                        self.url,
                        f" of reservation {pending.rid}" if pending else "",
                        e,
                    )
        self._lanes.close()
        self._r.close()


def _resolved(got: str, approval_id: str) -> None:
    if got == "notfound":
        raise NotFound(f"no approval request {approval_id!r}; list them with `llmbudget approvals`")
    if got == "approved":
        raise InvalidUsage(f"approval request {approval_id!r} was already approved")


class AsyncRedisStore:
    """The same ledger and steps as :class:`RedisStore`, as coroutines on ``redis.asyncio``.

    Create with ``await AsyncRedisStore.open(url)`` (it checks the server like the sync one).
    """

    #: pools (``Charge.borrow``) and confidence gates (:meth:`close_counters`), as the sync store
    supports_pools = True

    def __init__(
        self, url: str = "redis://127.0.0.1:6379/0", *, client: redis.asyncio.Redis | None = None
    ) -> None:
        self._plan = _Plan(url)
        self.url = self._plan.url
        self.prefix = self._plan.prefix
        if self._plan.commit != "wait":
            raise ConfigError(
                f"ledger URL {self.url!r}: commit=pipelined is for RedisStore (synchronous); "
                "AsyncRedisStore commits with commit=wait"
            )
        if client is None:
            try:
                client = redis.asyncio.Redis.from_url(
                    self._plan.driver_url,
                    decode_responses=True,
                    socket_connect_timeout=5,
                    socket_timeout=30,
                    health_check_interval=HEALTH_CHECK,
                )
            except (ValueError, TypeError) as e:
                raise ConfigError(f"ledger URL {self.url!r}: {e}") from None
        self._r: Any = client

    @classmethod
    async def open(
        cls, url: str = "redis://127.0.0.1:6379/0", *, client: redis.asyncio.Redis | None = None
    ) -> AsyncRedisStore:
        self = cls(url, client=client)
        try:
            with self._plan.errors("connect"):
                try:
                    got = await self._r.config_get("maxmemory-policy")
                    policy = got.get("maxmemory-policy")
                except rex.ResponseError:
                    policy = None
                self._plan.check_policy(policy)
                await self._r.hsetnx(self._plan.meta, "schema_version", str(SCHEMA_VERSION))
                self._plan.check_meta(await self._r.hgetall(self._plan.meta))
                if self._plan.lua != "scripts":
                    try:
                        await self._r.function_load(_LIBRARY, replace=True)
                        self._plan.functions = True
                    except rex.ResponseError as e:
                        self._plan.no_functions(e)
        except BaseException:
            if client is None:  # ours to close
                await self._r.aclose()
            raise
        return self

    async def _run(self, name: str, now: float, *rest: str, doing: str) -> Any:
        """One step on a pooled connection, written and read directly (as the sync store
        does: no client-side retry of a step that may already have been applied)."""
        functions = self._plan.functions
        keys, argv = [self._plan.meta], self._plan.argv(now, *rest)
        cmd = _step_command(functions, name, keys, argv)
        with self._plan.errors(doing):
            pool = self._r.connection_pool
            conn = await pool.get_connection()
            try:
                await conn.send_packed_command(conn.pack_command(*cmd))
                try:
                    return await conn.read_response()
                except rex.ResponseError as e:
                    load = _load_command(functions, name, e)
                    if load is None:
                        raise
                await conn.send_packed_command(conn.pack_command(*load))
                await conn.read_response()
                await conn.send_packed_command(conn.pack_command(*cmd))
                return await conn.read_response()
            finally:
                await pool.release(conn)

    async def reserve(
        self,
        rid: str,
        charges: Sequence[Charge],
        meta: ReservationMeta,
        lease_until: float,
        now: float,
    ) -> ReserveOutcome:
        raw = await self._run(
            "reserve",
            now,
            rid,
            _charges_json(charges),
            _labels_json(meta.labels),
            str(int(meta.prompt_tokens)),
            str(int(meta.completion_tokens)),
            _num(lease_until),
            self._plan.sweep_flag(now),
            doing="reserve",
        )
        return _reserve_outcome(raw, charges)

    async def extend(
        self, rid: str, charges: Sequence[Charge], lease_until: float, now: float
    ) -> ReserveOutcome:
        raw = await self._run(
            "extend",
            now,
            rid,
            _charges_json(charges),
            _num(lease_until),
            doing="extend a reservation",
        )
        return _reserve_outcome(raw, charges)

    async def commit(
        self, rid: str, actual: Mapping[str, int], usage: Usage, now: float
    ) -> CommitOutcome:
        raw = await self._run(
            "commit",
            now,
            rid,
            _actual_json(actual),
            _usage_fragment(usage),
            doing="commit usage",
        )
        return _commit_outcome(raw)

    async def release(self, rid: str, now: float) -> tuple[CounterState, ...]:
        raw = await self._run("release", now, rid, doing="release a reservation")
        return _states(_unpack(raw), 1)

    async def record(
        self,
        event_id: str,
        charges: Sequence[Charge],
        labels: Mapping[str, str],
        usage: Usage,
        now: float,
    ) -> CommitOutcome:
        raw = await self._run(
            "record",
            now,
            event_id,
            _charges_json(charges),
            _labels_json(dict(labels)),
            _usage_fragment(usage),
            doing="record usage",
        )
        return _commit_outcome(raw)

    async def sweep(self, now: float) -> int:
        return int(await self._run("sweep", now, doing="settle expired reservations"))

    async def counters(
        self, keys: Sequence[str] | None = None, *, active_at: float | None = None
    ) -> list[CounterState]:
        if keys is not None:
            args = ("keys", json.dumps(list(keys)))
        else:
            args = ("active", "" if active_at is None else _num(active_at))
        raw = await self._run("counters", time.time(), *args, doing="read counters")
        return list(_states(_unpack(raw), 1))

    async def _stream(self, name: str, reverse: bool) -> list[str]:
        key = self._plan.base + name
        cursor = "+" if reverse else "-"
        out: list[str] = []
        while True:
            with self._plan.errors("read events"):
                if reverse:
                    batch = await self._r.xrevrange(key, cursor, "-", count=1000)
                else:
                    batch = await self._r.xrange(key, cursor, "+", count=1000)
            out.extend(fields["d"] for _, fields in batch)
            if len(batch) < 1000:
                return out
            cursor = "(" + batch[-1][0]

    async def events(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[UsageEvent]:
        evs = [
            e
            for e in map(_event, await self._stream("events", False))
            if _matches(e, since, until, labels)
        ]
        evs.sort(key=lambda e: e.at)  # stable: stream order within one instant
        return evs

    async def estimate_samples(
        self, *, model: str | None = None, operation: str | None = None, limit: int = 1000
    ) -> list[EstimateSample]:
        out = []
        for data in await self._stream("events", True):
            s = _sample(_event(data), model, operation)
            if s is not None:
                out.append(s)
                if len(out) >= limit:
                    break
        return out

    async def reservation_state(self, rid: str) -> str | None:
        with self._plan.errors("read a reservation"):
            pipe = self._r.pipeline(transaction=False)
            pipe.hget(self._plan.base + "r:" + rid, "state")
            pipe.exists(self._plan.base + "e:" + rid)
            state, settled = await pipe.execute()
        if state is not None:
            return str(state)
        return "committed" if settled else None

    async def audit(self, event: AuditEvent) -> None:
        with self._plan.errors("write an audit event"):
            await self._r.xadd(
                self._plan.base + "audit",
                _audit_fields(event),
                maxlen=AUDIT_MAXLEN,
                approximate=True,
            )

    async def audit_events(self, *, kind: str | None = None, limit: int = 100) -> list[AuditEvent]:
        out = []
        for data in await self._stream("audit", True):
            e = _audit_event(data)
            if kind is None or e.kind == kind:
                out.append(e)
                if len(out) >= limit:
                    break
        return out

    async def request_approval(self, approval: Approval) -> Approval:
        a = approval
        _no_separator(a.key, a.budget, a.window_id)
        got = await self._run(
            "request_approval",
            a.created_at,
            a.id,
            a.key,
            _num(a.created_at),
            *_approval_fields(a),
            doing="request an approval",
        )
        if got == a.id:
            return a
        with self._plan.errors("read an approval"):
            return _approval(await self._r.hgetall(self._plan.base + "a:" + str(got)))

    async def approvals(
        self, *, state: str | None = None, key: str | None = None
    ) -> list[Approval]:
        with self._plan.errors("read approvals"):
            ids = await self._r.zrevrange(self._plan.base + "approvals", 0, -1)
            pipe = self._r.pipeline(transaction=False)
            for i in ids:
                pipe.hgetall(self._plan.base + "a:" + i)
            rows = await pipe.execute() if ids else []
        return [
            a
            for a in (_approval(h) for h in rows if h)
            if (state is None or a.state == state) and (key is None or a.key == key)
        ]

    async def close_counters(self, keys: Sequence[str]) -> list[str]:
        """Close these counters for the rest of their window (a confidence gate); return the
        keys that were open until now."""
        raw = await self._run(
            "close", time.time(), json.dumps(list(keys)), doing="close counters (a gate)"
        )
        return _closed_keys(raw)

    async def raise_level(self, key: str, level: int) -> int:
        return int(
            await self._run(
                "raise_level", time.time(), key, str(int(level)), doing="record a level"
            )
        )

    async def resolve_approval(
        self, approval_id: str, *, approve: bool, tokens: int | None, by: str, note: str, now: float
    ) -> Approval:
        got = await self._run(
            "resolve_approval",
            now,
            approval_id,
            "1" if approve else "0",
            "" if tokens is None else str(int(tokens)),
            by,
            note,
            doing="resolve an approval",
        )
        _resolved(got, approval_id)
        with self._plan.errors("read an approval"):
            return _approval(await self._r.hgetall(self._plan.base + "a:" + approval_id))

    async def aclose(self) -> None:
        """Release the connections; the store is unusable afterwards."""
        await self._r.aclose()

    async def __aenter__(self) -> AsyncRedisStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
