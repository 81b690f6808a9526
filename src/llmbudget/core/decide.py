"""From a call's labels and amounts to the charges a store must apply, and from the store's
answer to a :class:`Decision` that says which budget, which level, and why. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import quote

from .ledger import Charge, CounterState, Donor
from .policy import Action, Budget, Level, Mode, Policy, Unit
from .windows import Window, WindowSpan, span_for


@dataclass(slots=True)
class Amounts:
    """Token counts of one call (or one extension), and its USD cost in micro-dollars when a
    price is known (``None`` otherwise; a ``usd`` budget then refuses to guess)."""

    prompt_tokens: int
    completion_tokens: int
    cost_micros: int | None = None

    def of(self, budget: Budget) -> int:
        """The amount this call weighs in ``budget``'s unit."""
        if budget.unit is Unit.TOKENS:
            return self.prompt_tokens + self.completion_tokens
        if budget.unit is Unit.PROMPT_TOKENS:
            return self.prompt_tokens
        if budget.unit is Unit.COMPLETION_TOKENS:
            return self.completion_tokens
        if self.cost_micros is None:
            raise LookupError(f"budget {budget.name!r} counts USD but this call has no price")
        return self.cost_micros


def cost_micros(
    prompt_tokens: int,
    completion_tokens: int,
    input_per_mtok: float,
    output_per_mtok: float,
    cached_tokens: int = 0,
    cached_input_per_mtok: float | None = None,
) -> int:
    """USD cost in micro-dollars, rounded up. Prices are USD per 1M tokens, so one token at
    ``$p``/1M costs exactly ``p`` micro-dollars. ``cached_tokens`` are part of the prompt."""
    cached = min(cached_tokens, prompt_tokens)
    cached_price = input_per_mtok if cached_input_per_mtok is None else cached_input_per_mtok
    total = (
        (prompt_tokens - cached) * input_per_mtok
        + cached * cached_price
        + completion_tokens * output_per_mtok
    )
    return math.ceil(total - 1e-9)


@dataclass(frozen=True, slots=True)
class Rule:
    """A budget compiled for the hot path: absolute level thresholds, which of them refuse,
    the cap a store enforces (``None`` in mode ``warn``)."""

    budget: Budget
    thresholds: tuple[int, ...]
    refusing: tuple[bool, ...]
    cap: int | None
    enforced: bool

    @classmethod
    def of(cls, policy: Policy, budget: Budget) -> Rule:
        """Compile ``budget`` under ``policy``'s mode."""
        enforced = policy.mode_of(budget) is Mode.BLOCK
        return cls(
            budget,
            tuple(lv.threshold(budget.limit) for lv in budget.levels),
            tuple(lv.action.refuses for lv in budget.levels),
            budget.cap if enforced else None,
            enforced,
        )

    def level(self, projected: int, granted: int) -> int:
        """The 1-based index of the highest level ``projected`` passed (0: none); refusing
        levels are raised by ``granted``."""
        idx = 0
        for i, (t, refuses) in enumerate(zip(self.thresholds, self.refusing, strict=True), 1):
            if projected > t + (granted if refuses else 0):
                idx = i
        return idx


@dataclass(slots=True)
class Target:
    """One counter a call lands on: the budget, its partition and its current window."""

    budget: Budget
    key: str
    partition: tuple[tuple[str, str], ...]
    span: WindowSpan
    rule: Rule | None = None
    donors: tuple[Donor, ...] = ()
    #: the window's end as POSIX seconds (``None``: it never ends, or not computed yet)
    end: float | None = None


def counter_key(budget: Budget, partition: tuple[tuple[str, str], ...], span: WindowSpan) -> str:
    """A stable, printable key: ``name|label=value,...|window-id`` (values %-escaped)."""
    return _key_prefix(budget, partition) + span.id


