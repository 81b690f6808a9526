"""``llmbudget plan estimate|allocate|accuracy``: estimates from plans, session budgets, and
how well the formula (static or learned from history) predicts real usage.

:func:`register` adds the ``plan`` group to the main Typer app. Bad input never shows a
traceback: it prints one ``error: ...`` line on stderr and exits with code 2 (1 when the
ledger fails).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .._errors import LLMBudgetError
from ._app import fail, out, settings

if TYPE_CHECKING:
    from ..plans import AccuracyReport, Plan, SessionAllocation

__all__ = ["register"]

plan_app = typer.Typer(
    name="plan",
    help="Estimates from plans (the strategy seed's formula), session budgets, accuracy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

PlanArg = Annotated[
    Path, typer.Argument(metavar="PLAN", help="Plan file (YAML; see examples/plan.yaml).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@contextmanager
def _errors() -> Iterator[None]:
    """llmbudget errors go to the app's handler (exit 2/1); other bad values exit 2."""
    try:
        yield
    except LLMBudgetError:
        raise
    except (ValueError, OSError) as e:
        fail(str(e))


def _load(path: Path) -> Plan:
    from ..plans import load_plan

    return load_plan(path)


def _tokens(x: float) -> str:
    return f"{x:,.0f}"


@plan_app.command("estimate")
def estimate_cmd(plan: PlanArg, as_json: JsonOpt = False) -> None:
    """Predict each project's tokens, phase by phase: base[role] × multiplier[phase] ×
    factor[complexity]."""
    from ..plans import estimate_plan

    with _errors():
        est = estimate_plan(_load(plan))
    if as_json:
        typer.echo(json.dumps(est.to_dict(), ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title=f"Estimate for {plan} (base × phase multiplier × complexity factor)")
    for col in ("project", "complexity", "phase", "agents", "multiplier", "tokens"):
        table.add_column(col, justify="right" if col in ("multiplier", "tokens") else "left")
    for pe in est.projects:
        cx = (
            f"{pe.complexity} ({pe.factor:g}x)"
            if isinstance(pe.complexity, str)
            else f"{pe.factor:g}x"
        )
        for i, ph in enumerate(pe.phases):
            agents = " + ".join(
                (f"{a.count}×" if a.count > 1 else "") + f"{a.role} {a.base / 1000:g}K"
                for a in ph.agents
            )
            table.add_row(
                pe.project if i == 0 else "",
                cx if i == 0 else "",
                ph.phase,
                agents,
                f"{ph.multiplier:g}x",
                _tokens(ph.tokens),
            )
        table.add_row("", "", "", f"total {pe.project}", "", _tokens(pe.tokens), end_section=True)
    table.add_row("all projects", "", "", "", "", _tokens(est.tokens))
    out.print(table)


def _parse_total(value: str) -> int:
    from ..policy._schema import parse_amount

    try:
        total = parse_amount(value)
    except ValueError:
        fail(f"--total: expected a number of tokens such as 200000 or 200k, got {value!r}")
    if total != int(total) or total <= 0:
        fail(f"--total: expected a positive whole number of tokens, got {value!r}")
    return int(total)


def _parse_match(items: list[str]) -> dict[str, str]:
    from ..core.policy import LABEL_NAME

    sel = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value or not LABEL_NAME.match(key):
            fail(f"--match: expected LABEL=VALUE such as team=alpha, got {item!r}")
        sel[key] = value
    return sel


def _render_allocation(alloc: SessionAllocation) -> None:
    from rich.table import Table

    table = Table(title=f"Session total {alloc.total:,} tokens")
    for col in ("part", "share", "allocated", "predicted"):
        table.add_column(col, justify="left" if col == "part" else "right")
    pct = 100 / alloc.total
    table.add_row(
        "orchestrator reserve", f"{alloc.orchestrator * pct:g} %", _tokens(alloc.orchestrator), ""
    )
    for ph in alloc.phases:
        table.add_row(
            f"phase {ph.phase}", f"{ph.share:g} %", _tokens(ph.tokens), _tokens(ph.predicted)
        )
        for s in ph.projects:
            table.add_row(f"  {s.project}", "", _tokens(s.tokens), _tokens(s.predicted))
    table.add_row("emergency reserve", f"{alloc.emergency * pct:g} %", _tokens(alloc.emergency), "")
    table.add_row("total", "100 %", _tokens(alloc.total), _tokens(alloc.predicted))
    out.print(table)
    for note in alloc.notes:
        out.print(f"note: {note}")


@plan_app.command("allocate")
def allocate_cmd(
    plan: PlanArg,
    total: Annotated[
        str, typer.Option("--total", "-t", help="Session total in tokens (200000, 200k).")
    ],
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the budgets (YAML) to this file.")
    ] = None,
    as_json: JsonOpt = False,
    prefix: Annotated[str, typer.Option("--prefix", help="Budget name prefix.")] = "plan",
    per: Annotated[
        list[str] | None,
        typer.Option("--per", help="Partition every budget by this label (repeatable), e.g. run."),
    ] = None,
    match: Annotated[
        list[str] | None,
        typer.Option("--match", help="Add LABEL=VALUE to every budget's match (repeatable)."),
    ] = None,
    warn_at: Annotated[float, typer.Option("--warn-at", help="Warn at this % of a budget.")] = 90.0,
    pause_at: Annotated[
        float, typer.Option("--pause-at", help="Pause for approval at this % of a budget.")
    ] = 110.0,
) -> None:
    """Split a session total into orchestrator reserve, phase budgets per project (in
    proportion to the predictions) and an emergency reserve, as policy budgets."""
    from ..plans import allocate, allocation_policy
    from ..policy import policy_from_mapping

    n = _parse_total(total)
    selector = _parse_match(match or [])
    with _errors():
        p = _load(plan)
        alloc = allocate(p, n)
        mapping = allocation_policy(
            alloc,
            prefix=prefix,
            per=per or [],
            match=selector,
            warn_at=warn_at,
            pause_at=pause_at,
        )
        policy_from_mapping(mapping, f"<budgets from {plan}>")  # what we write is valid
    if as_json:
        typer.echo(
            json.dumps({"allocation": alloc.to_dict(), "policy": mapping}, ensure_ascii=False)
        )
        if out_file is None:
            return
    import yaml

    text = (
        f"# Budgets for the plan {plan}: session total {n:,} tokens, written by\n"
        "# `llmbudget plan allocate`. Copy the budgets into your policy (or use this file as\n"
        "# the policy). Levels: warn at "
        f"{warn_at:g} %, pause for approval at {pause_at:g} %.\n"
        + yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True, width=100)
    )
    if out_file is None:
        typer.echo(text, nl=False)
        return
    with _errors():
        out_file.write_text(text, encoding="utf-8")
    if not as_json:
        _render_allocation(alloc)
        out.print(f"wrote {len(mapping['budgets'])} budgets to {out_file}")


