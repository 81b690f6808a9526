"""Governed Anthropic and Groq clients (sync, async, streaming) against the local provider
stand-in: ledger totals equal the usage the server reported; cut-offs return partials."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anthropic
import groq
import pytest

from llmbudget import BudgetExceeded, Governor
from llmbudget.integrations import PartialResult

from ._helpers import counter, totals, track
from ._server import ProviderServer

CLAUDE = "claude-sonnet-4-6"
LLAMA = "llama-3.1-8b-instant"
MSGS = [{"role": "user", "content": "Say hello a few times."}]


def anth(server: ProviderServer, gov: Governor, *, asynchronous: bool = False, **kw: Any) -> Any:
    kw.setdefault("max_retries", 0)
    if asynchronous:
        return gov.wrap(anthropic.AsyncAnthropic(base_url=server.url, api_key="test", **kw))
    return gov.wrap(track(anthropic.Anthropic(base_url=server.url, api_key="test", **kw)))


def grq(server: ProviderServer, gov: Governor, *, asynchronous: bool = False, **kw: Any) -> Any:
    kw.setdefault("max_retries", 0)
    if asynchronous:
        return gov.wrap(groq.AsyncGroq(base_url=server.url, api_key="test", **kw))
    return gov.wrap(track(groq.Groq(base_url=server.url, api_key="test", **kw)))


# -- Anthropic ---------------------------------------------------------------------------------
def test_anthropic_create_adds_cache_reads_to_the_prompt(
    server: ProviderServer, make_gov: Any
) -> None:
    # Anthropic's input_tokens excludes cache reads and writes; all three are billed input
    server.reset(prompt_tokens=30, cached_tokens=200, cache_creation=50, completion_tokens=9)
    gov = make_gov()
    r = anth(server, gov).messages.create(
        model=CLAUDE, system="Be brief.", messages=MSGS, max_tokens=64
    )
    assert r.content[0].text == " hello" * 5
    assert totals(gov) == {
        "prompt": 280,
        "completion": 9,
        "cached": 200,
        "reasoning": 0,
        "events": 1,
    }
    (ev,) = gov.store.events()
    assert ev.labels["provider"] == "anthropic"
    assert ev.labels["operation"] == "messages"
    assert ev.estimated_completion == 64
    system_and_messages = [{"role": "system", "content": "Be brief."}, *MSGS]
    assert ev.estimated_prompt == gov.count_prompt(CLAUDE, messages=system_and_messages)


def test_anthropic_async_and_stream(server: ProviderServer, make_gov: Any) -> None:
    server.reset(prompt_tokens=40, cached_tokens=10, completion_tokens=8, chunks=8)
    gov = make_gov()

    async def main() -> str:
        async with anth(server, gov, asynchronous=True) as c:
            await c.messages.create(model=CLAUDE, messages=MSGS, max_tokens=32)
            s = await c.messages.create(model=CLAUDE, messages=MSGS, max_tokens=32, stream=True)
            text = ""
            async for ev in s:
                if ev.type == "content_block_delta":
                    text += ev.delta.text
            return text

    assert asyncio.run(main()) == " hello" * 8
    s = anth(server, gov).messages.create(model=CLAUDE, messages=MSGS, max_tokens=32, stream=True)
    assert [e.type for e in s][-1] == "message_stop"
    assert totals(gov) == {
        "prompt": 150,
        "completion": 24,
        "cached": 30,
        "reasoning": 0,
        "events": 3,
    }
    assert counter(gov) == (174, 0)


def test_anthropic_stream_context_manager(server: ProviderServer, make_gov: Any) -> None:
    server.reset(prompt_tokens=12, completion_tokens=6, chunks=6)
    gov = make_gov()
    with anth(server, gov).messages.stream(model=CLAUDE, messages=MSGS, max_tokens=32) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == " hello" * 6
    assert final.usage.output_tokens == 6
    assert totals(gov)["prompt"] == 12 and totals(gov)["completion"] == 6

    async def main() -> str:
        async with (
            anth(server, gov, asynchronous=True) as c,
            c.messages.stream(model=CLAUDE, messages=MSGS, max_tokens=32) as s,
        ):
            return await s.get_final_text()

    assert asyncio.run(main()) == " hello" * 6
    assert totals(gov)["completion"] == 12
    assert counter(gov) == (36, 0)


def test_anthropic_stream_cut_off(server: ProviderServer, make_gov: Any) -> None:
    server.reset(chunks=3000, chunk_delay=0.0005)
    gov = make_gov(700)
    with (
        pytest.raises(BudgetExceeded) as ei,
        anth(server, gov).messages.stream(model=CLAUDE, messages=MSGS, max_tokens=100) as s,
    ):
        for _ in s.text_stream:
            pass
    p = ei.value.partial
    assert isinstance(p, PartialResult) and p.finish_reason == "budget"
    assert p.text.startswith(" hello")
    used, reserved = counter(gov)
    assert reserved == 0 and used <= 700
    # the provider's input count (message_start) is what the partial charges
    assert p.prompt_tokens == 21
    assert used == p.prompt_tokens + p.completion_tokens
    time.sleep(0.2)
    assert server.state.client_gone and server.state.deltas_sent < 3000


def test_anthropic_async_stream_cut_off(server: ProviderServer, make_gov: Any) -> None:
    server.reset(chunks=3000, chunk_delay=0.0005)
    gov = make_gov(600)

    async def main() -> Any:
        async with anth(server, gov, asynchronous=True).with_cutoff("stop") as c:
            s = await c.messages.create(model=CLAUDE, messages=MSGS, max_tokens=50, stream=True)
            async for _ in s:
                pass
            return s

    s = asyncio.run(main())
    assert s.cut_off and s.partial.finish_reason == "budget"
    assert counter(gov) == (s.partial.prompt_tokens + s.partial.completion_tokens, 0)
    assert counter(gov)[0] <= 600


@pytest.mark.parametrize(
    ("status", "exc"),
    [(400, anthropic.BadRequestError), (529, anthropic.APIStatusError)],
)
def test_anthropic_errors_release(
    server: ProviderServer, make_gov: Any, status: int, exc: type[Exception]
) -> None:
    server.reset(status=status)
    gov = make_gov()
    with pytest.raises(exc):
        anth(server, gov).messages.create(model=CLAUDE, messages=MSGS, max_tokens=10)
    with (
        pytest.raises(exc),
        anth(server, gov).messages.stream(model=CLAUDE, messages=MSGS, max_tokens=10),
    ):
        pass
    assert counter(gov) == (0, 0)


def test_anthropic_stream_broken_and_without_usage(server: ProviderServer, make_gov: Any) -> None:
    server.reset(chunks=20, break_after=4)
    gov = make_gov()
    s = anth(server, gov).messages.create(model=CLAUDE, messages=MSGS, max_tokens=50, stream=True)
    # this SDK lets the transport's error through unchanged, and so does the wrapper
    with pytest.raises(Exception, match="incomplete chunked read"):
        list(s)
    assert totals(gov)["prompt"] == 21  # message_start reported it before the break
    assert totals(gov)["completion"] == 4 * gov.count_prompt(CLAUDE, text=" hello")
    server.reset(chunks=5, omit_usage=True)
    s = anth(server, gov).messages.create(model=CLAUDE, messages=MSGS, max_tokens=50, stream=True)
    list(s)
    assert s.partial.usage_source == "counted"
    assert counter(gov)[1] == 0


# -- Groq --------------------------------------------------------------------------------------
def test_groq_sync_async_and_stream(server: ProviderServer, make_gov: Any) -> None:
    server.reset(prompt_tokens=17, completion_tokens=5, groq_usage=True)
    gov = make_gov()
    c = grq(server, gov)
    r = c.chat.completions.create(model=LLAMA, messages=MSGS, max_tokens=20)
    assert r.usage.prompt_tokens == 17
    s = c.chat.completions.create(model=LLAMA, messages=MSGS, max_tokens=20, stream=True)
    text = "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices)
    assert text == " hello" * 5
    assert s.partial.usage_source == "provider"  # read from x_groq.usage

    async def main() -> None:
        async with grq(server, gov, asynchronous=True) as ac:
            await ac.chat.completions.create(model=LLAMA, messages=MSGS, max_tokens=20)
            s = await ac.chat.completions.create(
                model=LLAMA, messages=MSGS, max_tokens=20, stream=True
            )
            async for _ in s:
                pass

    asyncio.run(main())
    assert totals(gov)["prompt"] == 4 * 17 and totals(gov)["completion"] == 4 * 5
    ev = next(iter(gov.store.events()))
    assert ev.labels["provider"] == "groq"
    assert ev.estimated_prompt == gov.count_prompt(LLAMA, messages=MSGS)


def test_groq_stream_cut_off(server: ProviderServer, make_gov: Any) -> None:
    server.reset(chunks=3000, chunk_delay=0.0005, groq_usage=True)
    gov = make_gov(500)
    s = grq(server, gov).chat.completions.create(
        model=LLAMA, messages=MSGS, max_tokens=40, stream=True
    )
    with pytest.raises(BudgetExceeded) as ei:
        list(s)
    p = ei.value.partial
    assert counter(gov) == (p.prompt_tokens + p.completion_tokens, 0)
    assert counter(gov)[0] <= 500


def test_groq_errors(server: ProviderServer, make_gov: Any) -> None:
    server.reset(status=500)
    gov = make_gov()
    with pytest.raises(groq.InternalServerError):
        grq(server, gov).chat.completions.create(model=LLAMA, messages=MSGS, max_tokens=10)
    server.reset(delay=1.0)
    with pytest.raises(groq.APITimeoutError):
        grq(server, gov, timeout=0.2).chat.completions.create(
            model=LLAMA, messages=MSGS, max_tokens=10
        )
    assert totals(gov)["prompt"] == gov.count_prompt(LLAMA, messages=MSGS)
    assert counter(gov)[1] == 0
