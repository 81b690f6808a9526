"""Budgets, levels and the policy that holds them: plain frozen values, validated on creation.

A :class:`Budget` says *which calls* it governs (``match`` / ``exclude`` label selectors with
globs), *how it is partitioned* (``per``: one counter per distinct value of those labels),
*when it resets* (``window``), *what it counts* (``unit``), its ``limit`` and its ordered
``levels``. A level fires when a counter's projected total passes its threshold.

Reading YAML and reporting file/line errors is :mod:`llmbudget.policy`'s job; this module only
states the rules (and raises :class:`ValueError` with a key path when a rule is broken).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from fnmatch import fnmatchcase

from .windows import Window

LABEL_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
MAX_LIMIT = 10**15


class Unit(StrEnum):
    """What a budget counts. ``usd`` is counted in micro-dollars (1e-6 USD) internally."""

    TOKENS = "tokens"
    PROMPT_TOKENS = "prompt_tokens"
    COMPLETION_TOKENS = "completion_tokens"
    USD = "usd"


class Action(StrEnum):
    """What happens when a level is reached, from mildest to strongest.

    ``continue`` does nothing; ``warn`` logs; ``alert`` notifies the alert sinks; ``flag``
    notifies and marks the counter for review; ``approve`` refuses until a person grants more
    headroom; ``block`` refuses. In mode ``warn`` the two refusing actions only warn.
    """

    CONTINUE = "continue"
    WARN = "warn"
    ALERT = "alert"
    FLAG = "flag"
    APPROVE = "approve"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        """Position in the escalation order (0 = continue)."""
        return _SEVERITY[self]

    @property
    def refuses(self) -> bool:
        """True for ``approve`` and ``block``."""
        return self in (Action.APPROVE, Action.BLOCK)


_SEVERITY = {a: i for i, a in enumerate(Action)}


class Mode(StrEnum):
    """Enforcement mode: ``block`` refuses at refusing levels; ``warn`` never refuses."""

    WARN = "warn"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class Level:
    """A threshold and its action. ``at`` is absolute (in the budget's unit) or, when
    ``percent`` is true, a percentage of the budget's limit. ``name`` is for people."""

    at: float
    action: Action
    percent: bool = False
    name: str = ""

    @property
    def label(self) -> str:
        """What people see for this level: its ``name``, else its action."""
        return self.name or self.action.value

    def threshold(self, limit: int) -> int:
        """The absolute threshold for a budget with this ``limit`` (rounded down)."""
        if not self.percent:
            return int(self.at)
        # exact decimal arithmetic: in floats 69.6 % of 1,875 is 1,304 (not 1,305), and
        # integer percents of limits past 2**53 / 100 drift
        return int(Decimal(limit) * Decimal(repr(self.at)) / 100)


@dataclass(frozen=True, slots=True)
class Selector:
    """Label globs: every key must be present and match one of its patterns."""

    patterns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when every key of the selector matches (an empty selector matches all)."""
        for key, pats in self.patterns.items():
            value = labels.get(key)
            if value is None or not any(fnmatchcase(value, p) for p in pats):
                return False
        return True

    def matches_any(self, labels: Mapping[str, str]) -> bool:
        """True when *some* key matches (used for ``exclude``; empty matches nothing)."""
        for key, pats in self.patterns.items():
            value = labels.get(key)
            if value is not None and any(fnmatchcase(value, p) for p in pats):
                return True
        return False


@dataclass(frozen=True, slots=True)
class Budget:
    """One budget. See the module docstring and ``docs/policy.md`` for every field."""

    name: str
    limit: int
    window: Window = Window.RUN
    unit: Unit = Unit.TOKENS
    match: Selector = field(default_factory=Selector)
    exclude: Selector = field(default_factory=Selector)
    per: tuple[str, ...] = ()
    levels: tuple[Level, ...] = ()
    mode: Mode | None = None
    description: str = ""
    pool: str | None = None
    priority: int = 0
    min_reserve: int = 0
    confidence_threshold: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not re.match(r"^[A-Za-z0-9_.:/-]+$", self.name):
            raise ValueError(
                f"budget name {self.name!r} must be non-empty letters, digits, '_.-:/' only"
            )
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise ValueError(f"limit must be a whole number, got {self.limit!r}")
        if not 0 < self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT:,}, got {self.limit:,}")
        for p in self.per:
            if not LABEL_NAME.match(p):
                raise ValueError(f"per: {p!r} is not a label name (lowercase, digits, '_')")
        last = -1
        for i, lv in enumerate(self.levels):
            t = lv.threshold(self.limit)
            if t < 0:
                raise ValueError(f"levels[{i}].at must not be negative")
            if t <= last:
                raise ValueError(
                    f"levels[{i}].at ({t:,}) must be above the previous level's ({last:,}); "
                    "list levels from lowest to highest"
                )
            last = t
        object.__setattr__(self, "levels", _with_implicit_block(self.levels, self.limit))
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ValueError(f"priority must be a whole number, got {self.priority!r}")
        if isinstance(self.min_reserve, bool) or not isinstance(self.min_reserve, int):
            raise ValueError(f"min_reserve must be a whole number, got {self.min_reserve!r}")
        if not 0 <= self.min_reserve <= self.limit:
            raise ValueError(
                f"min_reserve ({self.min_reserve:,}) must be between 0 and the limit "
                f"({self.limit:,})"
            )
        if self.min_reserve and self.pool is None:
            raise ValueError("min_reserve only matters in a pool: add `pool: NAME`")
        c = self.confidence_threshold
        if c is not None and (
            isinstance(c, bool) or not isinstance(c, int | float) or not 0.0 <= c <= 1.0
        ):
            raise ValueError(f"confidence_threshold must be a number from 0 to 1, got {c!r}")

    def applies_to(self, labels: Mapping[str, str]) -> bool:
        """Whether a call with these labels is governed by this budget."""
        return self.match.matches(labels) and not self.exclude.matches_any(labels)

    def partition(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        """The counter partition for these labels (a missing ``per`` label counts as ``-``)."""
        return tuple(labels.get(p, "-") for p in self.per)

    @property
    def cap(self) -> int:
        """The lowest refusing threshold: no reservation may push a counter past it (plus
        whatever a person granted for the window)."""
        return min(lv.threshold(self.limit) for lv in self.levels if lv.action.refuses)


def _with_implicit_block(levels: tuple[Level, ...], limit: int) -> tuple[Level, ...]:
    """A budget always refuses somewhere: unless a level already refuses (``block`` or
    ``approve``, possibly above 100 % as in a "pause at 110 %" rule), add ``block`` at the
    limit, keeping the levels sorted."""
    if any(lv.action.refuses for lv in levels):
        return levels
    implicit = Level(at=100, action=Action.BLOCK, percent=True, name="limit")
    # a level exactly at the limit goes before the block, so passing the limit reports block
    below = tuple(lv for lv in levels if lv.threshold(limit) <= limit)
    above = tuple(lv for lv in levels if lv.threshold(limit) > limit)
    return (*below, implicit, *above)


@dataclass(frozen=True, slots=True)
class Policy:
    """A set of budgets plus the settings they share.

    ``timezone`` is an IANA name for calendar windows; ``mode`` is the default enforcement mode
    (a budget may override it); ``lease_seconds`` is how long a reservation lives before it is
    settled conservatively; ``default_completion_tokens`` is reserved for a call that gives no
    ``max_tokens`` and has no history; ``prices`` overrides USD per 1M tokens by model;
    ``source`` is the file the policy came from (for error messages and suggestions).
    """

    budgets: tuple[Budget, ...] = ()
    timezone: str = "UTC"
    mode: Mode = Mode.BLOCK
    lease_seconds: float = 600.0
    default_completion_tokens: int = 1024
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    source: str = "<policy>"

    def __post_init__(self) -> None:
        seen: set[str] = set()
        pools: dict[str, Budget] = {}
        for i, b in enumerate(self.budgets):
            if b.pool is not None:
                first = pools.setdefault(b.pool, b)
                if (first.window, first.per, first.unit) != (b.window, b.per, b.unit):
                    raise ValueError(
                        f"budgets[{i}].pool: budget {b.name!r} joins pool {b.pool!r} but its "
                        f"window/per/unit ({b.window.value}, {list(b.per)}, {b.unit.value}) "
                        f"differ from {first.name!r}'s ({first.window.value}, "
                        f"{list(first.per)}, {first.unit.value}); pool members must share them"
                    )
            if b.name in seen:
                raise ValueError(f"budgets[{i}].name: duplicate budget name {b.name!r}")
            seen.add(b.name)
        if not self.lease_seconds > 0:
            raise ValueError("lease_seconds must be positive")

    def budget(self, name: str) -> Budget:
        """The budget called ``name`` (``KeyError`` if there is none)."""
        for b in self.budgets:
            if b.name == name:
                return b
        raise KeyError(name)

    def matching(self, labels: Mapping[str, str]) -> list[Budget]:
        """Every budget that governs a call with these labels, in policy order."""
        return [b for b in self.budgets if b.applies_to(labels)]

    def pool_members(self, pool: str) -> list[Budget]:
        """The budgets of ``pool``, in policy order."""
        return [b for b in self.budgets if b.pool == pool]

    def mode_of(self, budget: Budget) -> Mode:
        """The enforcement mode in force for ``budget``."""
        return budget.mode or self.mode
