"""Learning the formula's tables from recorded usage, and measuring prediction accuracy.

**Observations.** Usage events labelled ``project``, ``phase`` and ``agent`` (or ``role``) are
summed per (project, phase, role): one observation is "what the agents of this role spent in
this phase of this project", exactly what the formula predicts
(``count × base[role] × multiplier[phase] × factor[complexity]``). The complexity comes from a
``complexity`` label, else from the plan; the role from a ``role`` label, else the ``agent``
label when it names a role, else the plan's named agents.

**Fit.** Taking logs turns the formula into a sum::

    log(tokens / count) = log base[role] + log multiplier[phase] + log factor[complexity] + ε

so the tables are fitted by least squares in log space, with a ridge penalty pulling every
parameter towards the seed's (or the plan's) value: minimise
``Σ residual² + λ Σ (θ - θ_prior)²``. ``λ`` (``prior_weight``) is worth ``λ`` observations at
the prior value for each parameter, so a sparse history moves the tables a little and a rich
one moves them all the way. Two entries anchor the scale, as the seed's "baseline" words do:
phase ``strategy`` and complexity ``medium`` stay at their table value (1.0), so role bases
carry the absolute size and the others are relative to them. A role that only ever works in
one phase cannot be told apart from that phase's multiplier; the ridge penalty then splits the
correction between them, which predicts the same.

**Accuracy.** A prediction is within tolerance when ``|predicted - actual| <= 20 % × actual``
(the seed's success criterion). Reports give that share, the mean and median absolute
percentage error, and the median ratio predicted/actual, for observations, phases and projects.
:func:`accuracy_report` fits on the earlier projects (by their first event) and scores the
later ones, for the static tables and the learned ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._model import Plan
from ._tables import DEFAULT_TABLES, Tables

__all__ = [
    "Accuracy",
    "AccuracyReport",
    "Fit",
    "Observation",
    "UsageRow",
    "accuracy",
    "accuracy_report",
    "fit_tables",
    "observations",
]

KINDS = ("roles", "phases", "complexity")
DEFAULT_ANCHORS = ("phases.strategy", "complexity.medium")


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One recorded call: when (POSIX seconds), its labels, its tokens (prompt + completion)."""

    at: float
    labels: Mapping[str, str]
    tokens: int


def rows_from_events(events: Iterable[Any]) -> list[UsageRow]:
    """Ledger :class:`~llmbudget.core.ledger.UsageEvent` s as rows."""
    return [UsageRow(e.at, e.labels, e.prompt_tokens + e.completion_tokens) for e in events]


def rows_from_records(records: Iterable[Any]) -> list[UsageRow]:
    """Usage-log :class:`~llmbudget.replay.UsageRecord` s as rows."""
    return [
        UsageRow(r.time.timestamp(), r.labels, r.prompt_tokens + r.completion_tokens)
        for r in records
    ]


@dataclass(frozen=True, slots=True)
class Observation:
    """What ``count`` agents of ``role`` spent in ``phase`` of ``project`` (``tokens``), from
    ``calls`` calls starting at ``at``; ``static`` holds the static tables' values for its
    role, phase and complexity (``base``, ``multiplier``, ``factor``)."""

    project: str
    phase: str
    role: str
    complexity: str | float
    count: int
    tokens: int
    at: float
    calls: int
    static: tuple[float, float, float]

    @property
    def static_prediction(self) -> float:
        """The formula with the static tables."""
        b, m, f = self.static
        return self.count * b * m * f

    def key(self, kind: str) -> str | None:
        """The table entry this observation uses in ``kind`` (``None``: a numeric
        complexity, not a table entry)."""
        if kind == "roles":
            return self.role
        if kind == "phases":
            return self.phase
        return self.complexity if isinstance(self.complexity, str) else None

    def predict(self, tables: Tables) -> float:
        """The formula with ``tables``, falling back on the static value for an entry
        ``tables`` lacks (or a numeric complexity)."""
        out = float(self.count)
        for i, kind in enumerate(KINDS):
            k = self.key(kind)
            table: Mapping[str, float] = getattr(tables, kind)
            out *= table[k] if k is not None and k in table else self.static[i]
        return out


def _complexity_label(value: str, tables: Tables) -> str | float | None:
    name = tables.resolve("complexity", value)
    if name is not None:
        return name
    try:
        f = float(value)
    except ValueError:
        return None
    return f if math.isfinite(f) and f > 0 else None


