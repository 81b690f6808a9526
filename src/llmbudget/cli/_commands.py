"""``init``, ``record``, ``check``, ``approvals``, ``approve``, ``deny``, ``replay``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ._app import (
    EXIT_APPROVAL,
    EXIT_BLOCKED,
    EXIT_OK,
    cwd_relative,
    fail,
    load_governor,
    out,
    settings,
)

if TYPE_CHECKING:
    from ..core.decide import Decision
    from ..governor import Governor

LabelOpt = Annotated[
    list[str] | None,
    typer.Option("--label", "-l", help="A label as key=value (repeatable), e.g. -l agent=planner."),
]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Shortcut for -l model=M.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    for name, fn in (
        ("init", init),
        ("record", record),
        ("check", check),
        ("approvals", approvals),
        ("approve", approve),
        ("deny", deny),
        ("replay", replay),
    ):
        app.command(name)(fn)


def _gov(*, need_policy: bool = True) -> Governor:
    from ..governor import Governor

    gov = load_governor(need_policy=need_policy)
    assert isinstance(gov, Governor)
    return gov


def parse_labels(items: list[str] | None, model: str | None) -> dict[str, str]:
    """``["agent=planner", ...]`` → a dict; a malformed item is a clear error."""
    labels: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            fail(f"--label {item!r}: expected key=value, e.g. --label agent=planner")
        labels[key.strip()] = value.strip()
    if model:
        labels["model"] = model
    return labels


def _decision_json(d: Decision) -> dict[str, Any]:
    return {
        "allowed": d.allowed,
        "action": d.action.value,
        "reason": d.reason,
        "budgets": [
            {
                "budget": c.budget.name,
                "key": c.key,
                "window": c.window.id,
                "used": c.used,
                "reserved": c.reserved,
                "requested": c.requested,
                "limit": c.limit,
                "projected": c.projected,
                "level": c.level.label if c.level else "normal",
                "action": c.action.value,
                "refused": c.refused and c.enforced,
            }
            for c in d.checks
        ],
    }


def _print_decision(d: Decision, *, verb: str = "allowed") -> None:
    style = (
        "green" if d.allowed and d.action.value == "continue" else "yellow" if d.allowed else "red"
    )
    out.print(f"[{style}]{verb if d.allowed else 'refused'}[/{style}]: {d.reason}", markup=True)
    for c in d.checks:
        out.print(f"  {c.describe()}")


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the policy.")] = Path(
        "llmbudget.yaml"
    ),
    mode: Annotated[str, typer.Option(help="Enforcement mode: block or warn.")] = "block",
    timezone: Annotated[str, typer.Option(help="IANA zone for day/week/month windows.")] = "UTC",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a starter policy: the policy seed's four levels per run, day and month, and its
    per-model budgets for Groq and OpenAI models."""
    from zoneinfo import ZoneInfo

    from ..policy import STARTER_POLICY, parse_policy

    if mode not in ("block", "warn"):
        fail(f"--mode {mode!r}: expected block or warn")
    try:
        ZoneInfo(timezone)
    except (KeyError, ValueError):
        fail(f"--timezone {timezone!r} is not an IANA zone name (e.g. UTC, Europe/Paris)")
    if path.exists() and not force:
        fail(f"{cwd_relative(path)} already exists; pass --force to overwrite it")
    text = STARTER_POLICY.replace("\nmode: block ", f"\nmode: {mode} ").replace(
        "\ntimezone: UTC ", f"\ntimezone: {timezone} "
    )
    parse_policy(text, str(path))  # the starter must always be valid
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        fail(f"cannot write {path}: {e.strerror}")
    out.print(
        f"wrote {cwd_relative(path)} (mode {mode}, timezone {timezone}); "
        f"see where you stand with: llmbudget --policy {cwd_relative(path)} status"
    )


