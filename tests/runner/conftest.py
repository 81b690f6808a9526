"""Fixtures for the runner tests (helpers live in ``_helpers``)."""

from __future__ import annotations

from ._helpers import ledger_totals, run_cli

__all__ = ["ledger_totals", "run_cli"]
