"""tbcontracts (``token-budget-contracts``) API on llmbudget: change one import.

>>> from llmbudget.compat.tbcontracts import BudgetManager
>>> manager = BudgetManager()
>>> _ = manager.register_agent("researcher", priority=3, max_tokens=4000)
>>> _ = manager.register_agent("critic", priority=1, max_tokens=2000)
>>> @manager.govern("researcher")
... def call_researcher(prompt: str) -> str:
...     return "the figures are in the annual report"
>>> call_researcher("find the latest figures on X")
'the figures are in the annual report'
>>> manager.report()["researcher"]
{'allocated': 4000, 'consumed': 16, 'remaining': 3984}

Same names, signatures, defaults, return shapes and exceptions as tbcontracts 0.3.0; on top:
thread-safe, optionally durable (``BudgetManager(store="sqlite:///team.db")``), counting with
a model's tokenizer (``model=``), and refusing *before* a call that cannot fit. Differences
are listed in ``docs/compat-tbcontracts.md``.
"""

from __future__ import annotations

from ._tbc_contract import BudgetContract, ConfidenceGate, count_text_tokens, estimate_tokens
from ._tbc_errors import (
    BudgetExceededError,
    ConfidenceGateClosed,
    InvalidContract,
    TBCError,
    UnknownAgentError,
)
from ._tbc_ledger import Ledger, LedgerEntry, Reallocator
from ._tbc_manager import BudgetManager
from ._tbc_telemetry import TelemetryRecorder

__version__ = "0.3.0"  # the tbcontracts API version this module mirrors

__all__ = [
    "BudgetContract",
    "BudgetExceededError",
    "BudgetManager",
    "ConfidenceGate",
    "ConfidenceGateClosed",
    "InvalidContract",
    "Ledger",
    "LedgerEntry",
    "Reallocator",
    "TBCError",
    "TelemetryRecorder",
    "UnknownAgentError",
    "count_text_tokens",
    "estimate_tokens",
]
