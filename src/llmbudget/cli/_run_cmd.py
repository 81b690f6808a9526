"""``llmbudget run``: run CLI agents (Claude-Code-style stream-json printers) under a session
budget and per-command budgets, with a live status box, warn or block. See ``docs/runner.md``.

The domain (reading stream-json, the supervisor) lives in :mod:`llmbudget.runner`; this module
only turns flags into a policy and a supervisor, and draws.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .._errors import LLMBudgetError
from ._app import err, fail, out, settings
from ._render import bar, colour, human

__all__ = ["register", "status_box"]

BOX_WIDTH = 77


def _cell(text: Text | str, width: int) -> Text:
    t = text if isinstance(text, Text) else Text(text)
    t = t.copy()
    t.truncate(width, overflow="ellipsis")
    t.align("left", width)
    return t


def _flag(pct: float) -> str:
    if pct > 100:
        return " (EXCEEDED)"
    if pct >= 90:
        return " (Warning!)"
    return ""


def status_box(snapshot: Any, *, visuals: bool = True) -> RenderableType:
    """The orchestrator seed's ``BUDGET STATUS`` box (or plain lines without visuals), then
    one line per instance."""
    from ..runner.supervisor import Snapshot

    assert isinstance(snapshot, Snapshot)
    inner = BOX_WIDTH - 4
    rows: list[Text] = []
    budgets = list(snapshot.budgets)
    overall = [b for b in budgets if b.kind == "overall"]
    commands = [b for b in budgets if b.kind == "command"]
    others = [b for b in budgets if b.kind == "policy"]

    def figures(b: Any) -> Text:
        pct = b.percent
        return Text.assemble(
            (f"{pct:.0f}%", colour(pct)), f" {human(b.used)}/{human(b.limit)}", _flag(pct)
        )

    if not visuals:
        parts = [
            f"{b.label} {b.percent:.0f}% {human(b.used)}/{human(b.limit)}{_flag(b.percent)}"
            for b in budgets
        ]
        lines = [Text("Budget status: " + ("; ".join(parts) if parts else "no budgets"))]
        for i in snapshot.instances:
            lines.append(Text(f"  {i.name}: {i.state}, {human(i.tokens)} tokens"))
        return Group(*lines)

    for b in overall:
        rows.append(Text.assemble("Overall: ", bar(b.percent), " ", figures(b)))
    if commands:
        rows.append(Text("Command Budgets:"))
        for b in commands:
            rows.append(
                Text.assemble("  ", _cell(b.label, 20), " ", bar(b.percent), " ", figures(b))
            )
    if others:
        rows.append(Text("Policy Budgets:"))
        for b in others:
            rows.append(
                Text.assemble("  ", _cell(b.label, 20), " ", bar(b.percent), " ", figures(b))
            )
    if not budgets:
        rows.append(Text("no budgets (only counting)", style="dim"))
    box = [
        Text("╔" + "═" * (BOX_WIDTH - 2) + "╗"),
        Text.assemble("║ ", _cell(Text("BUDGET STATUS", style="bold"), inner), " ║"),
    ]
    box += [Text.assemble("║ ", _cell(r, inner), " ║") for r in rows]
    box.append(Text("╚" + "═" * (BOX_WIDTH - 2) + "╝"))
    t = Table.grid(padding=(0, 2))
    for _ in range(4):
        t.add_column(no_wrap=True)
    for i in snapshot.instances:
        style = {"running": "green", "stopping": "red", "ok": "", "pending": "dim"}.get(
            i.state, "yellow"
        )
        elapsed = "" if i.elapsed is None else f"{i.elapsed:.0f}s"
        t.add_row(f"  {i.name}", Text(i.state, style=style), f"{human(i.tokens)} tokens", elapsed)
    return Group(*box, t)


def _report_tables(report: Any) -> RenderableType:
    from ..runner.supervisor import RunReport

    assert isinstance(report, RunReport)
    t = Table(title=f"Run {report.run_id}: instances", title_justify="left", pad_edge=False)
    for col in ("instance", "command", "state", "exit", "input", "cache w/r", "output", "total"):
        t.add_column(col, no_wrap=True)
    t.add_column("agent $", no_wrap=True)
    notes: list[Text] = []
    for i in report.instances:
        u = i.usage
        s = i.stream
        anomalies = "; ".join(
            f"{n} {k.replace('_', ' ')} (line{'s' if n > 1 else ''} "
            + ", ".join(map(str, s["anomaly_lines"][k][:8]))
            + (", …" if n > 8 else "")
            + ")"
            for k, n in s["anomalies"].items()
        )
        sessions = f", {s['sessions']} sessions" if s["sessions"] > 1 else ""
        note = f"  {i.name}: {s['lines']} lines, {s['messages']} messages{sessions}"
        if anomalies:
            note += f"; {anomalies}"
        if i.reason:
            note += f"; {i.reason}"
        if i.unrecorded.total:
            note += f"; {i.unrecorded.total:,} tokens could not be recorded"
        notes.append(Text(note, style="dim"))
        bad = ("stopped", "refused", "failed")
        state = Text(
            i.state + (" (SIGKILL)" if i.killed else ""),
            style="green" if i.state == "ok" else "red" if i.state in bad else "yellow",
        )
        t.add_row(
            i.name,
            i.base_command or "-",
            state,
            "-" if i.exit_code is None else str(i.exit_code),
            f"{u.input:,}",
            f"{u.cache_creation:,}/{u.cache_read:,}",
            f"{u.output:,}",
            f"{u.total:,}",
            "-" if s["cost_usd"] is None else f"{s['cost_usd']:.4f}",
        )
    c = Table(title="per command", title_justify="left", pad_edge=False)
    for col in ("command", "instances", "total tokens", "budget", "%"):
        c.add_column(col, no_wrap=True)
    limits = {b.label: b for b in report.budgets if b.kind == "command"}
    counts: dict[str, int] = {}
    for i in report.instances:
        counts[i.base_command or "-"] = counts.get(i.base_command or "-", 0) + 1
    for cmd, u in report.by_command().items():
        b = limits.get(cmd)
        c.add_row(
            cmd,
            str(counts[cmd]),
            f"{u.total:,}",
            "-" if b is None else f"{b.limit:,}",
            "-" if b is None else Text(f"{b.percent:.0f}%", style=colour(b.percent)),
        )
    n = len(report.instances)
    total = Text(
        f"Total: {report.total.total:,} tokens over {n} instance(s) in {report.elapsed:.1f}s"
    )
    return Group(t, *notes, c, total)


def _print_event(ev: Any, quiet: bool) -> None:
    if ev.level == "info":
        if quiet:
            return
        prefix = f"[{ev.instance}] " if ev.kind == "stderr" and ev.instance else ""
        err.print(Text(prefix + ev.message, style="dim"))
    elif ev.level == "warning":
        msg = ev.message if ev.message.startswith("WARNING") else f"warning: {ev.message}"
        err.print(Text(msg, style="yellow"))
    else:
        msg = ev.message if ev.message.startswith(("BLOCK", "ERROR")) else f"error: {ev.message}"
        err.print(Text(msg, style="red"))


def register(app: typer.Typer) -> None:
    """Add ``run`` to the CLI."""

    @app.command(
        "run",
        context_settings={"allow_interspersed_args": False},
        help=(
            "Run CLI agents that print stream-json (Claude Code style) under a session budget "
            "and per-command budgets: live status box, warn or block. Either --config FILE "
            "(several instances) or a program after `--`: "
            "llmbudget run --command /test --overall-token-budget 5000 -- claude -p '/test' "
            "--output-format stream-json --verbose"
        ),
    )
    def run_cmd(
        program: Annotated[
            list[str] | None,
            typer.Argument(
                help="The program to run and its arguments (after --).", show_default=False
            ),
        ] = None,
        overall_token_budget: Annotated[
            str | None,
            typer.Option(
                "--overall-token-budget",
                help="Token limit for the whole run (e.g. 5000, 50k).",
                show_default=False,
            ),
        ] = None,
        command_budget: Annotated[
            list[str] | None,
            typer.Option(
                "--command-budget",
                help='Per-command budget "/cmd=N" (repeatable).',
                show_default=False,
            ),
        ] = None,
        budget_enforcement_mode: Annotated[
            str | None,
            typer.Option(
                "--budget-enforcement-mode",
                help="warn (log) or block (refuse to start, stop on crossing). Default warn.",
                show_default=False,
            ),
        ] = None,
        disable_budget_visuals: Annotated[
            bool,
            typer.Option(
                "--disable-budget-visuals", help="Status reports without the box and bars."
            ),
        ] = False,
        status_report_interval: Annotated[
            float | None,
            typer.Option(
                "--status-report-interval",
                help="Seconds between status reports (0: only at the end). Default 5.",
                show_default=False,
            ),
        ] = None,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config",
                help="JSON/YAML file of instances (name, command, program).",
                show_default=False,
            ),
        ] = None,
        command: Annotated[
            str | None,
            typer.Option(
                "--command",
                help="The command the program runs (its first word keys --command-budget).",
                show_default=False,
            ),
        ] = None,
        name: Annotated[
            str | None,
            typer.Option(
                "--name", help="Instance name for the program (default: agent).", show_default=False
            ),
        ] = None,
        usage_mode: Annotated[
            str,
            typer.Option(
                "--usage-mode",
                help="auto, message (sum per message id) or cumulative (running totals).",
            ),
        ] = "auto",
        max_parallel: Annotated[
            int | None,
            typer.Option(
                "--max-parallel",
                help="Instances running at once (default: all).",
                show_default=False,
            ),
        ] = None,
        timeout: Annotated[
            float | None,
            typer.Option(
                "--timeout",
                help="Seconds an instance may run before it is stopped.",
                show_default=False,
            ),
        ] = None,
        grace_period: Annotated[
            float, typer.Option("--grace-period", help="Seconds between SIGTERM and SIGKILL.")
        ] = 5.0,
        report_json: Annotated[
            Path | None,
            typer.Option(
                "--report-json",
                help="Also write the final report as JSON here.",
                show_default=False,
            ),
        ] = None,
        no_policy: Annotated[
            bool,
            typer.Option(
                "--no-policy", help="Ignore the policy file: only the flag budgets apply."
            ),
        ] = False,
        run_id: Annotated[
            str | None,
            typer.Option("--run-id", help="The run label (default: a new id).", show_default=False),
        ] = None,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Only warnings, errors and the final report.")
        ] = False,
    ) -> None:
        try:
            code = _run(
                program=program or [],
                overall_token_budget=overall_token_budget,
                command_budget=command_budget or [],
                mode=budget_enforcement_mode,
                visuals=not disable_budget_visuals,
                interval=status_report_interval,
                config=config,
                command=command,
                name=name,
                usage_mode=usage_mode,
                max_parallel=max_parallel,
                timeout=timeout,
                grace=grace_period,
                report_json=report_json,
                no_policy=no_policy,
                run_id=run_id,
                quiet=quiet,
            )
        except LLMBudgetError as e:
            from .._errors import StoreError

            fail(str(e), 1 if isinstance(e, StoreError) else 2)
        raise typer.Exit(code)


def _run(
    *,
    program: list[str],
    overall_token_budget: str | None,
    command_budget: list[str],
    mode: str | None,
    visuals: bool,
    interval: float | None,
    config: Path | None,
    command: str | None,
    name: str | None,
    usage_mode: str,
    max_parallel: int | None,
    timeout: float | None,
    grace: float,
    report_json: Path | None,
    no_policy: bool,
    run_id: str | None,
    quiet: bool,
) -> int:
    from ..governor import Governor, check_labels
    from ..runner.budgets import run_policy
    from ..runner.commands import parse_command_budget, parse_limit
    from ..runner.config import InstanceSpec, RunConfig, check_program, load_config
    from ..runner.stream import UsageMode
    from ..runner.supervisor import Supervisor

    # -- flags -------------------------------------------------------------------------------
    if mode is not None and mode not in ("warn", "block"):
        fail(f"--budget-enforcement-mode must be warn or block, got {mode!r}")
    if usage_mode not in ("auto", "message", "cumulative"):
        fail(f"--usage-mode must be auto, message or cumulative, got {usage_mode!r}")
    if interval is not None and not interval >= 0:
        fail(f"--status-report-interval must be 0 or more seconds, got {interval:g}")
    if not grace >= 0:
        fail(f"--grace-period must be 0 or more seconds, got {grace:g}")
    if timeout is not None and not timeout > 0:
        fail(f"--timeout must be more than 0 seconds, got {timeout:g}")
    if max_parallel is not None and max_parallel < 1:
        fail(f"--max-parallel must be at least 1, got {max_parallel}")
    overall = (
        parse_limit(overall_token_budget, "--overall-token-budget")
        if overall_token_budget is not None
        else None
    )
    flag_commands: dict[str, int] = {}
    for spec in command_budget:
        cmd, limit = parse_command_budget(spec)
        if cmd in flag_commands:
            fail(
                f"--command-budget for {cmd} is given twice ({flag_commands[cmd]:,} and {limit:,})"
            )
        flag_commands[cmd] = limit
    if run_id is not None:
        check_labels({"run": run_id})

    # -- instances ---------------------------------------------------------------------------
    cfg = load_config(config) if config is not None else RunConfig(())
    specs = list(cfg.instances)
    if program:
        direct = name or "agent"
        if any(s.name == direct for s in specs):
            fail(f"instance name {direct!r} is also in {config}; pick another with --name")
        specs.append(InstanceSpec(direct, tuple(program), command))
    elif command is not None or name is not None:
        fail("--command and --name describe a program given after `--`; none was given")
    if not specs:
        fail(
            "nothing to run: give --config FILE, or a program after `--`, e.g. "
            "llmbudget run --command /test -- claude -p /test --output-format stream-json --verbose"
        )
    for s in specs:
        check_program(s)
    if overall is None:
        overall = cfg.overall_token_budget
    commands = {**cfg.command_budgets, **flag_commands}
    mode = mode or cfg.budget_enforcement_mode or "warn"
    interval = (
        interval
        if interval is not None
        else (cfg.status_report_interval if cfg.status_report_interval is not None else 5.0)
    )
    used_commands = {s.base_command for s in specs}
    for cmd in commands:
        if cmd not in used_commands:
            err.print(
                Text(
                    f"warning: no instance runs {cmd}; its --command-budget has nothing to govern",
                    style="yellow",
                )
            )

    # -- policy and governor -----------------------------------------------------------------
    base = None
    if not no_policy:
        from ..policy import find_policy, load_policy

        path = find_policy(settings.policy)
        if path is not None:
            base = load_policy(path)
    policy, budgets = run_policy(overall=overall, commands=commands, mode=mode, base=base)
    rid = run_id or uuid.uuid4().hex[:12]
    gov = Governor(policy, settings.ledger, labels={"run": rid}, log_events=False)

    live: Live | None = None
    console: Console = out
    use_live = visuals and interval > 0 and console.is_terminal

    def on_status(snap: Any) -> None:
        r = status_box(snap, visuals=visuals)
        if live is not None:
            live.update(r, refresh=True)
        else:
            console.print(r)

    sup = Supervisor(
        gov,
        specs,
        budgets=budgets,
        run_id=rid,
        usage_mode=UsageMode(usage_mode),
        max_parallel=max_parallel,
        timeout=timeout,
        grace_seconds=grace,
        status_interval=interval,
        on_event=lambda ev: _print_event(ev, quiet),
        on_status=on_status,
    )
    if not quiet:
        where = f" (+ {policy.source})" if base is not None else ""
        err.print(Text(f"run {rid}: {len(specs)} instance(s), mode {mode}{where}", style="dim"))
    try:
        if use_live:
            with Live(
                status_box(sup.snapshot()), console=console, auto_refresh=False, transient=True
            ) as lv:
                live = lv
                report = sup.run()
            live = None
        else:
            report = sup.run()
    finally:
        gov.close()
    final = err if report_json is not None and str(report_json) == "-" else console
    final.print(status_box(sup.snapshot(), visuals=visuals))
    final.print(_report_tables(report))
    if report_json is not None:
        data = json.dumps(report.as_dict(), indent=2)
        if str(report_json) == "-":
            sys.stdout.write(data + "\n")
        else:
            try:
                report_json.write_text(data + "\n", encoding="utf-8")
            except OSError as e:
                fail(f"cannot write --report-json {report_json}: {e.strerror}", 1)
    return report.exit_code