def _usage_rows(usage_log: Path | None) -> list[Any]:
    from ..plans import rows_from_events, rows_from_records

    if usage_log is not None:
        from ..replay import read_usage_log

        return rows_from_records(read_usage_log(usage_log))
    from ..store import open_store

    with open_store(settings.ledger) as store:
        return rows_from_events(store.events())


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1%}"


def _render_accuracy(rep: AccuracyReport, source: str) -> None:
    from rich.table import Table

    table = Table(
        title=(
            f"Held-out accuracy from {source}: fitted on {len(rep.train_projects)} earlier "
            f"projects, scored on the {len(rep.test_projects)} latest"
        )
    )
    for col in ("level", "n", "tables", "within ±20 %", "MAPE", "median APE", "pred/actual"):
        table.add_column(col, justify="left" if col in ("level", "tables") else "right")
    labels = {
        "observation": "agent × phase",
        "phase": "project × phase",
        "project": "project",
    }
    for lv, name in labels.items():
        for kind, acc in (("static", rep.static[lv]), ("learned", rep.learned[lv])):
            table.add_row(
                name if kind == "static" else "",
                str(acc.n) if kind == "static" else "",
                kind,
                _pct(acc.within),
                _pct(acc.mape),
                _pct(acc.median_ape),
                "-" if math.isnan(acc.ratio) else f"{acc.ratio:.2f}",
                end_section=kind == "learned",
            )
    out.print(table)
    t = rep.fit_all.tables
    out.print(
        "learned tables (fitted on all history; ridge in log space, λ = "
        f"{rep.fit_all.prior_weight:g}):"
    )
    out.print("  roles: " + ", ".join(f"{k} {v:,.0f}" for k, v in t.roles.items()))
    out.print("  phases: " + ", ".join(f"{k} {v:.2f}x" for k, v in t.phases.items()))
    out.print("  complexity: " + ", ".join(f"{k} {v:.2f}x" for k, v in t.complexity.items()))
    if rep.skipped:
        out.print(
            "skipped calls: " + ", ".join(f"{v:,} ({k})" for k, v in sorted(rep.skipped.items()))
        )


