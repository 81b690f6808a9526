"""The package's public face: a curated ``__all__``, cheap import, one error tree."""

from __future__ import annotations

import subprocess
import sys

import llmbudget


def test_public_names_are_pinned() -> None:
    assert llmbudget.__all__ == [
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
    for name in llmbudget.__all__:
        obj = getattr(llmbudget, name)
        assert name == "__version__" or obj.__doc__, f"{name} has no docstring"


def test_errors_form_one_tree() -> None:
    for name in llmbudget.__all__:
        obj = getattr(llmbudget, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, llmbudget.LLMBudgetError)
    assert issubclass(llmbudget.ApprovalRequired, llmbudget.BudgetExceeded)
    assert issubclass(llmbudget.InvalidUsage, ValueError)


def test_import_is_light() -> None:
    code = (
        "import sys, llmbudget\n"
        "heavy = ('pydantic', 'yaml', 'typer', 'rich', 'quicktok', 'tiktoken', 'tokenizers',\n"
        "         'redis', 'psycopg', 'openai', 'anthropic', 'platformdirs', 'sqlite3')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
        "llmbudget.Governor\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "[]"
    assert out[1] == "[]"  # stores are imported when a governor opens one
