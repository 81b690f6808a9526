"""Splitting a session total by the plan's shares, and writing the split as policy budgets.

The total is cut into pools by the allocation shares (the seed's: orchestrator 5 %, strategy
15 %, development 50 %, QA 15 %, deployment 7.5 %, emergency reserve 7.5 %), then each phase
pool is shared among the projects in proportion to their predicted tokens for that phase.
Every cut uses the largest-remainder method, so the parts are whole tokens and add up exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ._errors import PlanError
from ._model import Plan, PlanEstimate, estimate_plan

__all__ = [
    "PhaseAllocation",
    "ProjectShare",
    "SessionAllocation",
    "allocate",
    "allocation_policy",
    "split",
]

MAX_TOTAL = 10**15


def split(total: int, weights: Sequence[Fraction | float | int]) -> list[int]:
    """``total`` in whole parts proportional to ``weights`` (largest remainder; ties go to
    the earlier part). All-zero weights give all-zero parts."""
    ws = [Fraction(w) for w in weights]
    if any(w < 0 for w in ws):
        raise ValueError("weights must not be negative")
    s = sum(ws, Fraction(0))
    if s == 0:
        return [0] * len(ws)
    exact = [total * w / s for w in ws]
    parts = [int(x) for x in exact]  # floor: every x >= 0
    left = total - sum(parts)
    order = sorted(range(len(ws)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return parts


@dataclass(frozen=True, slots=True)
class ProjectShare:
    """One project's part of a phase pool, beside what the formula predicts for it."""

    project: str
    tokens: int
    predicted: float


@dataclass(frozen=True, slots=True)
class PhaseAllocation:
    """A phase pool: its share of the total (percent), its tokens, the prediction for the
    phase over all projects, and the projects' parts."""

    phase: str
    share: float
    tokens: int
    predicted: float
    projects: tuple[ProjectShare, ...]


@dataclass(frozen=True, slots=True)
class SessionAllocation:
    """A session total split into the orchestrator reserve, phase pools and the emergency
    reserve (``orchestrator + sum(phase tokens) + emergency == total``). ``notes`` say where
    the allocation falls short of the prediction."""

    total: int
    orchestrator: int
    emergency: int
    phases: tuple[PhaseAllocation, ...]
    predicted: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def project_totals(self) -> dict[str, int]:
        """Each project's tokens over all phases."""
        out: dict[str, int] = {}
        for ph in self.phases:
            for p in ph.projects:
                out[p.project] = out.get(p.project, 0) + p.tokens
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "total": self.total,
            "predicted": round(self.predicted),
            "orchestrator": self.orchestrator,
            "emergency": self.emergency,
            "phases": [
                {
                    "phase": ph.phase,
                    "share": ph.share,
                    "tokens": ph.tokens,
                    "predicted": round(ph.predicted),
                    "projects": [
                        {"project": p.project, "tokens": p.tokens, "predicted": round(p.predicted)}
                        for p in ph.projects
                    ],
                }
                for ph in self.phases
            ],
            "projects": self.project_totals(),
            "notes": list(self.notes),
        }


def allocate(plan: Plan, total: int, estimate: PlanEstimate | None = None) -> SessionAllocation:
    """Split ``total`` tokens by ``plan.allocation``; phase pools go to projects in proportion
    to ``estimate`` (default: the plan's static estimate)."""
    if isinstance(total, bool) or not isinstance(total, int) or not 0 < total <= MAX_TOTAL:
        raise ValueError(
            f"the session total must be a whole number of tokens from 1 to "
            f"{MAX_TOTAL:,}, got {total!r}"
        )
    est = estimate or estimate_plan(plan)
    shares = plan.allocation
    phase_names = list(shares.phases)
    for pe in est.projects:
        for ph in pe.phases:
            if ph.tokens > 0 and shares.phases.get(ph.phase, 0) == 0:
                raise PlanError(
                    f"project {pe.project} has work in phase {ph.phase!r} "
                    f"(predicted {ph.tokens:,.0f} tokens) but the allocation gives that phase "
                    f"no share; add allocation.phases.{ph.phase}",
                    source=plan.source,
                    path="allocation.phases",
                )
    pools = split(
        total,
        [
            Fraction(repr(shares.orchestrator)),
            *(Fraction(repr(shares.phases[p])) for p in phase_names),
            Fraction(repr(shares.emergency)),
        ],
    )
    orchestrator, emergency = pools[0], pools[-1]
    phases = []
    notes = []
    for phase, pool in zip(phase_names, pools[1:-1], strict=True):
        if shares.phases[phase] == 0:
            continue
        preds = [(pe.project, pe.phase(phase)) for pe in est.projects]
        parts = split(pool, [p for _, p in preds])
        predicted = sum(p for _, p in preds)
        phases.append(
            PhaseAllocation(
                phase,
                shares.phases[phase],
                pool,
                predicted,
                tuple(
                    ProjectShare(name, part, pred)
                    for (name, pred), part in zip(preds, parts, strict=True)
                    if pred > 0
                ),
            )
        )
        if pool < predicted:
            notes.append(
                f"phase {phase}: {pool:,} allocated, {predicted:,.0f} predicted "
                f"({pool / predicted:.0%} of the prediction)"
            )
    if total < est.tokens:
        notes.append(
            f"the session total {total:,} is below the plan's prediction {est.tokens:,.0f}"
        )
    return SessionAllocation(
        total, orchestrator, emergency, tuple(phases), est.tokens, tuple(notes)
    )


