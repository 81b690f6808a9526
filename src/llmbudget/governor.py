"""The public face: :class:`Governor` reserves, extends, commits and releases against every
budget that applies to a call, and announces levels as they are reached.

>>> from llmbudget import Governor
>>> gov = Governor({"budgets": [{"name": "per-run", "per": ["run"], "limit": 1000}]},
...                store="memory://")
>>> with gov.reserve(model="gpt-4o", prompt_tokens=120, max_completion_tokens=200) as r:
...     _ = r.commit(prompt_tokens=120, completion_tokens=80)
>>> gov.status()[0].used
200
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import math
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

from ._clock import Clock, SystemClock
from ._errors import (
    ApprovalDenied,
    ApprovalRequired,
    BudgetExceeded,
    ConfidenceReached,
    ConfigError,
    InvalidUsage,
    UnknownModel,
)
from ._reservation import Reservation
from .core.decide import (
    Amounts,
    BudgetCheck,
    Decision,
    DeferredDecision,
    Planner,
    Target,
    charges,
    evaluate,
    quiet,
)
from .core.ledger import Approval, AuditEvent, ReservationMeta, Usage, apply_reserve
from .core.policy import LABEL_NAME, Action, Policy, Unit
from .core.windows import Window
from .store import Store, open_store

__all__ = ["CounterStatus", "Governor"]

log = logging.getLogger("llmbudget")
P = ParamSpec("P")
R = TypeVar("R")
MAX_TOKENS_PER_CALL = 10**12
EventSink = Callable[[AuditEvent], None]


def check_tokens(name: str, value: object) -> int:
    """``value`` as a token count, or :class:`InvalidUsage` naming ``name``."""
    if type(value) is int and 0 <= value <= MAX_TOKENS_PER_CALL:  # the usual case
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidUsage(f"{name} must be a whole number of tokens, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise InvalidUsage(f"{name} must be a whole number of tokens, got {value!r}")
        value = int(value)
    if value < 0:
        raise InvalidUsage(f"{name} must not be negative, got {value:,}")
    if value > MAX_TOKENS_PER_CALL:
        raise InvalidUsage(
            f"{name}={value:,} is beyond any real call (max {MAX_TOKENS_PER_CALL:,})"
        )
    return value


def check_usage(
    prompt_tokens: object,
    completion_tokens: object,
    cached_tokens: object = 0,
    reasoning_tokens: object = 0,
) -> tuple[int, int, int, int]:
    """Validated usage counts: each a token count, cached within the prompt and reasoning
    within the completion (as providers report them)."""
    p = check_tokens("prompt_tokens", prompt_tokens)
    c = check_tokens("completion_tokens", completion_tokens)
    cached = check_tokens("cached_tokens", cached_tokens)
    reasoning = check_tokens("reasoning_tokens", reasoning_tokens)
    if cached > p:
        raise InvalidUsage(f"cached_tokens ({cached:,}) cannot exceed prompt_tokens ({p:,})")
    if reasoning > c:
        raise InvalidUsage(
            f"reasoning_tokens ({reasoning:,}) cannot exceed completion_tokens ({c:,})"
        )
    return p, c, cached, reasoning


_GOOD_KEYS: set[str] = set()


def check_labels(labels: Mapping[str, object]) -> dict[str, str]:
    """Labels as ``str -> str``, or :class:`InvalidUsage` naming the bad one."""
    out = {}
    for k, v in labels.items():
        if k not in _GOOD_KEYS:
            if not LABEL_NAME.match(k):
                raise InvalidUsage(f"label name {k!r}: use lowercase letters, digits and '_'")
            _GOOD_KEYS.add(k)
        if not isinstance(v, str) or not v or len(v) > 256:
            raise InvalidUsage(f"label {k}={v!r}: values are non-empty strings (max 256 chars)")
        out[k] = v
    return out


@dataclass(frozen=True, slots=True)
class CounterStatus:
    """One counter in :meth:`Governor.status`: which budget, partition and window, how much is
    used, reserved and granted, the limit (with approvals and pool transfers), the level
    reached, when it resets, what it borrowed from or lent to its pool, and whether a
    confidence gate closed it."""

    budget: str
    key: str
    partition: dict[str, str]
    window: str
    unit: str
    used: int
    reserved: int
    granted: int
    limit: int
    level: str
    action: str
    resets_at: datetime | None
    borrowed: int = 0
    lent: int = 0
    closed: bool = False

    @property
    def percent(self) -> float:
        """(used + reserved) as a percentage of the limit (with grants)."""
        return 100.0 * (self.used + self.reserved) / max(1, self.limit)

    @property
    def remaining(self) -> int:
        """What could still be reserved (never negative)."""
        return max(0, self.limit - self.used - self.reserved)


class Governor:
    """Governs LLM calls against a policy, with a ledger store.

    ``policy``: a :class:`~llmbudget.core.policy.Policy`, a mapping shaped like the policy
    file, or a path to a YAML policy file. ``store``: a :class:`~llmbudget.store.Store` or a
    URL (default: ``$LLMBUDGET_LEDGER`` or the SQLite file in the user data folder).
    ``labels``: defaults for every call; a ``run`` label is generated when not given, so
    ``per: [run]`` budgets count this process's run. ``clock``: anything with ``now()``.
    ``on_event``: called with every governance event (levels reached, approvals);
    ``log_events``: also log them to the ``llmbudget`` logger (warn as WARNING, alert/flag as
    ERROR). ``on_store_failure``: ``fail_closed`` (default: an unreachable ledger refuses
    with :class:`~llmbudget.StoreUnavailable` naming it) or ``fail_open`` (allow, journal
    usage to ``journal`` — default a file in the user data folder — and replay it into the
    store when it is back; nothing lost, nothing counted twice). See ``docs/stores.md``.
    """

    def __init__(
        self,
        policy: Policy | Mapping[str, Any] | str | os.PathLike[str],
        store: Store | str | os.PathLike[str] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        on_event: EventSink | Sequence[EventSink] = (),
        log_events: bool = True,
        on_store_failure: str = "fail_closed",
        journal: str | os.PathLike[str] | None = None,
    ) -> None:
        self.policy = _as_policy(policy)
        try:
            self.tz = ZoneInfo(self.policy.timezone)
        except (KeyError, ValueError) as e:
            raise ConfigError(
                f"{self.policy.source}: timezone {self.policy.timezone!r} is not an IANA zone "
                "name (e.g. UTC, Europe/Paris)"
            ) from e
        if on_store_failure not in ("fail_closed", "fail_open"):
            raise ConfigError(
                f"on_store_failure={on_store_failure!r}: expected 'fail_closed' (refuse when "
                "the ledger is unreachable) or 'fail_open' (allow, journal, replay later)"
            )
        if on_store_failure == "fail_open" or journal is not None:
            from .store._failover import FailoverStore

            self.store: Store = FailoverStore(
                store if isinstance(store, Store) else os.fspath(store or _default_url()),
                mode="fail_open" if on_store_failure == "fail_open" else "fail_closed",
                journal=journal,
            )
        else:
            self.store = store if isinstance(store, Store) else open_store(store)
        self.clock: Clock = clock or SystemClock()
        self.labels = check_labels({"run": uuid.uuid4().hex[:12], **(labels or {})})
        self._sinks: list[EventSink] = [on_event] if callable(on_event) else list(on_event)
        self._log_events = log_events
        self._prices: dict[str, Any] = {}
        self._estimates: dict[tuple[str, str], tuple[float, int]] = {}
        self._planner = Planner(self.policy, self.tz)
        needs = [
            b.name
            for b in self.policy.budgets
            if b.pool is not None or b.confidence_threshold is not None
        ]
        if needs and not _supports_pools(self.store):
            raise ConfigError(
                f"{self.policy.source}: budgets {', '.join(needs)} use pools or confidence "
                f"gates, which the {type(self.store).__name__} store ({self.store.url}) does "
                "not implement yet; use the memory or SQLite store for this policy"
            )
        self._ids = itertools.count()
        self._id_prefix = uuid.uuid4().hex[:16]

    # -- helpers ------------------------------------------------------------------------------
    def _labels(self, labels: Mapping[str, object]) -> dict[str, str]:
        return {**self.labels, **check_labels(labels)}

    def _cost(
        self, labels: Mapping[str, str], prompt: int, completion: int, cached: int = 0
    ) -> int | None:
        """USD cost in micro-dollars, or ``None`` when the model has no known price."""
        from .core.decide import cost_micros

        model = labels.get("model")
        if not model:
            return None
        if model not in self._prices:
            from .tokens import price_for

            try:
                self._prices[model] = price_for(model, self.policy.prices)
            except LookupError:
                self._prices[model] = None
        p = self._prices[model]
        if p is None:
            return None
        return cost_micros(prompt, completion, p.input, p.output, cached, p.cached_input)

    def _amounts(
        self,
        tgts: Sequence[Target],
        labels: Mapping[str, str],
        prompt: int,
        completion: int,
        cached: int = 0,
        *,
        settle: bool = False,
    ) -> Amounts:
        """The call's amounts; its cost is priced only when a ``usd`` budget needs it or the
        usage is being settled (the ledger keeps every event's cost)."""
        needs_usd = any(t.budget.unit is Unit.USD for t in tgts)
        cost = self._cost(labels, prompt, completion, cached) if needs_usd or settle else None
        if cost is None and needs_usd:
            t = next(t for t in tgts if t.budget.unit is Unit.USD)
            raise UnknownModel(
                f"budget {t.budget.name!r} counts USD but model "
                f"{labels.get('model', '(no model label)')!r} has no known price; add it "
                f"under `prices:` in {self.policy.source}"
            )
        return Amounts(prompt, completion, cost)

    def emit(self, event: AuditEvent) -> None:
        """Record a governance event in the ledger and hand it to every sink."""
        self.store.audit(event)
        for sink in self._sinks:
            sink(event)

    def _announce(self, decision: Decision, labels: Mapping[str, str], now: float) -> None:
        for c in decision.announcements:
            if self.store.raise_level(c.key, c.level_index) >= c.level_index:
                continue  # another caller announced it first
            kind = "would_block" if c.action.refuses else c.action.value
            if kind == "continue":
                continue
            msg = f"{kind}: {c.describe()}"
            if self._log_events:
                (log.error if kind in ("alert", "flag", "would_block") else log.warning)(msg)
            self.emit(
                AuditEvent(
                    now,
                    kind,
                    c.budget.name,
                    c.key,
                    msg,
                    {
                        "labels": dict(labels),
                        "used": c.used,
                        "reserved": c.reserved,
                        "limit": c.limit,
                    },
                )
            )

    def _refuse(self, decision: Decision, labels: Mapping[str, str], now: datetime) -> None:
        c = decision.refusing
        if c is None:  # the store refused a counter no check names: never silently allow
            raise BudgetExceeded(
                f"refused by the ledger: {decision.reason}",
                budget="?",
                window="?",
                limit=0,
                used=0,
                reserved=0,
                requested=0,
                resets_at=None,
                decision=decision,
            )
        fields: dict[str, Any] = {
            "budget": c.budget.name,
            "window": c.window.id,
            "limit": c.limit,
            "used": c.used,
            "reserved": c.reserved,
            "requested": c.requested,
            "resets_at": c.window.resets_at,
            "unit": c.budget.unit.value,
            "decision": decision,
        }
        where = f"budget {c.budget.name!r} ({c.window.id})"
        if c.budget.confidence_threshold is not None and self._closed(c.key):
            part = ",".join(f"{k}={v}" for k, v in c.partition) or "all calls"
            raise ConfidenceReached(
                f"{where} is closed for {part}: a result at or above its confidence "
                f"threshold ({c.budget.confidence_threshold}) was already committed, so no "
                "more tokens are spent on it",
                suggestion="Use the confident result; a new run (or window) starts open",
                **fields,
            )
        if c.action is Action.APPROVE:
            proposed = uuid.uuid4().hex[:10]
            approval = self.store.request_approval(
                Approval(
                    proposed,
                    c.key,
                    c.budget.name,
                    c.window.id,
                    c.requested,
                    "pending",
                    now.timestamp(),
                    dict(labels),
                    window_end=c.window.end.timestamp() if c.window.end else None,
                    partition=c.partition,
                )
            )
            if approval.state == "denied":
                raise ApprovalDenied(
                    f"{where} needs approval and request {approval.id} was denied",
                    request_id=approval.id,
                    suggestion=self._suggest(c, denied=True),
                    **fields,
                )
            if approval.id == proposed:  # a new request, not one already pending
                self.emit(
                    AuditEvent(
                        now.timestamp(),
                        "approval_requested",
                        c.budget.name,
                        c.key,
                        f"approval {approval.id} requested: {c.describe()}",
                        {"approval": approval.id, "labels": dict(labels)},
                    )
                )
            raise ApprovalRequired(
                f"{where} needs a person's approval for {c.requested:,} more "
                f"{c.budget.unit.value}: {c.describe()}",
                request_id=approval.id,
                suggestion=f"Approve with `llmbudget approve {approval.id}` "
                f"(or deny with `llmbudget deny {approval.id}`), then retry",
                **fields,
            )
        raise BudgetExceeded(
            f"{where} would pass its limit: {c.used:,} used + {c.reserved:,} reserved + "
            f"{c.requested:,} requested > {c.limit:,} {c.budget.unit.value}",
            suggestion=self._suggest(c),
            **fields,
        )

    def _closed(self, key: str) -> bool:
        found = self.store.counters([key])
        return bool(found and found[0].closed)

    def _gate(
        self, targets: Sequence[Target], confidence: float, labels: Mapping[str, str], now: float
    ) -> None:
        """Close every counter whose budget's confidence threshold ``confidence`` reaches."""
        keys = [
            t.key
            for t in targets
            if t.budget.confidence_threshold is not None
            and confidence >= t.budget.confidence_threshold
        ]
        if not keys:
            return
        for key in self.store.close_counters(keys):
            t = next(t for t in targets if t.key == key)
            self.emit(
                AuditEvent(
                    now,
                    "confidence_gate",
                    t.budget.name,
                    key,
                    f"confidence_gate: {t.budget.name} closed at confidence {confidence:g} "
                    f"(threshold {t.budget.confidence_threshold:g})",
                    {"confidence": confidence, "labels": dict(labels)},
                )
            )

    def _suggest(self, c: BudgetCheck, denied: bool = False) -> str:
        i = self.policy.budgets.index(c.budget)
        raise_it = f"raise budgets[{i}].limit ('{c.budget.name}') in {self.policy.source}"
        if c.requested > c.limit:
            return (
                f"This call alone needs {c.requested:,}, more than the whole limit: lower "
                f"max_tokens or {raise_it}"
            )
        if c.window.window is Window.RUN:
            return f"This budget never resets: {raise_it}" + (
                "" if denied else ", or start a new run"
            )
        when = (
            c.window.resets_at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M %Z")
            if c.window.resets_at
            else "?"
        )
        return f"It resets at {when}; or {raise_it}"

    # -- the protocol -------------------------------------------------------------------------
    def reserve(
        self,
        *,
        prompt_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        lease_seconds: float | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        text: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **labels: str,
    ) -> Reservation:
        """Reserve ``prompt_tokens + max_completion_tokens`` against every matching budget,
        atomically (all or none). Raises :class:`BudgetExceeded` (or
        :class:`ApprovalRequired`) when a budget refuses. Use the result as a context
        manager (``with`` or ``async with``) and call ``.commit(...)`` with the actuals.
        Without ``max_completion_tokens``, a call with a ``model`` label reserves the
        completion learned from history (:meth:`completion_estimate`), else the policy's
        ``default_completion_tokens``. Instead of ``prompt_tokens``, pass ``messages`` (and
        ``tools``) or ``text`` with a ``model`` label: the prompt is then counted with that
        model's tokenizer, and :meth:`Reservation.commit` warns once per model when the
        provider's prompt count differs from ours (a tokenizer mismatch)."""
        lab = self._labels(labels)
        counted = prompt_tokens is None
        if counted:
            if "model" not in lab or (messages is None and text is None):
                raise InvalidUsage(
                    "reserve() needs prompt_tokens=N, or messages=/text= with a model= label "
                    "to count them"
                )
            prompt = self.count_prompt(lab["model"], messages=messages, text=text, tools=tools)
        else:
            prompt = check_tokens("prompt_tokens", prompt_tokens)
        if max_completion_tokens is not None:
            completion = check_tokens("max_completion_tokens", max_completion_tokens)
        elif "model" in lab:
            completion = self.completion_estimate(lab["model"], lab.get("operation", ""))
        else:
            completion = self.policy.default_completion_tokens
        now = self.clock.now()
        tgts = self._planner.targets(lab, now)
        chs = charges(self.policy, tgts, self._amounts(tgts, lab, prompt, completion))
        rid = f"{self._id_prefix}{next(self._ids):x}"
        lease = self.policy.lease_seconds if lease_seconds is None else lease_seconds
        if (
            isinstance(lease, bool)
            or not isinstance(lease, int | float)
            or not 0 < lease <= 7 * 86400  # NaN fails this too
        ):
            raise InvalidUsage(
                f"lease_seconds must be a number of seconds above 0 and at most 7 days, "
                f"got {lease_seconds!r}"
            )
        out = self.store.reserve(
            rid,
            chs,
            ReservationMeta(tuple(lab.items()), prompt, completion),
            now.timestamp() + lease,
            now.timestamp(),
        )
        requested = [c.amount for c in chs]
        for tr in out.transfers:
            self.emit(
                AuditEvent(
                    now.timestamp(),
                    "transfer",
                    tr.to_budget,
                    tr.to,
                    f"transfer: {tr.amount:,} from {tr.donor_budget} to {tr.to_budget}",
                    {
                        "donor": tr.donor,
                        "donor_budget": tr.donor_budget,
                        "amount": tr.amount,
                        "labels": dict(lab),
                    },
                )
            )
        if out.ok and quiet(tgts, out.counters):  # nothing to announce: decide lazily
            states = out.counters
            return Reservation(
                self,
                rid,
                lab,
                tgts,
                prompt,
                completion,
                lambda: evaluate(self.policy, tgts, requested, states, applied=True),
                lease,
                counted=counted,
            )
        decision = evaluate(
            self.policy, tgts, requested, out.counters, applied=out.ok, refused_key=out.refused
        )
        if not out.ok:
            self._refuse(decision, lab, now)
        self._announce(decision, lab, now.timestamp())
        return Reservation(
            self, rid, lab, tgts, prompt, completion, decision, lease, counted=counted
        )

    async def areserve(self, **kwargs: Any) -> Reservation:
        """:meth:`reserve` run in a worker thread, for event loops (a reservation that lands
        after the awaiting task was cancelled is released, not leaked)."""
        from ._reservation import reserve_off_loop

        return await reserve_off_loop(lambda: self.reserve(**kwargs))

    def record(
        self,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
        idempotency_key: str | None = None,
        **labels: str,
    ) -> Decision:
        """Record usage that already happened (never refused: it is spent). Recording the same
        ``idempotency_key`` twice counts it once. Returns where every budget now stands."""
        prompt, completion, cached, reasoning = check_usage(
            prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens
        )
        lab = self._labels(labels)
        now = self.clock.now()
        tgts = self._planner.targets(lab, now)
        cost = self._cost(lab, prompt, completion, cached)
        unpriced = [t for t in tgts if t.budget.unit is Unit.USD] if cost is None else []
        if unpriced:  # spent all the same: count the tokens, say what could not be priced
            tgts = [t for t in tgts if t.budget.unit is not Unit.USD]
            msg = (
                f"unpriced: model {lab.get('model', '(no model label)')!r} has no known price, "
                f"so usd budgets {', '.join(t.budget.name for t in unpriced)} were not charged; "
                f"add it under `prices:` in {self.policy.source}"
            )
            log.warning(msg)
            self.emit(
                AuditEvent(
                    now.timestamp(),
                    "unpriced",
                    unpriced[0].budget.name,
                    unpriced[0].key,
                    msg,
                    {"labels": dict(lab)},
                )
            )
        amounts = Amounts(prompt, completion, cost)
        chs = charges(self.policy, tgts, amounts, enforce=False)
        usage = Usage(prompt, completion, cached, reasoning, amounts.cost_micros)
        out = self.store.record(
            idempotency_key or f"{self._id_prefix}{next(self._ids):x}",
            chs,
            lab,
            usage,
            now.timestamp(),
        )
        return self._settled(tgts, out.counters, lab, now.timestamp())

    def _settled(
        self, tgts: Sequence[Target], counters: Sequence[Any], labels: Mapping[str, str], now: float
    ) -> Decision:
        by_key = {c.key: c for c in counters}
        states = [by_key.get(t.key) for t in tgts]
        if quiet(tgts, states):  # nothing to announce: work the decision out if it is read
            policy = self.policy
            return DeferredDecision(
                lambda: evaluate(policy, tgts, [0] * len(tgts), states, applied=True)
            )
        decision = evaluate(self.policy, tgts, [0] * len(tgts), states, applied=True)
        self._announce(decision, labels, now)
        return decision

    def check(
        self, *, prompt_tokens: int, max_completion_tokens: int | None = None, **labels: str
    ) -> Decision:
        """Would a call with these labels and tokens be allowed right now? Changes nothing
        (a dry run: no reservation, no approval request)."""
        prompt = check_tokens("prompt_tokens", prompt_tokens)
        completion = check_tokens(
            "max_completion_tokens",
            self.policy.default_completion_tokens
            if max_completion_tokens is None
            else max_completion_tokens,
        )
        lab = self._labels(labels)
        now = self.clock.now()
        tgts = self._planner.targets(lab, now)
        chs = charges(self.policy, tgts, self._amounts(tgts, lab, prompt, completion))
        found = {c.key: c for c in self.store.counters([c.key for c in chs])}
        # the same pure rule the stores apply, pool borrowing included; nothing is written
        out = apply_reserve(found, chs, lambda keys: {c.key: c for c in self.store.counters(keys)})
        # as reserve would see it: after the step (borrowing included) when it would pass
        return evaluate(
            self.policy,
            tgts,
            [c.amount for c in chs],
            out.counters,
            applied=out.ok,
            refused_key=out.refused,
        )

    def status(self, *, budget: str | None = None) -> list[CounterStatus]:
        """Every live counter (its window has not ended), optionally for one budget."""
        now = self.clock.now()
        out = []
        for c in self.store.counters(active_at=now.timestamp()):
            if budget is not None and c.budget != budget:
                continue
            rule = self._planner.rule(c.budget)
            if rule is None:
                continue  # a budget no longer in the policy
            b = rule.budget
            idx = rule.level(c.used + c.reserved, c.headroom)
            lv = b.levels[idx - 1] if idx else None
            resets = (
                datetime.fromtimestamp(c.window_end, self.tz) if c.window_end is not None else None
            )
            out.append(
                CounterStatus(
                    b.name,
                    c.key,
                    dict(c.partition),
                    c.window_id,
                    b.unit.value,
                    c.used,
                    c.reserved,
                    c.granted,
                    b.limit + c.headroom,
                    lv.label if lv else "normal",
                    lv.action.value if lv else "continue",
                    resets,
                    c.borrowed,
                    c.lent,
                    c.closed,
                )
            )
        return out

    # -- counting and estimating --------------------------------------------------------------
    def count_prompt(
        self,
        model: str,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        text: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> int:
        """Prompt tokens of a chat (``messages``, with ``tools``) or a plain ``text``, counted
        with ``model``'s own tokenizer as the provider bills them (see ``docs/tokens.md``;
        an unknown model gets the conservative bound and a warning once)."""
        from .tokens import counter_for

        counter = counter_for(model)
        if messages is not None:
            return counter.count_chat(list(messages), list(tools) if tools else None).tokens
        if text is None:
            raise InvalidUsage("count_prompt needs messages= or text=")
        return counter.count_text(text)

    def completion_estimate(
        self, model: str, operation: str = "", max_tokens: int | None = None
    ) -> int:
        """What to reserve for a completion: ``max_tokens`` when given; else a high percentile
        learned from this ledger's history for (model, operation), refreshed every 5
        minutes; else the policy's ``default_completion_tokens``."""
        if max_tokens is not None:
            return check_tokens("max_tokens", max_tokens)
        now = self.clock.now().timestamp()
        cached = self._estimates.get((model, operation))
        if cached is not None and now - cached[0] < 300:
            return cached[1]
        from .tokens import estimate_completion

        samples = self.store.estimate_samples(model=model, operation=operation, limit=1000)
        est = estimate_completion(
            model, operation, samples=samples, default=self.policy.default_completion_tokens
        ).tokens
        self._estimates[(model, operation)] = (now, est)
        return est

    def wrap(self, client: Any, *, on_cutoff: str = "raise", **labels: str) -> Any:
        """Govern an official provider SDK client (OpenAI, Anthropic, Groq; sync or async):
        every call is reserved with the exact prompt count and ``max_tokens`` (or the learned
        estimate), streams are cut off when the budget runs out (``on_cutoff``: ``"raise"``
        :class:`BudgetExceeded` carrying ``.partial``, or ``"stop"`` quietly), and the
        provider's usage is committed. See ``docs/integrations.md``."""
        from .integrations import wrap

        extra: dict[str, Any] = dict(labels)
        return wrap(self, client, on_cutoff=on_cutoff, **extra)  # type: ignore[arg-type]

    # -- approvals ----------------------------------------------------------------------------
    def approvals(self, state: str | None = "pending") -> list[Approval]:
        """Approval requests (pending ones by default; ``None`` for all)."""
        return self.store.approvals(state=state)

    def approve(
        self, approval_id: str, tokens: int | None = None, *, by: str = "", note: str = ""
    ) -> Approval:
        """Grant ``tokens`` (default: what was requested) more headroom to the request's
        counter for its window; recorded with who and why."""
        if tokens is not None:
            tokens = check_tokens("tokens", tokens)
            if tokens == 0:
                raise InvalidUsage("tokens must be positive to approve anything")
        a = self.store.resolve_approval(
            approval_id,
            approve=True,
            tokens=tokens,
            by=by or _whoami(),
            note=note,
            now=self.clock.now().timestamp(),
        )
        self.emit(
            AuditEvent(
                self.clock.now().timestamp(),
                "approved",
                a.budget,
                a.key,
                f"approval {a.id} granted {a.granted:,} by {a.resolved_by}",
                {"approval": a.id, "granted": a.granted, "note": note},
            )
        )
        return a

    def deny(self, approval_id: str, *, by: str = "", note: str = "") -> Approval:
        """Refuse an approval request; further calls on that counter in its window raise
        :class:`ApprovalDenied`."""
        a = self.store.resolve_approval(
            approval_id,
            approve=False,
            tokens=None,
            by=by or _whoami(),
            note=note,
            now=self.clock.now().timestamp(),
        )
        self.emit(
            AuditEvent(
                self.clock.now().timestamp(),
                "denied",
                a.budget,
                a.key,
                f"approval {a.id} denied by {a.resolved_by}",
                {"approval": a.id, "note": note},
            )
        )
        return a

    # -- decorator ----------------------------------------------------------------------------
    def govern(
        self,
        *,
        prompt_tokens: int | Callable[..., int] = 0,
        max_completion_tokens: int | None = None,
        usage: Callable[[Any], tuple[int, int]] | None = None,
        confidence: Callable[[Any], float] | None = None,
        **labels: str,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a function (sync or async) that makes one LLM call.

        ``prompt_tokens`` is a number or a function of the call's arguments; ``usage`` maps
        the result to ``(prompt_tokens, completion_tokens)`` (without it, the reservation is
        committed at its estimate); ``confidence`` maps the result to a confidence from 0 to 1
        for the budgets' confidence gates. Exceptions from the function release the
        reservation and propagate. If ``confidence`` itself raises (or returns a bad value),
        the usage is still committed, the gate does not move, and the error propagates.
        """

        def deco(fn: Callable[P, R]) -> Callable[P, R]:
            def start(*args: Any, **kwargs: Any) -> Reservation:
                p = prompt_tokens(*args, **kwargs) if callable(prompt_tokens) else prompt_tokens
                extra: dict[str, Any] = dict(labels)
                return self.reserve(
                    prompt_tokens=p, max_completion_tokens=max_completion_tokens, **extra
                )

            def finish(res: Reservation, result: Any) -> None:
                p, c = usage(result) if usage is not None else (None, None)
                if confidence is None:
                    res.commit(prompt_tokens=p, completion_tokens=c)
                    return
                try:
                    conf = confidence(result)
                    res.commit(prompt_tokens=p, completion_tokens=c, confidence=conf)
                except BaseException:
                    if not res.settled:  # spent all the same: record it, then re-raise
                        res.commit(prompt_tokens=p, completion_tokens=c)
                    raise

            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def awrapper(*args: Any, **kwargs: Any) -> Any:
                    res = start(*args, **kwargs)
                    try:
                        result = await fn(*args, **kwargs)
                    except BaseException:
                        res.release()
                        raise
                    finish(res, result)
                    return result

                return awrapper  # type: ignore[return-value]

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                res = start(*args, **kwargs)
                try:
                    result = fn(*args, **kwargs)
                except BaseException:
                    res.release()
                    raise
                finish(res, result)
                return result

            return wrapper

        return deco

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> Governor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _whoami() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user entry (containers)
        return f"uid:{os.getuid()}"


def _supports_pools(store: Store) -> bool:
    inner = getattr(store, "inner", None)
    return bool(
        getattr(store, "supports_pools", False)
        or (isinstance(inner, Store) and inner.supports_pools)
    )


def _default_url() -> str:
    from .store import default_ledger_url

    return default_ledger_url()


def _as_policy(policy: Policy | Mapping[str, Any] | str | os.PathLike[str]) -> Policy:
    if isinstance(policy, Policy):
        return policy
    from .policy import load_policy, policy_from_mapping

    if isinstance(policy, Mapping):
        return policy_from_mapping(policy)
    return load_policy(policy)
