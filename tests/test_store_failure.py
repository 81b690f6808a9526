"""A governor whose ledger is unreachable: fail_closed refuses naming the store, fail_open
allows and journals, and a bad mode is a clear error."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from llmbudget import ConfigError, Governor, StoreUnavailable

POLICY = {"budgets": [{"name": "run", "per": ["run"], "limit": 1000}]}


def dead_redis_url() -> str:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_fail_closed_names_the_store() -> None:
    pytest.importorskip("redis", reason="install llmbudget[redis] to run this test")
    url = dead_redis_url()
    with pytest.raises(StoreUnavailable, match="127.0.0.1"):
        gov = Governor(POLICY, url)
        gov.reserve(prompt_tokens=1, max_completion_tokens=1)


def test_fail_open_allows_and_journals(tmp_path: Path) -> None:
    pytest.importorskip("redis", reason="install llmbudget[redis] to run this test")
    journal = tmp_path / "journal.jsonl"
    gov = Governor(POLICY, dead_redis_url(), on_store_failure="fail_open", journal=journal)
    with gov.reserve(prompt_tokens=10, max_completion_tokens=5) as r:
        r.commit(prompt_tokens=10, completion_tokens=3)
    gov.record(prompt_tokens=1, completion_tokens=1, idempotency_key="k1")
    assert journal.exists()
    assert journal.read_text().count("\n") >= 2


def test_bad_failure_mode() -> None:
    with pytest.raises(ConfigError, match="fail_closed"):
        Governor(POLICY, "memory://", on_store_failure="ignore")