def allocation_policy(
    alloc: SessionAllocation,
    *,
    prefix: str = "plan",
    per: Sequence[str] = (),
    match: Mapping[str, str] | None = None,
    warn_at: float = 90.0,
    pause_at: float = 110.0,
) -> dict[str, Any]:
    """The allocation as a policy mapping (``{"version": 1, "budgets": [...]}``) a policy can
    take budgets from: a session budget (the total, emergency reserve included), an
    orchestrator budget (``agent: orchestrator``), one per phase (``phase``), one per project
    (``project``) and one per project and phase. Each but the session budget warns at
    ``warn_at`` % and pauses for approval at ``pause_at`` % (the seed's 90 % and 110 %); the
    session budget warns at ``warn_at`` % and blocks at its limit."""
    if not 0 < warn_at < pause_at:
        raise ValueError(f"warn_at ({warn_at}) must be above 0 and below pause_at ({pause_at})")
    extra = dict(match or {})
    levels = [
        {"at": f"{warn_at:g}%", "action": "warn", "name": "plan-warn"},
        {"at": f"{pause_at:g}%", "action": "approve", "name": "plan-pause"},
    ]

    def budget(name: str, sel: dict[str, str], limit: int, desc: str, lv: Any) -> dict[str, Any]:
        b: dict[str, Any] = {"name": f"{prefix}-{name}", "description": desc}
        if sel or extra:
            b["match"] = {**extra, **sel}
        if per:
            b["per"] = list(per)
        b["limit"] = limit
        b["levels"] = [dict(x) for x in lv]
        return b

    budgets = [
        budget(
            "session",
            {},
            alloc.total,
            f"session total; emergency reserve {alloc.emergency:,} tokens "
            f"(predicted {alloc.predicted:,.0f})",
            [{"at": f"{warn_at:g}%", "action": "warn", "name": "plan-warn"}],
        )
    ]
    if alloc.orchestrator:
        budgets.append(
            budget(
                "orchestrator",
                {"agent": "orchestrator"},
                alloc.orchestrator,
                "orchestrator reserve",
                levels,
            )
        )
    for ph in alloc.phases:
        if ph.tokens:
            budgets.append(
                budget(
                    f"phase-{ph.phase}",
                    {"phase": ph.phase},
                    ph.tokens,
                    f"phase {ph.phase}: {ph.share:g} % of the session "
                    f"(predicted {ph.predicted:,.0f})",
                    levels,
                )
            )
    predicted_by_project: dict[str, float] = {}
    for ph in alloc.phases:
        for p in ph.projects:
            predicted_by_project[p.project] = predicted_by_project.get(p.project, 0) + p.predicted
    for project, tokens in alloc.project_totals().items():
        if tokens:
            budgets.append(
                budget(
                    project,
                    {"project": project},
                    tokens,
                    f"project {project} (predicted {predicted_by_project[project]:,.0f})",
                    levels,
                )
            )
    for ph in alloc.phases:
        for p in ph.projects:
            if p.tokens:
                budgets.append(
                    budget(
                        f"{p.project}-{ph.phase}",
                        {"project": p.project, "phase": ph.phase},
                        p.tokens,
                        f"project {p.project}, phase {ph.phase} (predicted {p.predicted:,.0f})",
                        levels,
                    )
                )
    return {"version": 1, "budgets": budgets}
