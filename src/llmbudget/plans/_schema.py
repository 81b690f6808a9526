"""The plan file's schema (Pydantic). Imported only when a plan is read."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ._tables import DEFAULT_ALLOCATION

__all__ = ["PlanModel"]

_NUMBER = re.compile(r"^\s*([0-9][0-9_,]*(?:\.[0-9]+)?|\.[0-9]+)\s*([kKmM]?)\s*[xX×]?\s*$")
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6}


def _positive(value: Any) -> float:
    """A positive finite number: ``3``, ``0.5``, ``"5K"``, ``"3.0x"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a positive number, got {value!r}")
    if isinstance(value, str):
        m = _NUMBER.match(value)
        if not m:
            raise ValueError(
                f"expected a positive number such as 3, 0.5, '5K' or '3.0x', got {value!r}"
            )
        value = float(m.group(1).replace("_", "").replace(",", "")) * _SUFFIX[m.group(2).lower()]
    if not isinstance(value, int | float):
        raise ValueError(f"expected a positive number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"expected a finite number, got {value!r}")
    if v <= 0:
        raise ValueError(f"must be greater than 0 (a cost or multiplier), got {value!r}")
    return v


def _percent(value: Any) -> float:
    """``15``, ``"15%"``, ``7.5`` → percent; ``0`` allowed."""
    if isinstance(value, str) and value.strip().endswith("%"):
        value = value.strip()[:-1]
    if isinstance(value, bool):
        raise ValueError(f"expected a percentage, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"expected a percentage such as 15 or '7.5%', got {value!r}") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"expected a percentage such as 15 or '7.5%', got {value!r}")
    if not 0 <= value <= 100:
        raise ValueError(f"a share must be between 0 and 100 %, got {value!r}")
    return float(value)


def _complexity(value: Any) -> str | float | None:
    """A complexity name or a positive number."""
    if value is None:
        return None
    if isinstance(value, str) and not _NUMBER.match(value):
        if not value.strip():
            raise ValueError("expected a complexity name or a positive number, got ''")
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(
            "expected a complexity name (simple, medium, complex, expert) or a positive "
            f"number, got {type(value).__name__} {value!r}"
        )
    return _positive(value)


def _agent(value: Any) -> Any:
    """A bare role name is short for ``{role: NAME}``."""
    return {"role": value} if isinstance(value, str) else value


Positive = Annotated[float, BeforeValidator(_positive)]
Percent = Annotated[float, BeforeValidator(_percent)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TablesModel(_Strict):
    """Entries replacing or extending the seed's tables."""

    roles: dict[str, Positive] = {}
    phases: dict[str, Positive] = {}
    complexity: dict[str, Positive] = {}


class AgentModel(_Strict):
    """``count`` agents of a role; ``name`` is their ``agent`` label."""

    role: str
    count: Annotated[int, Field(ge=1, le=10_000, strict=True)] = 1
    name: str | None = None


class ProjectModel(_Strict):
    """One project as written."""

    title: str = ""
    complexity: Annotated[str | float | None, BeforeValidator(_complexity)] = None
    extends: str | None = None
    template: Annotated[bool, Field(strict=True)] = False
    tables: TablesModel = TablesModel()
    phases: dict[str, list[Annotated[AgentModel, BeforeValidator(_agent)]]] = {}


class AllocationModel(_Strict):
    """Shares of a session total, in percent."""

    orchestrator: Percent = DEFAULT_ALLOCATION.orchestrator
    emergency: Percent = DEFAULT_ALLOCATION.emergency
    phases: dict[str, Percent] | None = None


class PlanModel(_Strict):
    """The whole file."""

    version: Literal[1] = 1
    tables: TablesModel = TablesModel()
    allocation: AllocationModel = AllocationModel()
    projects: Annotated[dict[str, ProjectModel], Field(min_length=1)]
