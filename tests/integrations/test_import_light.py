"""``import llmbudget`` and ``import llmbudget.integrations`` load no provider SDK or
framework (each is an optional extra, imported only when a client of its kind is wrapped)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["openai", "anthropic", "groq", "litellm", "langchain_core", "httpx", "httpx2"]


def _loaded(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_llmbudget_loads_no_sdk() -> None:
    assert _loaded("import llmbudget") == []


def test_import_integrations_loads_no_sdk() -> None:
    assert _loaded("import llmbudget.integrations") == []
    assert _loaded("from llmbudget.integrations import wrap, PartialResult") == []


def test_wrapping_openai_loads_only_openai() -> None:
    code = (
        "import llmbudget, openai\n"
        "gov = llmbudget.Governor({'budgets': []}, store='memory://')\n"
        "gov.wrap(openai.OpenAI(api_key='k', base_url='http://127.0.0.1:9'))"
    )
    loaded = _loaded(code)
    assert "anthropic" not in loaded and "groq" not in loaded and "litellm" not in loaded


def test_wrapping_something_else_is_a_clear_error() -> None:
    import pytest

    from llmbudget import ConfigError, Governor

    gov = Governor({"budgets": []}, store="memory://")
    with pytest.raises(ConfigError, match="supported clients are"):
        gov.wrap(object())
