"""The strategy seed's tables: base token cost per agent role, multiplier per phase, factor
per complexity, and the share of a session total each part of the work gets.

Names are normalised (lowercase, runs of spaces and dashes become ``_``), and the seed's own
spellings are accepted as aliases: ``Dev Lead`` and ``dev-lead`` are ``dev_lead``, ``Phase 2``,
``phase2`` and ``2`` are ``development``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "DEFAULT_ALLOCATION",
    "DEFAULT_TABLES",
    "Allocation",
    "Tables",
    "normalise",
]

DEFAULT_ROLES: Mapping[str, float] = MappingProxyType(
    {
        "business_strategist": 5_000.0,  # PRD, OKR, user stories
        "architect": 10_000.0,  # system design, API spec
        "dev_lead": 20_000.0,  # code implementation
        "qa_engineer": 10_000.0,  # test planning + execution
        "devops": 5_000.0,  # deployment automation
        "security_auditor": 5_000.0,  # OWASP review
        "support": 3_000.0,  # documentation, analysis
    }
)

DEFAULT_PHASES: Mapping[str, float] = MappingProxyType(
    {
        "input": 0.5,  # phase 0: input parsing
        "strategy": 1.0,  # phase 1: strategy & design (baseline)
        "development": 3.0,  # phase 2: development (most expensive)
        "qa": 1.5,  # phase 3: QA & security
        "deployment": 0.5,  # phase 4: deployment
    }
)

DEFAULT_COMPLEXITY: Mapping[str, float] = MappingProxyType(
    {
        "simple": 0.8,  # CRUD, MVP
        "medium": 1.0,  # multi-module, API (baseline)
        "complex": 1.5,  # integration, ML
        "expert": 2.0,  # system design
    }
)

_ROLE_ALIASES = {
    "business": "business_strategist",
    "strategist": "business_strategist",
    "dev": "dev_lead",
    "developer": "dev_lead",
    "qa": "qa_engineer",
    "security": "security_auditor",
    "support_agent": "support",
    "support_agents": "support",
}

_PHASE_ALIASES = {
    "input_parsing": "input",
    "design": "strategy",
    "strategy_design": "strategy",
    "strategy_and_design": "strategy",
    "dev": "development",
    "qa_security": "qa",
    "qa_and_security": "qa",
    "deploy": "deployment",
}
for _n, _p in enumerate(DEFAULT_PHASES):
    for _form in (f"{_n}", f"phase{_n}", f"phase_{_n}", f"p{_n}"):
        _PHASE_ALIASES[_form] = _p

_COMPLEXITY_ALIASES = {"crud": "simple", "mvp": "simple", "integration": "complex"}

_ALIASES = {"roles": _ROLE_ALIASES, "phases": _PHASE_ALIASES, "complexity": _COMPLEXITY_ALIASES}

_SEP = re.compile(r"[\s\-]+")


def normalise(name: str) -> str:
    """``"Dev Lead"`` → ``"dev_lead"``: lowercase, spaces and dashes become ``_``."""
    return _SEP.sub("_", name.strip().lower())


@dataclass(frozen=True, slots=True)
class Tables:
    """The three tables of the formula ``base[role] × multiplier[phase] × factor[complexity]``.

    Every value is positive; phases keep their order (the order reports use).
    """

    roles: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ROLES))
    phases: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PHASES))
    complexity: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_COMPLEXITY))

    def __post_init__(self) -> None:
        for kind in ("roles", "phases", "complexity"):
            table: Mapping[str, float] = getattr(self, kind)
            for k, v in table.items():
                if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                    raise ValueError(f"{kind}.{k}: must be a positive number, got {v!r}")
                if v == float("inf"):
                    raise ValueError(f"{kind}.{k}: must be finite")
            object.__setattr__(self, kind, MappingProxyType(dict(table)))

    def resolve(self, kind: str, name: str) -> str | None:
        """The table key ``name`` stands for in table ``kind`` (``roles``, ``phases`` or
        ``complexity``), through normalisation and the seed's aliases; ``None`` if unknown."""
        table: Mapping[str, float] = getattr(self, kind)
        if name in table:
            return name
        key = normalise(name)
        if key in table:
            return key
        alias = _ALIASES[kind].get(key)
        return alias if alias is not None and alias in table else None

    def merged(
        self,
        roles: Mapping[str, float] | None = None,
        phases: Mapping[str, float] | None = None,
        complexity: Mapping[str, float] | None = None,
    ) -> Tables:
        """These tables with some entries replaced or added (keys already resolved)."""
        return Tables(
            roles={**self.roles, **(roles or {})},
            phases={**self.phases, **(phases or {})},
            complexity={**self.complexity, **(complexity or {})},
        )

    def to_dict(self) -> dict[str, dict[str, float]]:
        """Plain dicts, as a plan file's ``tables:`` section takes them."""
        return {
            "roles": dict(self.roles),
            "phases": dict(self.phases),
            "complexity": dict(self.complexity),
        }


DEFAULT_TABLES = Tables()


@dataclass(frozen=True, slots=True)
class Allocation:
    """How a session total is split, in percent: an orchestrator reserve, one share per phase
    and an emergency reserve (drawn on through approvals). The shares add up to 100."""

    orchestrator: float = 5.0
    emergency: float = 7.5
    phases: Mapping[str, float] = field(
        default_factory=lambda: {
            "input": 0.0,
            "strategy": 15.0,
            "development": 50.0,
            "qa": 15.0,
            "deployment": 7.5,
        }
    )

    def __post_init__(self) -> None:
        parts = {"orchestrator": self.orchestrator, "emergency": self.emergency}
        parts.update({f"phases.{k}": v for k, v in self.phases.items()})
        for k, v in parts.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 100:
                raise ValueError(f"{k}: a share must be between 0 and 100 (percent), got {v!r}")
        total = sum(parts.values())
        if abs(total - 100.0) > 1e-6:
            raise ValueError(
                f"the shares add up to {total:g} %, not 100 % "
                f"({', '.join(f'{k} {v:g}' for k, v in parts.items())})"
            )
        object.__setattr__(self, "phases", MappingProxyType(dict(self.phases)))


DEFAULT_ALLOCATION = Allocation()
