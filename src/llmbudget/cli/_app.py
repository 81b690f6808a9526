"""The Typer application (filled in by the command modules)."""

from __future__ import annotations


def run() -> None:
    """Run the CLI."""
    raise SystemExit("llmbudget CLI: under construction")
