"""The policy file's schema (Pydantic), and its conversion to the core's frozen values."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    field_validator,
)

from ..core.policy import Action, Budget, Level, Mode, Policy, Selector, Unit
from ..core.windows import Window

_SUFFIX = {"k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}
_NUMBER = re.compile(r"^\$?\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*([kKmMgGbB]?)$")


def parse_amount(value: Any) -> float:
    """``10000``, ``10_000``, ``"10,000"``, ``"10k"``, ``"1.5M"``, ``"$50"`` → a number."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected a finite number, got {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _NUMBER.match(value.strip())
        if m:
            return float(m.group(1).replace("_", "").replace(",", "")) * _SUFFIX.get(
                m.group(2).lower(), 1
            )
    raise ValueError(f"expected a number such as 10000, '10k' or '1.5M', got {value!r}")


def _parse_at(value: Any) -> tuple[float, bool]:
    if isinstance(value, str) and value.strip().endswith("%"):
        pct = parse_amount(value.strip()[:-1])
        return pct, True
    return parse_amount(value), False


Amount = Annotated[float, BeforeValidator(parse_amount)]
Globs = dict[str, str | list[str]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LevelModel(_Strict):
    """``at``: absolute (in the budget's unit) or a percentage string such as ``"80%"``."""

    at: Annotated[tuple[float, bool], BeforeValidator(_parse_at)]
    action: Action
    name: str = ""


class PriceModel(_Strict):
    """USD per 1M tokens."""

    input: Annotated[float, Field(ge=0)]
    output: Annotated[float, Field(ge=0)]
    cached_input: Annotated[float | None, Field(ge=0)] = None


class BudgetModel(_Strict):
    """One budget, as written in the file."""

    name: str
    description: str = ""
    match: Globs = {}
    exclude: Globs = {}
    per: str | list[str] = []
    window: Window = Window.RUN
    unit: Unit = Unit.TOKENS
    limit: Amount
    levels: list[LevelModel] = []
    mode: Mode | None = None
    pool: str | None = None
    priority: StrictInt = 0
    min_reserve: Amount = 0
    confidence_threshold: StrictFloat | StrictInt | None = None


class PolicyModel(_Strict):
    """The whole file."""

    version: Literal[1] = 1
    timezone: str = "UTC"
    mode: Mode = Mode.BLOCK
    lease_seconds: Annotated[float, Field(gt=0, le=7 * 86400)] = 600.0
    default_completion_tokens: Annotated[int, Field(ge=1, le=10**7)] = 1024
    prices: dict[str, PriceModel] = {}
    budgets: list[BudgetModel] = []

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except (KeyError, ValueError):
            raise ValueError(
                f"{v!r} is not an IANA time zone name (e.g. UTC, Europe/Paris)"
            ) from None
        return v


def _selector(globs: Globs) -> Selector:
    return Selector({k: (v,) if isinstance(v, str) else tuple(v) for k, v in globs.items()})


def to_budget(m: BudgetModel) -> Budget:
    """Convert one validated budget (``ValueError`` on a rule of the core)."""
    scale = 10**6 if m.unit is Unit.USD else 1  # usd budgets count micro-dollars
    limit = m.limit * scale
    if limit != int(limit) and m.unit is not Unit.USD:
        raise ValueError(f"limit must be a whole number of tokens, got {m.limit!r}")
    if m.unit is not Unit.USD:
        if m.min_reserve != int(m.min_reserve):
            raise ValueError(f"min_reserve must be a whole number of tokens, got {m.min_reserve!r}")
        for i, lv in enumerate(m.levels):
            if not lv.at[1] and lv.at[0] != int(lv.at[0]):
                raise ValueError(
                    f"levels[{i}].at must be a whole number of tokens (or a percentage), "
                    f"got {lv.at[0]!r}"
                )
    levels = tuple(
        Level(
            at=lv.at[0] if lv.at[1] else lv.at[0] * scale,
            action=lv.action,
            percent=lv.at[1],
            name=lv.name,
        )
        for lv in m.levels
    )
    return Budget(
        name=m.name,
        limit=round(limit),
        window=m.window,
        unit=m.unit,
        match=_selector(m.match),
        exclude=_selector(m.exclude),
        per=(m.per,) if isinstance(m.per, str) else tuple(m.per),
        levels=levels,
        mode=m.mode,
        description=m.description,
        pool=m.pool,
        priority=m.priority,
        min_reserve=round(m.min_reserve * scale),
        confidence_threshold=m.confidence_threshold,
    )


def to_policy(m: PolicyModel, source: str, budgets: tuple[Budget, ...]) -> Policy:
    """Assemble the core policy from the validated file and its converted budgets."""
    return Policy(
        budgets=budgets,
        timezone=m.timezone,
        mode=m.mode,
        lease_seconds=m.lease_seconds,
        default_completion_tokens=m.default_completion_tokens,
        prices={k: p.model_dump(exclude_none=True) for k, p in m.prices.items()},
        source=source,
    )
