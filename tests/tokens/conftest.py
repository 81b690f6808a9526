"""Shared fixtures for the tokens tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _tokens_corpus import CORPUS

from llmbudget.tokens._registry import TokenizerRegistry


@pytest.fixture
def registry() -> TokenizerRegistry:
    """A fresh registry, so warn-once state and registrations do not leak between tests."""
    return TokenizerRegistry()


@pytest.fixture(params=[name for name, _ in CORPUS])
def corpus_item(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Each corpus item, one test per item."""
    return next(item for item in CORPUS if item[0] == request.param)
