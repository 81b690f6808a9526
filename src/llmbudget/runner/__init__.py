"""Running CLI agents under budgets (``llmbudget run``): reading their stream-json output into
usage deltas (:mod:`.stream`), commands and budget flags (:mod:`.commands`), and supervising
their processes. No CLI code lives here."""

from __future__ import annotations

from .commands import base_command, parse_command_budget, parse_limit
from .stream import Anomaly, Delta, StreamTracker, TokenUsage, UsageMode

__all__ = [
    "Anomaly",
    "Delta",
    "StreamTracker",
    "TokenUsage",
    "UsageMode",
    "base_command",
    "parse_command_budget",
    "parse_limit",
]
