"""What to do when the ledger store is down: refuse (``fail_closed``) or allow and journal
(``fail_open``).

:class:`FailoverStore` wraps any :class:`~llmbudget.store.Store`.

``fail_closed``
    every step the store cannot do raises :class:`~llmbudget.StoreUnavailable` naming the
    store URL: no call runs ungoverned.

``fail_open``
    a reserve the store cannot take is *allowed* (no limit is checked: this is the trade-off
    you choose), and every write the store cannot take — the usage of calls reserved during
    the outage, commits and releases of reservations made before it, records, audit events —
    is appended to a local journal file (JSON lines, fsync'ed, ``flock``-ed so several
    processes can share one). When the store answers again (checked at most every
    ``retry_after`` seconds, or on :meth:`FailoverStore.replay`) the journal is replayed in
    order and emptied. Replay relies on the store's idempotency: a call reserved during the
    outage is replayed as ``record(event_id=rid)``, a commit as ``commit(rid)``; both count
    once however often they are replayed, so a replay interrupted half-way is simply run
    again. Nothing is lost, nothing is counted twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from .._errors import ConfigError, ReservationError, StoreUnavailable
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
)
from ..core.samples import EstimateSample
from ._base import Store

__all__ = ["FailoverStore"]

log = logging.getLogger("llmbudget.store.failover")

Mode = Literal["fail_open", "fail_closed"]


def _charge_json(c: Charge) -> dict[str, Any]:
    d = asdict(c)
    d["partition"] = [list(p) for p in c.partition]
    return d


def _charge(d: Mapping[str, Any]) -> Charge:
    return Charge(
        d["key"],
        d["budget"],
        int(d["amount"]),
        d["cap"],
        d["window_id"],
        d["window_end"],
        tuple((str(k), str(v)) for k, v in d["partition"]),
    )


def _usage(d: Mapping[str, Any]) -> Usage:
    return Usage(**d)


def default_journal(url: str) -> Path:
    """A journal file per store URL in the user's data folder."""
    import hashlib

    from platformdirs import user_data_dir

    tag = hashlib.sha1(url.encode()).hexdigest()[:12]
    return Path(user_data_dir("llmbudget")) / f"journal-{tag}.jsonl"


