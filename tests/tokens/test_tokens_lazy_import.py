"""Importing llmbudget (and llmbudget.tokens) must not load any tokenizer library."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["quicktok", "tiktoken", "tokenizers", "mistral_common", "numpy", "regex"]

_PROBE = """
import json, sys
import llmbudget, llmbudget.tokens
from llmbudget.tokens import count_text, counter_for, price_for, estimate_completion, calibrate
llmbudget.tokens.describe_model("gpt-4o")
before = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
count_text("gpt-4o", "hello")
after = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print(json.dumps([before, after]))
"""


def test_import_loads_no_tokenizer_until_a_count() -> None:
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", _PROBE.format(heavy=set(HEAVY))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    before, after = json.loads(out)
    assert before == []
    assert "quicktok" in after
    assert not any(m.split(".")[0] in {"tiktoken", "tokenizers", "mistral_common"} for m in after)