def _key_prefix(budget: Budget, partition: tuple[tuple[str, str], ...]) -> str:
    part = ",".join(f"{k}={quote(v, safe='')}" for k, v in partition)
    return f"{budget.name}|{part}|"


def targets(policy: Policy, labels: Mapping[str, str], now: datetime, tz: tzinfo) -> list[Target]:
    """Every counter that a call with ``labels`` at instant ``now`` lands on."""
    out = []
    for b in policy.matching(labels):
        part = tuple(zip(b.per, b.partition(labels), strict=True))
        span = span_for(b.window, now, tz)
        out.append(Target(b, counter_key(b, part, span), part, span, Rule.of(policy, b)))
    return out


_Plan = tuple["Rule", tuple[tuple[str, str], ...], str, tuple[tuple["Rule", str], ...]]


class Planner:
    """:func:`targets` with memory: compiles the policy once, remembers which budgets and
    partitions a label set lands on, and reuses each window until it ends. Pure (no I/O);
    thread-safe for concurrent readers (a race only recomputes the same values)."""

    def __init__(self, policy: Policy, tz: tzinfo, *, max_label_sets: int = 4096) -> None:
        self.policy = policy
        self.tz = tz
        self._rules = [Rule.of(policy, b) for b in policy.budgets]
        self._by_name = {r.budget.name: r for r in self._rules}
        self._by_labels: dict[tuple[tuple[str, str], ...], list[_Plan]] = {}
        self._spans: dict[Window, WindowSpan] = {}
        self._donor_cache: dict[tuple[str, str], tuple[Donor, ...]] = {}
        self._ends: dict[str, float] = {}  # window id -> its end, POSIX seconds
        self._max = max_label_sets

    def rule(self, name: str) -> Rule | None:
        """The compiled budget called ``name``."""
        return self._by_name.get(name)

    def span(self, window: Window, now: datetime) -> WindowSpan:
        """The window of kind ``window`` containing ``now`` (cached until it ends)."""
        sp = self._spans.get(window)
        if sp is not None and (
            sp.start is None or (sp.start <= now and sp.end is not None and now < sp.end)
        ):
            return sp
        sp = span_for(window, now, self.tz)
        self._spans[window] = sp
        return sp

    def targets(self, labels: Mapping[str, str], now: datetime) -> list[Target]:
        """Every counter a call with ``labels`` at ``now`` lands on (as :func:`targets`)."""
        key = tuple(sorted(labels.items()))
        plan = self._by_labels.get(key)
        if plan is None:
            plan = []
            for r in self._rules:
                if r.budget.applies_to(labels):
                    part = tuple(zip(r.budget.per, r.budget.partition(labels), strict=True))
                    plan.append((r, part, _key_prefix(r.budget, part), self._donors(r, part)))
            if len(self._by_labels) >= self._max:
                self._by_labels.clear()
            self._by_labels[key] = plan
        out = []
        for r, part, prefix, donors in plan:
            sp = self.span(r.budget.window, now)
            ds: tuple[Donor, ...] = ()
            if donors:
                ds = self._donor_cache.get((prefix, sp.id), ())
            if donors and not ds:
                end = sp.end.timestamp() if sp.end else None
                ds = tuple(
                    Donor(
                        dp + sp.id,
                        d.budget.name,
                        d.cap or 0,
                        d.budget.min_reserve,
                        d.budget.priority,
                        sp.id,
                        end,
                        part,
                    )
                    for d, dp in donors
                )
                if len(self._donor_cache) >= self._max:
                    self._donor_cache.clear()
                self._donor_cache[(prefix, sp.id)] = ds
            end = self._ends.get(sp.id)
            if end is None and sp.end is not None:
                if len(self._ends) >= self._max:
                    self._ends.clear()
                end = self._ends[sp.id] = sp.end.timestamp()
            out.append(Target(r.budget, prefix + sp.id, part, sp, r, ds, end))
        return out

    def _donors(self, r: Rule, part: tuple[tuple[str, str], ...]) -> tuple[tuple[Rule, str], ...]:
        """The pool members ``r`` may borrow from: same pool, enforced, never more important
        (a donor's priority is at most the borrower's), with the same partition labels."""
        if r.budget.pool is None or r.cap is None:
            return ()
        return tuple(
            (d, _key_prefix(d.budget, part))
            for d in self._rules
            if d.budget.pool == r.budget.pool
            and d is not r
            and d.cap is not None
            and d.budget.priority <= r.budget.priority
        )