def observations(
    rows: Iterable[UsageRow], plan: Plan | None = None, tables: Tables | None = None
) -> tuple[list[Observation], dict[str, int]]:
    """Group usage into observations; also return how many calls were skipped, by reason.

    ``tables`` (default: the plan's, else the seed's) resolve names and give the static
    values; a project in ``plan`` uses its own tables and complexity."""
    base_tables = tables or (plan.tables if plan else DEFAULT_TABLES)
    named = plan.agent_roles() if plan else {}
    skipped: dict[str, int] = {}
    groups: dict[tuple[str, str, str], list[Any]] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for r in rows:
        lab = r.labels
        project = lab.get("project")
        if not project:
            skip("no project label")
            continue
        pj = plan.project(project) if plan else None
        t = pj.tables if pj else base_tables
        if "phase" not in lab:
            skip("no phase label")
            continue
        phase = t.resolve("phases", lab["phase"])
        if phase is None:
            skip("unknown phase")
            continue
        role = None
        if "role" in lab:
            role = t.resolve("roles", lab["role"])
        elif "agent" in lab:
            role = t.resolve("roles", lab["agent"]) or named.get(lab["agent"])
        if role is None:
            skip("no known role (label role or agent)")
            continue
        complexity: str | float | None = None
        if "complexity" in lab:
            complexity = _complexity_label(lab["complexity"], t)
        elif pj is not None:
            complexity = pj.complexity
        if complexity is None:
            skip("no complexity (label or plan)")
            continue
        g = groups.setdefault((project, phase, role), [r.at, 0, 0, complexity, t, set()])
        g[0] = min(g[0], r.at)
        g[1] += r.tokens
        g[2] += 1
        g[5].add(lab.get("agent", role))
    out = []
    for (project, phase, role), (at, tokens, calls, complexity, t, agents) in groups.items():
        pj = plan.project(project) if plan else None
        count = (pj.role_counts(phase).get(role) if pj else None) or max(1, len(agents))
        factor = t.complexity[complexity] if isinstance(complexity, str) else complexity
        out.append(
            Observation(
                project,
                phase,
                role,
                complexity,
                count,
                tokens,
                at,
                calls,
                (t.roles[role], t.phases[phase], factor),
            )
        )
    out.sort(key=lambda o: (o.at, o.project, o.phase, o.role))
    return out, skipped


@dataclass(frozen=True, slots=True)
class Fit:
    """Learned tables (``tables``: the prior's, with fitted entries), the entries that were
    fitted (``free``, as ``kind.name``), how many observations, ``λ``, and the residual
    standard deviation in log space."""

    tables: Tables
    free: tuple[str, ...]
    observations: int
    prior_weight: float
    residual_sd: float
    anchors: tuple[str, ...] = DEFAULT_ANCHORS


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve ``a x = b`` for a symmetric positive definite ``a`` (Cholesky)."""
    n = len(b)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = a[i][j] - sum(low[i][k] * low[j][k] for k in range(j))
            if i == j:
                if s <= 0:
                    raise ValueError("the normal equations are not positive definite")
                low[i][i] = math.sqrt(s)
            else:
                low[i][j] = s / low[j][j]
    y = [0.0] * n
    for i in range(n):
        y[i] = (b[i] - sum(low[i][k] * y[k] for k in range(i))) / low[i][i]
    x = [0.0] * n
    for i in reversed(range(n)):
        x[i] = (y[i] - sum(low[k][i] * x[k] for k in range(i + 1, n))) / low[i][i]
    return x


def fit_tables(
    obs: Sequence[Observation],
    prior: Tables = DEFAULT_TABLES,
    *,
    prior_weight: float = 1.0,
    anchors: Sequence[str] = DEFAULT_ANCHORS,
) -> Fit:
    """Fit the tables to ``obs`` (ridge least squares in log space; see the module docs).
    Entries no observation uses keep their prior value."""
    if not (isinstance(prior_weight, int | float) and math.isfinite(prior_weight)):
        raise ValueError(f"prior_weight must be a positive number, got {prior_weight!r}")
    if prior_weight <= 0:
        raise ValueError(f"prior_weight must be greater than 0, got {prior_weight!r}")
    used = {f"{kind}.{k}" for o in obs for kind in KINDS if (k := o.key(kind)) is not None}
    free = [
        f"{kind}.{k}"
        for kind in KINDS
        for k in getattr(prior, kind)
        if f"{kind}.{k}" in used and f"{kind}.{k}" not in anchors
    ]
    index = {name: i for i, name in enumerate(free)}
    n = len(free)
    ata = [[prior_weight if i == j else 0.0 for j in range(n)] for i in range(n)]
    atr = [0.0] * n
    rows: list[tuple[list[int], float]] = []
    for o in obs:
        prior_log = math.log(o.predict(prior))
        cols = [index[c] for kind in KINDS if (c := f"{kind}.{o.key(kind)}") in index]
        r = math.log(o.tokens) - prior_log if o.tokens > 0 else math.log(0.5) - prior_log
        rows.append((cols, r))
        for i in cols:
            atr[i] += r
            for j in cols:
                ata[i][j] += 1.0
    delta = _solve(ata, atr) if n else []
    values: dict[str, dict[str, float]] = {kind: dict(getattr(prior, kind)) for kind in KINDS}
    for name, d in zip(free, delta, strict=True):
        kind, key = name.split(".", 1)
        values[kind][key] *= math.exp(d)
    resid = [r - sum(delta[i] for i in cols) for cols, r in rows]
    sd = math.sqrt(sum(x * x for x in resid) / len(resid)) if resid else 0.0
    return Fit(
        Tables(values["roles"], values["phases"], values["complexity"]),
        tuple(free),
        len(obs),
        float(prior_weight),
        sd,
        tuple(anchors),
    )


@dataclass(frozen=True, slots=True)
class Accuracy:
    """How close predictions came: ``n`` predictions, the share ``within`` ±tolerance,
    mean (``mape``) and median absolute percentage error, and the median ratio
    predicted/actual (``ratio``: above 1 over-predicts)."""

    n: int
    within: float
    mape: float
    median_ape: float
    ratio: float
    tolerance: float = 0.2

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (fractions, not percent)."""
        return {
            "n": self.n,
            "within": round(self.within, 4),
            "mape": round(self.mape, 4),
            "median_ape": round(self.median_ape, 4),
            "ratio": round(self.ratio, 4),
            "tolerance": self.tolerance,
        }


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def accuracy(pairs: Iterable[tuple[float, float]], tolerance: float = 0.2) -> Accuracy:
    """Score (predicted, actual) pairs; pairs with ``actual <= 0`` are left out."""
    ps = [(p, a) for p, a in pairs if a > 0]
    if not ps:
        return Accuracy(0, math.nan, math.nan, math.nan, math.nan, tolerance)
    ape = [abs(p - a) / a for p, a in ps]
    return Accuracy(
        len(ps),
        sum(1 for e in ape if e <= tolerance + 1e-12) / len(ps),
        sum(ape) / len(ape),
        _median(ape),
        _median([p / a for p, a in ps]),
        tolerance,
    )


