"""Fixtures for the tbcontracts-compatible API: a manager over each embedded store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmbudget.compat.tbcontracts import BudgetManager

MakeManager = Callable[..., BudgetManager]


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/team.db"


@pytest.fixture
def make_manager(store_url: str) -> Iterator[MakeManager]:
    made: list[BudgetManager] = []

    def make(**kw: Any) -> BudgetManager:
        kw.setdefault("store", store_url)
        m = BudgetManager(**kw)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


def fake_llm(prompt: str) -> str:
    """A stand-in LLM: answers with as many words as the prompt has, plus three."""
    return " ".join(["word"] * (len(prompt.split()) + 3))