def charges(
    policy: Policy, tgts: Sequence[Target], amounts: Amounts, *, enforce: bool = True
) -> list[Charge]:
    """The charges for ``amounts`` on each target; caps only where refusals are enforced."""
    out = []
    for t in tgts:
        rule = t.rule or Rule.of(policy, t.budget)
        cap = rule.cap if enforce else None
        end = t.end if t.end is not None else (t.span.end.timestamp() if t.span.end else None)
        out.append(
            Charge(
                t.key,
                t.budget.name,
                amounts.of(t.budget),
                cap,
                t.span.id,
                end,
                t.partition,
                t.donors if cap is not None else (),
            )
        )
    return out


@dataclass(slots=True)
class BudgetCheck:
    """How one budget stands for one call.

    ``used``/``reserved``/``granted`` are the counter's state (``granted``: its headroom —
    approvals plus borrowed minus lent; after the step when granted;
    as found when refused); ``requested`` is this call's amount; ``projected`` is
    used + reserved (+ requested when refused, since it was not applied). ``level`` is the
    highest level passed by ``projected`` (``None``: below every level), ``action`` its action
    (``continue`` if none). ``refused``: this budget said no. ``enforced``: mode ``block``.
    ``announce``: the level is new for this counter's window, so it should be announced.
    """

    budget: Budget
    key: str
    window: WindowSpan
    partition: tuple[tuple[str, str], ...]
    used: int
    reserved: int
    granted: int
    requested: int
    projected: int
    level: Level | None
    level_index: int
    action: Action
    refused: bool
    enforced: bool
    announce: bool

    @property
    def limit(self) -> int:
        """The budget's limit plus this window's headroom (approvals, pool transfers)."""
        return self.budget.limit + self.granted

    @property
    def percent(self) -> float:
        """Projected use as a percentage of the limit (may pass 100)."""
        return 100.0 * self.projected / self.budget.limit

    def describe(self) -> str:
        """One line for people: budget, partition, window, numbers, level."""
        part = ",".join(f"{k}={v}" for k, v in self.partition)
        where = f"{self.budget.name}" + (f"[{part}]" if part else "")
        win = self.window.id
        lvl = self.level.label if self.level else "normal"
        return (
            f"{where} ({win}): {self.projected:,}/{self.limit:,} {self.budget.unit.value} "
            f"({self.percent:.0f}%), level {lvl}"
        )


@dataclass(slots=True)
class Decision:
    """The answer to "may this call spend?": ``allowed``, the strongest ``action`` reached
    across every matching budget, each budget's :class:`BudgetCheck`, and ``reason``."""

    allowed: bool
    action: Action
    checks: tuple[BudgetCheck, ...]
    reason: str

    @property
    def refusing(self) -> BudgetCheck | None:
        """The budget that refused (``None`` when allowed)."""
        return next((c for c in self.checks if c.refused and c.enforced), None)

    @property
    def announcements(self) -> tuple[BudgetCheck, ...]:
        """Checks whose level is reached for the first time in their window."""
        return tuple(c for c in self.checks if c.announce)