@plan_app.command("accuracy")
def accuracy_cmd(
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="Plan giving tables, complexities and named agents."),
    ] = None,
    usage_log: Annotated[
        Path | None,
        typer.Option("--usage-log", help="JSONL or CSV usage log (default: the ledger)."),
    ] = None,
    holdout: Annotated[
        float, typer.Option("--holdout", help="Share of the latest projects held out.")
    ] = 0.3,
    prior_weight: Annotated[
        float, typer.Option("--prior-weight", help="Ridge weight towards the prior tables.")
    ] = 1.0,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Within-tolerance band (0.2 = ±20 %).")
    ] = 0.2,
    tables_out: Annotated[
        Path | None,
        typer.Option("--tables-out", help="Write the learned tables as a plan `tables:` file."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score the formula against recorded usage labelled project/phase/agent: static tables
    vs tables learned from the earlier projects, on the later ones."""
    from ..plans import DEFAULT_TABLES, accuracy_report, observations

    if not 0 < tolerance < 10:
        fail(f"--tolerance must be a fraction such as 0.2, got {tolerance}")
    with _errors():
        p = _load(plan) if plan is not None else None
        rows = _usage_rows(usage_log)
        obs, skipped = observations(rows, p)
        if not obs:
            why = ", ".join(f"{v:,} {k}" for k, v in skipped.items()) or "no usage at all"
            fail(
                f"no usage labelled with project, phase and a role was found ({why}); label "
                "calls project=..., phase=..., agent=<role> (and complexity=... or pass --plan)"
            )
        rep = accuracy_report(
            obs,
            p.tables if p is not None else DEFAULT_TABLES,
            holdout=holdout,
            prior_weight=prior_weight,
            tolerance=tolerance,
            skipped=skipped,
        )
    if tables_out is not None:
        import yaml

        t = rep.fit_all.tables
        doc = {
            "tables": {
                kind: {
                    k: round(v, 3 if kind != "roles" else 0) for k, v in getattr(t, kind).items()
                }
                for kind in ("roles", "phases", "complexity")
            }
        }
        with _errors():
            tables_out.write_text(
                "# tables learned by `llmbudget plan accuracy`; paste into a plan file\n"
                + yaml.safe_dump(doc, sort_keys=False),
                encoding="utf-8",
            )
    if as_json:
        typer.echo(json.dumps(rep.to_dict()))
        return
    _render_accuracy(rep, str(usage_log) if usage_log else "the ledger")
    if tables_out is not None:
        out.print(f"wrote the learned tables to {tables_out}")


def register(app: typer.Typer) -> None:
    """Add the ``plan`` group (``estimate``, ``allocate``, ``accuracy``) to ``app``."""
    app.add_typer(plan_app, name="plan")
