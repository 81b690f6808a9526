"""The Typer application: global options, error handling, exit codes.

Exit codes (documented in ``docs/cli.md``): 0 ok / allowed; 1 the ledger failed;
2 bad input (usage, policy, unknown ids); 3 blocked by a budget; 4 approval required
(or denied).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from .._errors import (
    ApprovalDenied,
    ApprovalRequired,
    BudgetExceeded,
    ConfigError,
    InvalidUsage,
    LLMBudgetError,
    NotFound,
    ReservationError,
    StoreError,
    TokenizerError,
    UnknownModel,
)

EXIT_OK, EXIT_STORE, EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_APPROVAL = 0, 1, 2, 3, 4

app = typer.Typer(
    name="llmbudget",
    help="Token budget governance for LLM calls: policies, a ledger, approvals, backtests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _console(stderr: bool) -> Console:
    c = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not c.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
        c = Console(stderr=stderr, highlight=False, soft_wrap=True, width=max(c.width, 160))
    return c


out = _console(False)
err = _console(True)


@dataclass
class Settings:
    """Global options, resolved lazily."""

    policy: str | None = None
    ledger: str | None = None


settings = Settings()


@app.callback()
def _globals(
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            "-p",
            envvar="LLMBUDGET_POLICY",
            show_envvar=True,
            help="Policy file (default: ./llmbudget.yaml, then the user config folder).",
        ),
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            envvar="LLMBUDGET_LEDGER",
            show_envvar=True,
            help="Ledger URL or path (default: SQLite in the user data folder).",
        ),
    ] = None,
) -> None:
    settings.policy = policy
    settings.ledger = ledger


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    err.print(f"[red]error:[/red] {message}", markup=True)
    raise typer.Exit(code)


def load_governor(*, need_policy: bool = True) -> object:
    """The :class:`~llmbudget.Governor` for the global options (import kept lazy)."""
    from ..core.policy import Policy
    from ..governor import Governor
    from ..policy import find_policy

    path = find_policy(settings.policy)
    if path is None:
        if need_policy:
            fail(
                "no policy file found: create one with `llmbudget init` (writes "
                "./llmbudget.yaml), or pass --policy / set LLMBUDGET_POLICY"
            )
        return Governor(Policy(), settings.ledger, labels=_cli_labels())
    return Governor(path, settings.ledger, labels=_cli_labels())


def _cli_labels() -> dict[str, str]:
    """The ``run`` label of CLI calls: ``$LLMBUDGET_RUN``, else ``cli`` — one stable run, so
    ``record`` and ``check`` see each other's usage on per-run budgets (pass ``-l run=ID``
    to separate runs)."""
    return {"run": os.environ.get("LLMBUDGET_RUN") or "cli"}


def exit_code_for(e: BaseException) -> int:
    """The documented exit code for an llmbudget error."""
    if isinstance(e, ApprovalRequired | ApprovalDenied):
        return EXIT_APPROVAL
    if isinstance(e, BudgetExceeded):
        return EXIT_BLOCKED
    if isinstance(e, StoreError):
        return EXIT_STORE
    if isinstance(
        e, ConfigError | InvalidUsage | NotFound | ReservationError | UnknownModel | TokenizerError
    ):
        return EXIT_BAD_INPUT
    return EXIT_STORE


def _register() -> None:
    """Add every command module's commands (each module has ``register(app)``)."""
    from importlib import import_module

    for name in ("_commands", "_status", "_tokens_cmds", "_run_cmd", "_plan_cmds"):
        try:
            module = import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as e:  # a command module not built yet
            if e.name != f"{__package__}.{name}":
                raise
            continue
        module.register(app)


def run(argv: list[str] | None = None) -> None:
    """Run the CLI; every llmbudget error becomes one readable line and an exit code."""
    _register()
    try:
        app(args=argv, prog_name="llmbudget", standalone_mode=True)
    except LLMBudgetError as e:
        from ._render import print_refusal

        if isinstance(e, BudgetExceeded):
            print_refusal(err, e)
        else:
            err.print(f"[red]error:[/red] {e}", markup=True)
        sys.exit(exit_code_for(e))
    except KeyboardInterrupt:
        sys.exit(130)


def cwd_relative(p: Path) -> str:
    """``p`` relative to the current folder when it is below it (for shorter messages)."""
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return os.fspath(p)