class DeferredDecision(Decision):
    """A :class:`Decision` worked out on first use. The hot path's commit returns one when no
    budget has a level left to announce (so nothing is due now), and most callers never read
    it; reading any field works it out once. Compares equal to the same plain Decision."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[], Decision]) -> None:
        self._make: Callable[[], Decision] | None = make

    def __getattr__(self, name: str) -> Any:
        # reached only for a field not set yet (an empty slot)
        if name not in _FIELDS:
            raise AttributeError(name)
        make = self._make
        if make is None:  # pragma: no cover - fields are set whenever _make is cleared
            raise AttributeError(name)
        d = make()
        self.allowed, self.action, self.checks, self.reason = (
            d.allowed,
            d.action,
            d.checks,
            d.reason,
        )
        self._make = None
        return getattr(self, name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return (self.allowed, self.action, self.checks, self.reason) == (
            other.allowed,
            other.action,
            other.checks,
            other.reason,
        )

    __hash__ = None  # type: ignore[assignment]  # as Decision's


_FIELDS = frozenset({"allowed", "action", "checks", "reason"})


def level_of(budget: Budget, projected: int, granted: int) -> tuple[int, Level | None]:
    """The highest level ``projected`` has passed (1-based index; 0 and ``None`` if none).
    Refusing levels are raised by ``granted``; the others are not."""
    idx, found = 0, None
    for i, lv in enumerate(budget.levels, start=1):
        t = lv.threshold(budget.limit) + (granted if lv.action.refuses else 0)
        if projected > t:
            idx, found = i, lv
    return idx, found


def quiet(tgts: Sequence[Target], states: Sequence[CounterState | None]) -> bool:
    """True when no counter has passed a level it has not announced yet: the caller may then
    skip building a :class:`Decision` until someone asks for it (the hot path)."""
    for t, st in zip(tgts, states, strict=True):
        if (
            st is None
            or t.rule is None
            or t.rule.level(st.used + st.reserved, st.headroom) > st.level
        ):
            return False
    return True


def evaluate(
    policy: Policy,
    tgts: Sequence[Target],
    requested: Sequence[int],
    states: Sequence[CounterState | None],
    *,
    applied: bool,
    refused_key: str | None = None,
) -> Decision:
    """Turn a store's answer into a :class:`Decision`.

    ``states`` are the counters in target order (after the step if ``applied``). When the
    step was refused, ``refused_key`` names the counter that did not fit.
    """
    checks = []
    for t, amount, st in zip(tgts, requested, states, strict=True):
        rule = t.rule or Rule.of(policy, t.budget)
        used = st.used if st else 0
        reserved = st.reserved if st else 0
        granted = st.headroom if st else 0
        projected = used + reserved + (0 if applied else amount)
        idx = rule.level(projected, granted)
        lv = t.budget.levels[idx - 1] if idx else None
        action = lv.action if lv else Action.CONTINUE
        enforced = rule.enforced
        refused = t.key == refused_key
        announce = idx > (st.level if st else 0) and not (action.refuses and enforced)
        checks.append(
            BudgetCheck(
                t.budget,
                t.key,
                t.span,
                t.partition,
                used,
                reserved,
                granted,
                amount,
                projected,
                lv,
                idx,
                action,
                refused,
                enforced,
                announce,
            )
        )
    allowed = not any(c.refused and c.enforced for c in checks)
    strongest = max((c.action for c in checks), key=lambda a: a.severity, default=Action.CONTINUE)
    if not allowed:
        bad = next(c for c in checks if c.refused and c.enforced)
        reason = f"refused by {bad.describe()}"
        strongest = bad.action if bad.action.refuses else Action.BLOCK
    elif strongest is Action.CONTINUE:
        reason = "within every budget" if checks else "no budget matches these labels"
    else:
        top = max(checks, key=lambda c: c.action.severity)
        note = ""
        if top.action.refuses:
            note = (
                " (past a refusing level: the next call will be refused)"
                if top.enforced
                else " (mode warn: not enforced)"
            )
        reason = f"{top.action.value}: {top.describe()}{note}"
    return Decision(allowed, strongest, tuple(checks), reason)