class FailoverStore(Store):
    """``FailoverStore(inner, mode="fail_open", journal=path, retry_after=5.0)``.

    ``inner``: the store, or its URL (opened lazily, so a store that is down at start-up is
    handled like one that goes down later). ``journal``: the fail_open journal file
    (default: one per store URL in the user data folder). ``retry_after``: seconds between
    attempts to reach a store that failed.
    """

    def __init__(
        self,
        inner: Store | str,
        *,
        mode: Mode = "fail_closed",
        journal: str | os.PathLike[str] | None = None,
        retry_after: float = 5.0,
    ) -> None:
        if mode not in ("fail_open", "fail_closed"):
            raise ConfigError(
                f"on_store_failure must be 'fail_open' or 'fail_closed', not {mode!r}"
            )
        self.mode: Mode = mode
        self._inner: Store | None = inner if isinstance(inner, Store) else None
        self._inner_url = inner.url if isinstance(inner, Store) else inner
        self.url = self._inner_url
        self.journal = Path(journal) if journal is not None else default_journal(self.url)
        self.retry_after = retry_after
        self._lock = threading.RLock()
        self._down_since: float | None = None
        self._last_try = 0.0
        # reservations made through this wrapper and not yet settled: rid -> (charges, meta,
        # made locally because the store was down)
        self._held: dict[str, tuple[list[Charge], ReservationMeta, bool]] = {}

    # -- plumbing -------------------------------------------------------------------------------
    @property
    def down(self) -> bool:
        """Whether the last attempt to reach the store failed."""
        return self._down_since is not None

    def _store(self) -> Store:
        if self._inner is None:
            from . import open_store

            self._inner = open_store(self._inner_url)
        return self._inner

    def _failed(self, e: StoreUnavailable) -> None:
        if self._down_since is None:
            self._down_since = time.time()
            log.error("ledger store %s is unavailable (%s): %s", self.url, self.mode, e)
        self._last_try = time.monotonic()

    def _closed_error(self, e: StoreUnavailable, doing: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"ledger store {self.url} is unavailable, so llmbudget refuses to {doing} "
            f"(on_store_failure='fail_closed'): {e}"
        )

    def _attempt(self) -> bool:
        """Whether to try the store now (always, unless it failed under retry_after ago)."""
        if self._down_since is None:
            return True
        return time.monotonic() - self._last_try >= self.retry_after

    def _call(self, doing: str, fn: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(store, ...)``; fail_closed: raise a clear error when the store is down."""
        try:
            out = getattr(self._store(), fn)(*args, **kwargs)
        except StoreUnavailable as e:
            self._failed(e)
            if self.mode == "fail_closed":
                raise self._closed_error(e, doing) from e
            raise
        if self._down_since is not None:
            log.warning("ledger store %s is back", self.url)
            self._down_since = None
            if self.mode == "fail_open":
                self.replay()
        return out

    def _journal(self, entry: Mapping[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":"), default=str) + "\n"
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        with open(self.journal, "a", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def pending(self) -> int:
        """How many journal entries wait for the store."""
        try:
            with open(self.journal, encoding="utf-8") as f:
                return sum(1 for line in f if line.strip())
        except FileNotFoundError:
            return 0

    def replay(self) -> int:
        """Apply the journal to the store, in order, and empty it; return how many entries
        were applied. Raises :class:`StoreUnavailable` (keeping what is left) if the store
        fails again."""
        with self._lock:
            if not self.journal.exists():
                return 0
            with open(self.journal, "r+", encoding="utf-8") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    entries = [json.loads(line) for line in f if line.strip()]
                    done = 0
                    try:
                        store = self._store()
                        for e in entries:
                            self._apply(store, e)
                            done += 1
                    except StoreUnavailable as err:
                        self._failed(err)
                        raise
                    finally:
                        # keep what was not applied (applied entries are idempotent anyway)
                        f.seek(0)
                        f.truncate()
                        for e in entries[done:]:
                            f.write(json.dumps(e, separators=(",", ":"), default=str) + "\n")
                        f.flush()
                        os.fsync(f.fileno())
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
            if done:
                log.warning("replayed %d journalled steps into %s", done, self.url)
            return done

    @staticmethod
    def _apply(store: Store, e: Mapping[str, Any]) -> None:
        op = e["op"]
        if op == "record":
            store.record(
                e["id"],
                [_charge(c) for c in e["charges"]],
                e["labels"],
                _usage(e["usage"]),
                e["now"],
            )
        elif op == "commit":
            try:
                store.commit(e["id"], e["actual"], _usage(e["usage"]), e["now"])
            except ReservationError:
                # the store lost or never had the reservation: keep the usage all the same
                store.record(
                    e["id"],
                    [_charge(c) for c in e["charges"]],
                    e["labels"],
                    _usage(e["usage"]),
                    e["now"],
                )
        elif op == "release":
            with contextlib.suppress(ReservationError):
                store.release(e["id"], e["now"])
        elif op == "audit":
            store.audit(AuditEvent(**e["event"]))
        else:  # pragma: no cover - written by a newer llmbudget
            raise ConfigError(f"journal {e!r}: unknown step {op!r}")

    def _maybe_replay(self) -> None:
        if (
            self.mode == "fail_open"
            and self._attempt()
            and self.journal.exists()
            and self.pending()
        ):
            try:
                self.replay()
                self._down_since = None
            except StoreUnavailable:
                pass

    # -- the atomic steps -------------------------------------------------------------------
    def reserve(
        self,
        rid: str,
        charges: Sequence[Charge],
        meta: ReservationMeta,
        lease_until: float,
        now: float,
    ) -> ReserveOutcome:
        with self._lock:
            self._maybe_replay()
            if self.mode == "fail_open" and not self._attempt():
                return self._allow(rid, charges, meta)
            try:
                out: ReserveOutcome = self._call(
                    "reserve", "reserve", rid, charges, meta, lease_until, now
                )
            except StoreUnavailable:
                if self.mode == "fail_closed":
                    raise
                return self._allow(rid, charges, meta)
            if out.ok:
                self._held[rid] = (list(charges), meta, False)
            return out

    def _allow(
        self,
        rid: str,
        charges: Sequence[Charge],
        meta: ReservationMeta,
    ) -> ReserveOutcome:
        log.warning(
            "ledger store %s is down: allowing reservation %s unchecked "
            "(fail_open); its usage is journalled to %s",
            self.url,
            rid,
            self.journal,
        )
        self._held[rid] = (list(charges), meta, True)
        return ReserveOutcome(
            True,
            tuple(
                CounterState(
                    c.key, c.budget, c.window_id, c.window_end, c.partition, reserved=c.amount
                )
                for c in charges
            ),
        )

    def extend(
        self, rid: str, charges: Sequence[Charge], lease_until: float, now: float
    ) -> ReserveOutcome:
        with self._lock:
            held = self._held.get(rid)
            if held is not None and held[2]:  # a local reservation: nothing to check
                held[0].extend(charges)
                return ReserveOutcome(
                    True,
                    tuple(
                        CounterState(
                            c.key,
                            c.budget,
                            c.window_id,
                            c.window_end,
                            c.partition,
                            reserved=c.amount,
                        )
                        for c in charges
                    ),
                )
            try:
                out: ReserveOutcome = self._call(
                    "extend a reservation", "extend", rid, charges, lease_until, now
                )
            except StoreUnavailable:
                if self.mode == "fail_closed":
                    raise
                return ReserveOutcome(
                    True,
                    tuple(
                        CounterState(
                            c.key,
                            c.budget,
                            c.window_id,
                            c.window_end,
                            c.partition,
                            reserved=c.amount,
                        )
                        for c in charges
                    ),
                )
            if out.ok and held is not None:
                held[0].extend(charges)
            return out

    def commit(
        self, rid: str, actual: Mapping[str, int], usage: Usage, now: float
    ) -> CommitOutcome:
        with self._lock:
            held = self._held.get(rid)
            if held is not None and held[2]:
                # reserved while the store was down: the usage is a record, keyed by rid
                return self._record_local(rid, held, actual, usage, now)
            try:
                out: CommitOutcome = self._call("commit usage", "commit", rid, actual, usage, now)
            except StoreUnavailable:
                if self.mode == "fail_closed":
                    raise
                charges = held[0] if held else []
                labels = dict(held[1].labels) if held else {}
                self._journal(
                    {
                        "op": "commit",
                        "id": rid,
                        "actual": dict(actual),
                        "usage": asdict(usage),
                        "now": now,
                        "labels": labels,
                        "charges": [_charge_json(_as_used(c, actual)) for c in _unique(charges)],
                    }
                )
                self._held.pop(rid, None)
                return CommitOutcome(())
            self._held.pop(rid, None)
            return out

    def _record_local(
        self,
        rid: str,
        held: tuple[list[Charge], ReservationMeta, bool],
        actual: Mapping[str, int],
        usage: Usage,
        now: float,
    ) -> CommitOutcome:
        charges = [_as_used(c, actual) for c in _unique(held[0])]
        labels = dict(held[1].labels)
        self._held.pop(rid, None)
        if self._attempt():
            try:
                out: CommitOutcome = self._call(
                    "record usage", "record", rid, charges, labels, usage, now
                )
                return out
            except StoreUnavailable:
                if self.mode == "fail_closed":
                    raise
                pass
        self._journal(
            {
                "op": "record",
                "id": rid,
                "charges": [_charge_json(c) for c in charges],
                "labels": labels,
                "usage": asdict(usage),
                "now": now,
            }
        )
        return CommitOutcome(())

    def release(self, rid: str, now: float) -> tuple[CounterState, ...]:
        with self._lock:
            held = self._held.pop(rid, None)
            if held is not None and held[2]:
                return ()
            try:
                out: tuple[CounterState, ...] = self._call(
                    "release a reservation", "release", rid, now
                )
                return out
            except StoreUnavailable:
                if self.mode == "fail_closed":
                    raise
                self._journal({"op": "release", "id": rid, "now": now})
                return ()

    def record(
        self,
        event_id: str,
        charges: Sequence[Charge],
        labels: Mapping[str, str],
        usage: Usage,
        now: float,
    ) -> CommitOutcome:
        with self._lock:
            self._maybe_replay()
            if self.mode == "fail_open" and not self._attempt():
                out = CommitOutcome(())
            else:
                try:
                    got: CommitOutcome = self._call(
                        "record usage", "record", event_id, charges, labels, usage, now
                    )
                    return got
                except StoreUnavailable:
                    if self.mode == "fail_closed":
                        raise
                    out = CommitOutcome(())
            self._journal(
                {
                    "op": "record",
                    "id": event_id,
                    "charges": [_charge_json(c) for c in charges],
                    "labels": dict(labels),
                    "usage": asdict(usage),
                    "now": now,
                }
            )
            return out

    def sweep(self, now: float) -> int:
        try:
            n: int = self._call("settle expired reservations", "sweep", now)
            return n
        except StoreUnavailable:
            if self.mode == "fail_closed":
                raise
            return 0

    # -- reading: no fallback (there is nothing true to return) --------------------------------
    def counters(
        self, keys: Sequence[str] | None = None, *, active_at: float | None = None
    ) -> list[CounterState]:
        out: list[CounterState] = self._call("read counters", "counters", keys, active_at=active_at)
        return out

    def events(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Iterable[UsageEvent]:
        out: Iterable[UsageEvent] = self._call(
            "read events", "events", since=since, until=until, labels=labels
        )
        return out

    def estimate_samples(
        self, *, model: str | None = None, operation: str | None = None, limit: int = 1000
    ) -> list[EstimateSample]:
        out: list[EstimateSample] = self._call(
            "read estimate samples",
            "estimate_samples",
            model=model,
            operation=operation,
            limit=limit,
        )
        return out

    def reservation_state(self, rid: str) -> str | None:
        held = self._held.get(rid)
        if held is not None and held[2]:
            return "active"
        out: str | None = self._call("read a reservation", "reservation_state", rid)
        return out

    # -- levels, audit, approvals ---------------------------------------------------------------
    def raise_level(self, key: str, level: int) -> int:
        try:
            prev: int = self._call("record a level", "raise_level", key, level)
            return prev
        except StoreUnavailable:
            if self.mode == "fail_closed":
                raise
            return level  # cannot know: do not announce twice

    def audit(self, event: AuditEvent) -> None:
        try:
            self._call("write an audit event", "audit", event)
        except StoreUnavailable:
            if self.mode == "fail_closed":
                raise
            self._journal({"op": "audit", "event": asdict(event)})

    def audit_events(self, *, kind: str | None = None, limit: int = 100) -> list[AuditEvent]:
        out: list[AuditEvent] = self._call(
            "read audit events", "audit_events", kind=kind, limit=limit
        )
        return out

    def request_approval(self, approval: Approval) -> Approval:
        try:
            out: Approval = self._call("request an approval", "request_approval", approval)
            return out
        except StoreUnavailable:
            if self.mode == "fail_closed":
                raise
            return approval

    def approvals(self, *, state: str | None = None, key: str | None = None) -> list[Approval]:
        out: list[Approval] = self._call("read approvals", "approvals", state=state, key=key)
        return out

    def resolve_approval(
        self, approval_id: str, *, approve: bool, tokens: int | None, by: str, note: str, now: float
    ) -> Approval:
        # a person's decision must reach the ledger: no fallback in either mode
        out: Approval = self._call(
            "resolve an approval",
            "resolve_approval",
            approval_id,
            approve=approve,
            tokens=tokens,
            by=by,
            note=note,
            now=now,
        )
        return out

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()


def _unique(charges: Sequence[Charge]) -> list[Charge]:
    seen: dict[str, Charge] = {}
    for c in charges:
        seen.setdefault(c.key, c)
    return list(seen.values())


def _as_used(c: Charge, actual: Mapping[str, int]) -> Charge:
    return Charge(
        c.key, c.budget, int(actual.get(c.key, 0)), None, c.window_id, c.window_end, c.partition
    )
