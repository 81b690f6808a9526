"""``llmbudget status``: where every live counter stands."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.live import Live

from ._app import load_governor, out


def register(app: typer.Typer) -> None:
    """Add ``status`` to ``app``."""
    app.command("status")(status)


def _rows(budget: str | None) -> list[Any]:
    from ..governor import Governor

    gov = load_governor()
    assert isinstance(gov, Governor)
    with gov:
        if budget is not None and gov._planner.rule(budget) is None:
            from .._errors import NotFound

            names = ", ".join(b.name for b in gov.policy.budgets[:12])
            raise NotFound(f"no budget {budget!r} in {gov.policy.source}; budgets: {names}")
        return gov.status(budget=budget)


def status(
    budget: Annotated[str | None, typer.Option(help="Only this budget.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    watch: Annotated[
        float | None, typer.Option("--watch", help="Refresh every N seconds until Ctrl-C.", min=0.2)
    ] = None,
) -> None:
    """A line per live counter: bar (green < 70 %, yellow 70-90 %, red > 90 %), level,
    used/limit, reset time."""
    from ._render import status_table

    if as_json:
        rows = _rows(budget)
        out.print_json(
            json.dumps(
                {
                    "counters": [
                        {
                            "budget": r.budget,
                            "key": r.key,
                            "partition": r.partition,
                            "window": r.window,
                            "unit": r.unit,
                            "used": r.used,
                            "reserved": r.reserved,
                            "granted": r.granted,
                            "limit": r.limit,
                            "percent": round(r.percent, 2),
                            "level": r.level,
                            "action": r.action,
                            "remaining": r.remaining,
                            "borrowed": r.borrowed,
                            "lent": r.lent,
                            "closed": r.closed,
                            "resets_at": r.resets_at.isoformat() if r.resets_at else None,
                        }
                        for r in rows
                    ]
                }
            )
        )
        return
    if watch is None:
        rows = _rows(budget)
        if not rows:
            out.print(
                "No live counters yet: nothing has been reserved or recorded in the "
                "current windows."
            )
            return
        out.print(status_table(rows))
        return
    with Live(status_table(_rows(budget)), console=out, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(watch)
                live.update(status_table(_rows(budget)), refresh=True)
        except KeyboardInterrupt:
            pass
