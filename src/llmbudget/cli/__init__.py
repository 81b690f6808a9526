"""The ``llmbudget`` command line (Typer + Rich). Thin: every decision is the governor's."""

from __future__ import annotations


def main() -> None:
    """Console-script entry point."""
    from ._app import run

    run()
