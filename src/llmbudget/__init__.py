"""llmbudget: token budget governance for LLM applications and agent teams.

Count every call with the model's own tokenizer, reserve it atomically against every budget
that applies before it runs, cut streams off when the budget runs out, and settle with the
provider's real usage afterwards.

Importing this package is cheap: no tokenizer, YAML, Pydantic, CLI or provider SDK is loaded
until it is needed.
"""

from __future__ import annotations

from ._errors import (
    ApprovalDenied,
    ApprovalRequired,
    BudgetExceeded,
    ConfigError,
    InvalidUsage,
    LLMBudgetError,
    NotFound,
    PolicyError,
    ReservationError,
    SchemaError,
    StoreError,
    StoreUnavailable,
    TokenizerError,
    UnknownModel,
)

__version__ = "0.1.0"

__all__ = [
    "ApprovalDenied",
    "ApprovalRequired",
    "BudgetExceeded",
    "ConfigError",
    "InvalidUsage",
    "LLMBudgetError",
    "NotFound",
    "PolicyError",
    "ReservationError",
    "SchemaError",
    "StoreError",
    "StoreUnavailable",
    "TokenizerError",
    "UnknownModel",
    "__version__",
]
