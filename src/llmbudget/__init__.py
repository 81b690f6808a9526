"""llmbudget: token budget governance for LLM applications and agent teams.

Count every call with the model's own tokenizer, reserve it atomically against every budget
that applies before it runs, cut streams off when the budget runs out, and settle with the
provider's real usage afterwards.

>>> import llmbudget
>>> gov = llmbudget.Governor({"budgets": [{"name": "run", "per": ["run"], "limit": 10_000}]},
...                          store="memory://")
>>> with gov.reserve(model="gpt-4o", prompt_tokens=500, max_completion_tokens=300) as r:
...     _ = r.commit(prompt_tokens=500, completion_tokens=120)

Importing this package is cheap: no tokenizer, YAML, Pydantic, CLI or provider SDK is loaded
until it is needed (the public names below are resolved on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    ApprovalDenied,
    ApprovalRequired,
    BudgetExceeded,
    ConfidenceReached,
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

if TYPE_CHECKING:
    from ._reservation import Reservation
    from .core.decide import BudgetCheck, Decision
    from .core.policy import Action, Budget, Level, Mode, Policy, Unit
    from .core.windows import Window
    from .governor import CounterStatus, Governor
    from .policy import load_policy
    from .store import Store, open_store

__version__ = "0.1.0"

_LAZY = {
    "Governor": "governor",
    "CounterStatus": "governor",
    "Reservation": "_reservation",
    "Decision": "core.decide",
    "BudgetCheck": "core.decide",
    "Policy": "core.policy",
    "Budget": "core.policy",
    "Level": "core.policy",
    "Action": "core.policy",
    "Mode": "core.policy",
    "Unit": "core.policy",
    "Window": "core.windows",
    "load_policy": "policy",
    "Store": "store",
    "open_store": "store",
}

__all__ = [
    "Action",
    "ApprovalDenied",
    "ApprovalRequired",
    "Budget",
    "BudgetCheck",
    "BudgetExceeded",
    "ConfidenceReached",
    "ConfigError",
    "CounterStatus",
    "Decision",
    "Governor",
    "InvalidUsage",
    "LLMBudgetError",
    "Level",
    "Mode",
    "NotFound",
    "Policy",
    "PolicyError",
    "Reservation",
    "ReservationError",
    "SchemaError",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TokenizerError",
    "Unit",
    "UnknownModel",
    "Window",
    "__version__",
    "load_policy",
    "open_store",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmbudget' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
