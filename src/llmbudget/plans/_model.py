"""Plans and the seed's formula.

A :class:`Plan` holds projects; a :class:`Project` has a complexity and, per phase, the agents
(by role) that work in it. The estimate of one agent in one phase is the strategy seed's

    Estimated_Tokens = Base_Token_Cost[role] × Phase_Multiplier[phase] × Complexity_Factor

and phases and projects add up their agents. Pure values, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._tables import DEFAULT_ALLOCATION, DEFAULT_TABLES, Allocation, Tables

__all__ = [
    "Agent",
    "AgentEstimate",
    "PhaseEstimate",
    "Plan",
    "PlanEstimate",
    "Project",
    "ProjectEstimate",
    "estimate_plan",
    "estimate_project",
    "formula",
]


def formula(base: float, multiplier: float, factor: float) -> float:
    """``Base_Token_Cost × Phase_Multiplier × Complexity_Factor``."""
    return base * multiplier * factor


@dataclass(frozen=True, slots=True)
class Agent:
    """``count`` agents of one ``role`` (a key of the roles table); ``name`` is the value of
    their ``agent`` label when it is not the role itself."""

    role: str
    count: int = 1
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Project:
    """A project: its complexity (a complexity-table key or a positive number), its phases'
    agents, and the tables in force for it (the plan's, with the project's overrides)."""

    name: str
    complexity: str | float
    phases: Mapping[str, tuple[Agent, ...]]
    tables: Tables = DEFAULT_TABLES
    title: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "phases", MappingProxyType(dict(self.phases)))
        self.factor  # noqa: B018 - validates the complexity
        for phase, agents in self.phases.items():
            if phase not in self.tables.phases:
                raise ValueError(f"project {self.name}: unknown phase {phase!r}")
            for a in agents:
                if a.role not in self.tables.roles:
                    raise ValueError(f"project {self.name}: unknown role {a.role!r}")
                if a.count < 1:
                    raise ValueError(f"project {self.name}: count must be at least 1")

    @property
    def factor(self) -> float:
        """The complexity factor."""
        if isinstance(self.complexity, str):
            try:
                return self.tables.complexity[self.complexity]
            except KeyError:
                raise ValueError(
                    f"project {self.name}: unknown complexity {self.complexity!r}"
                ) from None
        if not self.complexity > 0:
            raise ValueError(f"project {self.name}: complexity must be positive")
        return float(self.complexity)

    def role_counts(self, phase: str) -> dict[str, int]:
        """How many agents of each role work in ``phase``."""
        out: dict[str, int] = {}
        for a in self.phases.get(phase, ()):
            out[a.role] = out.get(a.role, 0) + a.count
        return out


@dataclass(frozen=True, slots=True)
class Plan:
    """Projects, the plan-wide tables and the session allocation shares. ``source`` names the
    file it came from."""

    projects: tuple[Project, ...]
    tables: Tables = DEFAULT_TABLES
    allocation: Allocation = DEFAULT_ALLOCATION
    source: str = "<plan>"

    def project(self, name: str) -> Project | None:
        """The project called ``name``, if any."""
        return next((p for p in self.projects if p.name == name), None)

    def agent_roles(self) -> dict[str, str]:
        """``agent`` label value → role, for agents given a name of their own."""
        return {
            a.name: a.role
            for p in self.projects
            for agents in p.phases.values()
            for a in agents
            if a.name
        }


@dataclass(frozen=True, slots=True)
class AgentEstimate:
    """One role's share of a phase: ``count × base × multiplier × factor``."""

    role: str
    count: int
    base: float
    tokens: float
    name: str | None = None


@dataclass(frozen=True, slots=True)
class PhaseEstimate:
    """A phase of a project: its multiplier and its agents' estimates."""

    phase: str
    multiplier: float
    agents: tuple[AgentEstimate, ...]

    @property
    def tokens(self) -> float:
        """The phase's estimate: the sum of its agents'."""
        return sum(a.tokens for a in self.agents)


@dataclass(frozen=True, slots=True)
class ProjectEstimate:
    """A project's estimate, phase by phase (in the phase table's order)."""

    project: str
    complexity: str | float
    factor: float
    phases: tuple[PhaseEstimate, ...]
    title: str = ""

    @property
    def tokens(self) -> float:
        """The project's estimate: the sum of its phases'."""
        return sum(p.tokens for p in self.phases)

    def phase(self, name: str) -> float:
        """The estimate for one phase (0 if the project has no agents in it)."""
        return sum(p.tokens for p in self.phases if p.phase == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, tokens rounded to whole numbers."""
        return {
            "project": self.project,
            "title": self.title,
            "complexity": self.complexity,
            "factor": self.factor,
            "tokens": round(self.tokens),
            "phases": [
                {
                    "phase": ph.phase,
                    "multiplier": ph.multiplier,
                    "tokens": round(ph.tokens),
                    "agents": [
                        {
                            "role": a.role,
                            **({"name": a.name} if a.name else {}),
                            "count": a.count,
                            "base": a.base,
                            "tokens": round(a.tokens),
                        }
                        for a in ph.agents
                    ],
                }
                for ph in self.phases
            ],
        }


@dataclass(frozen=True, slots=True)
class PlanEstimate:
    """Every project's estimate."""

    projects: tuple[ProjectEstimate, ...] = field(default_factory=tuple)

    @property
    def tokens(self) -> float:
        """The plan's estimate: the sum of its projects'."""
        return sum(p.tokens for p in self.projects)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "tokens": round(self.tokens),
            "projects": [p.to_dict() for p in self.projects],
        }


def estimate_project(project: Project, tables: Tables | None = None) -> ProjectEstimate:
    """The formula over every agent of every phase. ``tables`` replaces the project's
    entries where it has them (e.g. learned tables); a numeric complexity stays as given."""
    t = project.tables
    if tables is not None:
        t = t.merged(tables.roles, tables.phases, tables.complexity)
    if isinstance(project.complexity, str):
        factor = t.complexity[project.complexity]
    else:
        factor = float(project.complexity)
    phases = []
    for phase in t.phases:
        agents = project.phases.get(phase)
        if not agents:
            continue
        mult = t.phases[phase]
        phases.append(
            PhaseEstimate(
                phase,
                mult,
                tuple(
                    AgentEstimate(
                        a.role,
                        a.count,
                        t.roles[a.role],
                        a.count * formula(t.roles[a.role], mult, factor),
                        a.name,
                    )
                    for a in agents
                ),
            )
        )
    return ProjectEstimate(project.name, project.complexity, factor, tuple(phases), project.title)


def estimate_plan(plan: Plan, tables: Tables | None = None) -> PlanEstimate:
    """Every project's estimate (with its own tables, or ``tables`` for all)."""
    return PlanEstimate(tuple(estimate_project(p, tables) for p in plan.projects))
