"""Estimates from plans: the strategy seed's formula, session allocation, and learning.

A plan (projects → phases → agents by role, each project with a complexity) is estimated with
the seed's formula ``Base_Token_Cost[role] × Phase_Multiplier[phase] × Complexity_Factor``
(:func:`estimate_plan`); a session total is split into an orchestrator reserve, phase budgets
per project and an emergency reserve and written as policy budgets (:func:`allocate`,
:func:`allocation_policy`); recorded usage labelled ``project``/``phase``/``agent`` fits the
tables (:func:`fit_tables`) and :func:`accuracy_report` compares the learned tables with the
static ones on held-out history. ``docs/plans.md`` describes the file and the method.

Importing this package loads neither YAML nor Pydantic; reading a plan file does.
"""

from __future__ import annotations

from ._allocate import (
    PhaseAllocation,
    ProjectShare,
    SessionAllocation,
    allocate,
    allocation_policy,
    split,
)
from ._errors import PlanError
from ._learn import (
    Accuracy,
    AccuracyReport,
    Fit,
    Observation,
    UsageRow,
    accuracy,
    accuracy_report,
    fit_tables,
    observations,
    rows_from_events,
    rows_from_records,
    score,
    split_by_project,
)
from ._load import load_plan, parse_plan, plan_from_mapping
from ._model import (
    Agent,
    AgentEstimate,
    PhaseEstimate,
    Plan,
    PlanEstimate,
    Project,
    ProjectEstimate,
    estimate_plan,
    estimate_project,
    formula,
)
from ._synthetic import TRUE_TABLES, synthetic_history
from ._tables import DEFAULT_ALLOCATION, DEFAULT_TABLES, Allocation, Tables, normalise

__all__ = [
    "DEFAULT_ALLOCATION",
    "DEFAULT_TABLES",
    "TRUE_TABLES",
    "Accuracy",
    "AccuracyReport",
    "Agent",
    "AgentEstimate",
    "Allocation",
    "Fit",
    "Observation",
    "PhaseAllocation",
    "PhaseEstimate",
    "Plan",
    "PlanError",
    "PlanEstimate",
    "Project",
    "ProjectEstimate",
    "ProjectShare",
    "SessionAllocation",
    "Tables",
    "UsageRow",
    "accuracy",
    "accuracy_report",
    "allocate",
    "allocation_policy",
    "estimate_plan",
    "estimate_project",
    "fit_tables",
    "formula",
    "load_plan",
    "normalise",
    "observations",
    "parse_plan",
    "plan_from_mapping",
    "rows_from_events",
    "rows_from_records",
    "score",
    "split",
    "split_by_project",
    "synthetic_history",
]
