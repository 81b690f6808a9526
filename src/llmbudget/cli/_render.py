"""Rendering for people: progress bars, status tables, refusals. No decisions here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._errors import ApprovalDenied, ApprovalRequired, BudgetExceeded
from ..governor import CounterStatus


def colour(percent: float) -> str:
    """Green below 70 %, yellow 70–90 %, red above 90 % (the orchestrator seed's bands)."""
    if percent > 90:
        return "red"
    if percent >= 70:
        return "yellow"
    return "green"


def bar(percent: float, width: int = 20) -> Text:
    """A coloured ``[█████░░░░░]`` bar for ``percent`` (capped at the width)."""
    filled = max(0, min(width, round(width * percent / 100)))
    return Text.assemble("[", ("█" * filled, colour(percent)), ("░" * (width - filled), "dim"), "]")


def human(n: float) -> str:
    """1234 → 1.2K, 1_500_000 → 1.5M."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.1f}{suffix}"
    return f"{n:.0f}"


def amount(n: int, unit: str) -> str:
    """Tokens as ``1.2K``; USD budgets (micro-dollars inside) as ``$1.23``."""
    return f"${n / 1e6:,.2f}" if unit == "usd" else human(n)


def when(dt: datetime | None) -> str:
    """A reset time for a table cell."""
    return "never" if dt is None else dt.strftime("%Y-%m-%d %H:%M %Z")


def status_table(rows: Sequence[CounterStatus], *, title: str = "Budgets") -> Table:
    """One line per counter: budget [partition], window, bar, %, used/limit, level, reset."""
    t = Table(title=title, title_justify="left", expand=False, pad_edge=False)
    for col in ("budget", "window", "usage", "%", "used / limit", "level", "resets"):
        t.add_column(col, no_wrap=True)
    for r in rows:
        pct = r.percent
        part = ",".join(f"{k}={v}" for k, v in r.partition.items())
        name = f"{r.budget} [{part}]" if part else r.budget
        notes = []
        if r.reserved:
            notes.append(f"+{amount(r.reserved, r.unit)} held")
        if r.borrowed:
            notes.append(f"borrowed {amount(r.borrowed, r.unit)}")
        if r.lent:
            notes.append(f"lent {amount(r.lent, r.unit)}")
        reserved = f" ({', '.join(notes)})" if notes else ""
        level = Text(
            "closed (confident)" if r.closed else r.level,
            style="bold red"
            if r.action in ("block", "approve")
            else "yellow"
            if r.action in ("warn", "alert", "flag")
            else "",
        )
        t.add_row(
            Text(name),
            r.window,
            bar(pct),
            Text(f"{pct:.0f}%", style=colour(pct)),
            f"{amount(r.used, r.unit)} / {amount(r.limit, r.unit)}{reserved}",
            level,
            when(r.resets_at),
        )
    return t


def print_refusal(console: Console, e: BudgetExceeded) -> None:
    """A refusal, readably: what refused, the numbers, when it resets, what to do."""
    kind = (
        "approval denied"
        if isinstance(e, ApprovalDenied)
        else "approval required"
        if isinstance(e, ApprovalRequired)
        else "blocked"
    )
    console.print(
        f"[bold red]{kind}:[/bold red] budget [bold]{e.budget}[/bold] ({e.window})", markup=True
    )
    unit = e.unit
    console.print(
        f"  limit {amount(e.limit, unit)}, used {amount(e.used, unit)}, reserved "
        f"{amount(e.reserved, unit)}, requested {amount(e.requested, unit)}; "
        f"resets {when(e.resets_at)}"
    )
    if isinstance(e, ApprovalRequired | ApprovalDenied):
        console.print(f"  request id: {e.request_id}")
    if e.suggestion:
        console.print(f"  {e.suggestion}")
