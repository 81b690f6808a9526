"""The LiteLLM hook against the local provider stand-in: reserve before, commit after
(success or failure), refuse async calls before anything is sent."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llmbudget import BudgetExceeded, Governor

from ._helpers import counter, totals
from ._server import ProviderServer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
litellm = pytest.importorskip("litellm")
from llmbudget.integrations.litellm import LLMBudgetLogger  # noqa: E402

MSGS = [{"role": "user", "content": "Say hello a few times."}]
# LiteLLM's own models trip these inside pydantic; they are not ours to fix
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*using the `ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore:Accessing the 'model_.*' attribute on the instance"),
]


@pytest.fixture
def hook(make_gov: Callable[..., Governor]) -> Iterator[Callable[..., LLMBudgetLogger]]:
    saved = list(litellm.callbacks)

    def make(limit: int = 1_000_000) -> LLMBudgetLogger:
        h = LLMBudgetLogger(make_gov(limit), app="lite")
        litellm.callbacks = [h]
        return h

    yield make
    litellm.callbacks = saved


def settled(h: LLMBudgetLogger, events: int, timeout: float = 10.0) -> None:
    """LiteLLM runs success callbacks in the background: wait for them."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if h.open_reservations == 0 and totals(h.gov)["events"] >= events:
            return
        time.sleep(0.02)
    raise AssertionError(f"not settled: {h.open_reservations} open, {totals(h.gov)}")


async def asettled(h: LLMBudgetLogger, timeout: float = 10.0) -> None:
    """LiteLLM schedules async callbacks as tasks on the caller's loop: keep it running."""
    end = time.monotonic() + timeout
    while h.open_reservations and time.monotonic() < end:
        await asyncio.sleep(0.02)


def call(server: ProviderServer, **kw: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o",
        "api_base": server.url + "/v1",
        "api_key": "test",
        "messages": MSGS,
        "max_tokens": 32,
        **kw,
    }


def test_async_completion_reserves_and_commits(server: ProviderServer, hook: Any) -> None:
    server.reset(prompt_tokens=26, completion_tokens=9, cached_tokens=4)
    h = hook()

    async def main() -> None:
        await litellm.acompletion(**call(server))
        await asettled(h)

    asyncio.run(main())
    settled(h, 1)
    assert totals(h.gov) == {
        "prompt": 26,
        "completion": 9,
        "cached": 4,
        "reasoning": 0,
        "events": 1,
    }
    (ev,) = h.gov.store.events()
    assert ev.labels["model"] == "gpt-4o"
    assert ev.labels["provider"] == "openai"
    assert ev.labels["app"] == "lite"
    assert ev.estimated_completion == 32
    assert ev.estimated_prompt == h.gov.count_prompt("gpt-4o", messages=MSGS)


def test_sync_completion_is_reserved_before_the_request(server: ProviderServer, hook: Any) -> None:
    # Sync completion(): the reservation is made in log_pre_api_call. Its settlement rides
    # on LiteLLM's background success logging, which this LiteLLM release does not always
    # deliver in a short-lived process; the async path (above) is the enforced one.
    server.reset(prompt_tokens=30, completion_tokens=5)
    h = hook()
    r = litellm.completion(**call(server, metadata={"llmbudget_labels": {"agent": "a1"}}))
    assert r.usage.prompt_tokens == 30
    st = h.gov.status(budget="run")
    assert st and st[0].used + st[0].reserved > 0


def test_async_refused_before_sending(server: ProviderServer, hook: Any) -> None:
    h = hook(limit=20)

    async def main() -> None:
        await litellm.acompletion(**call(server))

    with pytest.raises(BudgetExceeded):
        asyncio.run(main())
    assert server.state.requests == []
    assert counter(h.gov) == (0, 0)