LEVELS = ("observation", "phase", "project")


def score(obs: Sequence[Observation], predict: Any, tolerance: float = 0.2) -> dict[str, Accuracy]:
    """Accuracy of ``predict(observation) -> tokens`` per observation, per project phase and
    per project (predictions and actuals summed within each)."""
    sums: dict[str, dict[tuple[str, ...], list[float]]] = {lv: {} for lv in LEVELS}
    for o in obs:
        p = float(predict(o))
        for lv, key in (
            ("observation", (o.project, o.phase, o.role)),
            ("phase", (o.project, o.phase)),
            ("project", (o.project,)),
        ):
            acc = sums[lv].setdefault(key, [0.0, 0.0])
            acc[0] += p
            acc[1] += o.tokens
    return {lv: accuracy(((p, a) for p, a in sums[lv].values()), tolerance) for lv in LEVELS}


@dataclass(frozen=True, slots=True)
class AccuracyReport:
    """Static vs learned tables on held-out projects, and the tables fitted on everything."""

    train_projects: tuple[str, ...]
    test_projects: tuple[str, ...]
    static: dict[str, Accuracy]
    learned: dict[str, Accuracy]
    fit: Fit
    fit_all: Fit
    observations: int
    skipped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "observations": self.observations,
            "skipped": dict(self.skipped),
            "train_projects": list(self.train_projects),
            "test_projects": list(self.test_projects),
            "held_out": {
                "static": {k: v.to_dict() for k, v in self.static.items()},
                "learned": {k: v.to_dict() for k, v in self.learned.items()},
            },
            "method": {
                "fit": "ridge least squares in log space towards the prior tables",
                "prior_weight": self.fit.prior_weight,
                "anchors": list(self.fit.anchors),
                "residual_sd_log": round(self.fit.residual_sd, 4),
            },
            "learned_tables": {
                kind: {k: round(v, 4) for k, v in getattr(self.fit_all.tables, kind).items()}
                for kind in KINDS
            },
            "fitted_entries": list(self.fit_all.free),
        }


def split_by_project(
    obs: Sequence[Observation], holdout: float
) -> tuple[list[Observation], list[Observation]]:
    """Earlier projects (by first event) for training, the last ``holdout`` share for
    testing (at least one project on each side)."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be between 0 and 1 (a share of projects), got {holdout}")
    first: dict[str, float] = {}
    for o in obs:
        first[o.project] = min(first.get(o.project, o.at), o.at)
    order = sorted(first, key=lambda p: (first[p], p))
    if len(order) < 2:
        raise ValueError(
            f"a held-out comparison needs usage from at least 2 projects, got {len(order)}"
        )
    n_test = min(len(order) - 1, max(1, round(len(order) * holdout)))
    test = set(order[len(order) - n_test :])
    return [o for o in obs if o.project not in test], [o for o in obs if o.project in test]


def accuracy_report(
    obs: Sequence[Observation],
    prior: Tables = DEFAULT_TABLES,
    *,
    holdout: float = 0.3,
    prior_weight: float = 1.0,
    tolerance: float = 0.2,
    skipped: Mapping[str, int] | None = None,
) -> AccuracyReport:
    """Fit on the earlier projects, score static and learned tables on the later ones."""
    train, test = split_by_project(obs, holdout)
    fit = fit_tables(train, prior, prior_weight=prior_weight)
    fit_all = fit_tables(obs, prior, prior_weight=prior_weight)
    return AccuracyReport(
        tuple(dict.fromkeys(o.project for o in train)),
        tuple(dict.fromkeys(o.project for o in test)),
        score(test, lambda o: o.static_prediction, tolerance),
        score(test, lambda o: o.predict(fit.tables), tolerance),
        fit,
        fit_all,
        len(obs),
        dict(skipped or {}),
    )