def record(
    prompt_tokens: Annotated[int, typer.Option(help="Prompt tokens the call used.")],
    completion_tokens: Annotated[int, typer.Option(help="Completion tokens the call used.")],
    label: LabelOpt = None,
    model: ModelOpt = None,
    cached_tokens: Annotated[int, typer.Option(help="Of the prompt, served from cache.")] = 0,
    event_id: Annotated[
        str | None,
        typer.Option("--id", help="Idempotency key: recording the same id twice counts once."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record usage that already happened (never refused: it is spent)."""
    labels: dict[str, Any] = parse_labels(label, model)
    with _gov() as gov:
        d = gov.record(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached_tokens,
            idempotency_key=event_id,
            **labels,
        )
    if as_json:
        out.print_json(json.dumps(_decision_json(d)))
    else:
        _print_decision(d, verb="recorded")


def check(
    prompt_tokens: Annotated[int, typer.Option(help="Prompt tokens of the call.")],
    max_completion_tokens: Annotated[
        int | None, typer.Option(help="Completion tokens to allow (default: the policy's default).")
    ] = None,
    label: LabelOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Would this call be allowed now? A dry run for shell scripts. Exit 0 allowed,
    3 blocked, 4 approval needed, 2 bad input, 1 ledger failure."""
    labels: dict[str, Any] = parse_labels(label, model)
    with _gov() as gov:
        d = gov.check(
            prompt_tokens=prompt_tokens, max_completion_tokens=max_completion_tokens, **labels
        )
    if as_json:
        out.print_json(json.dumps(_decision_json(d)))
    else:
        _print_decision(d)
    if not d.allowed:
        bad = d.refusing
        raise typer.Exit(EXIT_APPROVAL if bad and bad.action.value == "approve" else EXIT_BLOCKED)
    raise typer.Exit(EXIT_OK)


def approvals(
    all_: Annotated[bool, typer.Option("--all", help="Also approved and denied ones.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List approval requests (pending ones by default)."""
    with _gov(need_policy=False) as gov:
        rows = gov.approvals(None if all_ else "pending")
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "approvals": [
                        {
                            "id": a.id,
                            "budget": a.budget,
                            "key": a.key,
                            "window": a.window_id,
                            "requested": a.requested,
                            "state": a.state,
                            "granted": a.granted,
                            "labels": a.labels,
                            "created_at": a.created_at,
                            "resolved_by": a.resolved_by,
                            "note": a.note,
                        }
                        for a in rows
                    ]
                }
            )
        )
        return
    if not rows:
        out.print("No pending approval requests." if not all_ else "No approval requests.")
        return
    t = Table(title="Approval requests", title_justify="left")
    for col in ("id", "state", "budget", "window", "requested", "granted", "labels"):
        t.add_column(col)
    for a in rows:
        t.add_row(
            a.id,
            a.state,
            a.budget,
            a.window_id,
            f"{a.requested:,}",
            f"{a.granted:,}",
            ",".join(f"{k}={v}" for k, v in a.labels.items()),
        )
    out.print(t)


def approve(
    request_id: Annotated[str, typer.Argument(help="The request id (see `approvals`).")],
    tokens: Annotated[
        int | None,
        typer.Option(
            help="Headroom to grant for the counter's window (default: what was requested)."
        ),
    ] = None,
    note: Annotated[str, typer.Option(help="Why, for the record.")] = "",
) -> None:
    """Grant more headroom to the counter a request is for, for its window."""
    with _gov(need_policy=False) as gov:
        a = gov.approve(request_id, tokens, note=note)
    note_ = (
        "the caller can retry now"
        if a.granted >= a.requested
        else f"less than the {a.requested:,} requested: that call may still not fit"
    )
    out.print(
        f"approved {a.id}: +{a.granted:,} for {a.budget} ({a.window_id}) by "
        f"{a.resolved_by}; {note_}"
    )


def deny(
    request_id: Annotated[str, typer.Argument(help="The request id (see `approvals`).")],
    note: Annotated[str, typer.Option(help="Why, for the record.")] = "",
) -> None:
    """Refuse an approval request: calls on that counter stay refused for its window."""
    with _gov(need_policy=False) as gov:
        a = gov.deny(request_id, note=note)
    out.print(f"denied {a.id} for {a.budget} ({a.window_id}) by {a.resolved_by}")


def replay(
    usage_log: Annotated[Path, typer.Argument(help="A JSONL or CSV usage log.")],
    as_json: JsonOpt = False,
    incidents: Annotated[int, typer.Option(help="How many incidents to list.", min=0)] = 15,
) -> None:
    """Backtest the policy: replay a usage log on a scratch ledger and show what would have
    been warned, alerted, flagged, blocked or sent for approval. Changes no ledger."""
    from ..policy import find_policy, load_policy
    from ..replay import read_usage_log
    from ..replay import replay as run_replay

    path = find_policy(settings.policy)
    if path is None:
        fail("no policy file found: create one with `llmbudget init`, or pass --policy")
    report = run_replay(load_policy(path), read_usage_log(usage_log))
    if as_json:
        out.print_json(json.dumps(report.to_json()))
        return
    out.print(
        f"Replayed {report.records:,} calls from {cwd_relative(usage_log)} against "
        f"{cwd_relative(path)}: {report.allowed:,} allowed, {report.blocked:,} blocked, "
        f"{report.approvals:,} sent for approval."
    )
    t = Table(title="What the policy would have done", title_justify="left")
    for col in (
        "budget",
        "calls",
        "tokens",
        "peak %",
        "warn",
        "alert",
        "flag",
        "blocked",
        "approval",
    ):
        t.add_column(col, justify="left" if col == "budget" else "right")
    for name, tally in sorted(report.budgets.items()):
        ev = tally.events
        t.add_row(
            name,
            f"{tally.calls:,}",
            f"{tally.tokens:,}",
            f"{tally.peak_percent:.0f}",
            *(str(ev.get(k, 0) or "") for k in ("warn", "alert", "flag", "blocked", "approval")),
        )
    out.print(t)
    if report.incidents and incidents:
        out.print(
            f"First {min(incidents, len(report.incidents))} of {len(report.incidents)} incidents:"
        )
        for inc in report.incidents[:incidents]:
            out.print(f"  line {inc['line']} {inc['time']}: {inc['message']}")
