"""Governed OpenAI clients (sync, async, streaming; chat completions and responses) against
the local provider stand-in: the ledger holds exactly what the server reported."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import pytest

from llmbudget import BudgetExceeded, Governor
from llmbudget.integrations import PartialResult

from ._helpers import counter, totals, track
from ._server import ProviderServer

MSGS = [{"role": "user", "content": "Say hello a few times."}]


def client(server: ProviderServer, gov: Governor, **kw: Any) -> Any:
    kw.setdefault("max_retries", 0)
    raw = track(openai.OpenAI(base_url=server.url + "/v1", api_key="test", **kw))
    return gov.wrap(raw, app="t")


def aclient(server: ProviderServer, gov: Governor, **kw: Any) -> Any:
    kw.setdefault("max_retries", 0)
    return gov.wrap(openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="test", **kw))


# -- plain calls -------------------------------------------------------------------------------
def test_chat_sync_commits_provider_usage(server: ProviderServer, make_gov: Any) -> None:
    server.reset(prompt_tokens=40, completion_tokens=9, cached_tokens=16, reasoning_tokens=3)
    gov = make_gov()
    r = client(server, gov).chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=64)
    assert r.choices[0].message.content == " hello" * 5
    assert totals(gov) == {"prompt": 40, "completion": 9, "cached": 16, "reasoning": 3, "events": 1}
    assert counter(gov) == (49, 0)
    (ev,) = gov.store.events()
    assert ev.labels["provider"] == "openai"
    assert ev.labels["operation"] == "chat.completions"
    assert ev.labels["model"] == "gpt-4o"
    assert ev.labels["app"] == "t"
    # reserved with the exact prompt count and max_tokens
    assert ev.estimated_prompt == gov.count_prompt("gpt-4o", messages=MSGS)
    assert ev.estimated_completion == 64


def test_chat_async_commits_provider_usage(server: ProviderServer, make_gov: Any) -> None:
    server.reset(prompt_tokens=33, completion_tokens=12)
    gov = make_gov()

    async def main() -> Any:
        async with aclient(server, gov) as c:
            return await asyncio.gather(
                *[
                    c.chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=20)
                    for _ in range(4)
                ]
            )

    asyncio.run(main())
    assert totals(gov)["prompt"] == 4 * 33
    assert totals(gov)["completion"] == 4 * 12
    assert counter(gov) == (4 * 45, 0)


def test_max_completion_tokens_and_n_choices_reserve(server: ProviderServer, make_gov: Any) -> None:
    gov = make_gov()
    c = client(server, gov)
    c.chat.completions.create(model="gpt-4o", messages=MSGS, max_completion_tokens=30, n=3)
    (ev,) = gov.store.events()
    assert ev.estimated_completion == 90


def test_no_max_tokens_uses_the_learned_estimate(server: ProviderServer, make_gov: Any) -> None:
    gov = make_gov()
    client(server, gov).chat.completions.create(model="gpt-4o", messages=MSGS)
    (ev,) = gov.store.events()
    assert ev.estimated_completion == gov.completion_estimate("gpt-4o", "chat.completions")


def test_responses_sync_and_async(server: ProviderServer, make_gov: Any) -> None:
    server.reset(prompt_tokens=50, completion_tokens=20, cached_tokens=10, reasoning_tokens=5)
    gov = make_gov()
    r = client(server, gov).responses.create(
        model="gpt-4o", instructions="Be brief.", input="hi", max_output_tokens=100
    )
    assert r.output_text == " hello" * 5

    async def main() -> None:
        async with aclient(server, gov) as c:
            await c.responses.create(model="gpt-4o", input="hi")

    asyncio.run(main())
    assert totals(gov) == {
        "prompt": 100,
        "completion": 40,
        "cached": 20,
        "reasoning": 10,
        "events": 2,
    }
    ev = next(iter(gov.store.events()))
    assert ev.labels["operation"] == "responses"
    assert ev.estimated_completion == 100


def test_wrapped_client_passes_everything_else_through(
    server: ProviderServer, make_gov: Any
) -> None:
    gov = make_gov()
    raw = track(openai.OpenAI(base_url=server.url + "/v1", api_key="test", max_retries=0))
    c = gov.wrap(raw)
    assert c.base_url == raw.base_url
    assert c.__wrapped__ is raw
    c2 = c.with_options(timeout=5).with_labels(agent="critic")
    c2.chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=8)
    c.chat.completions.create(
        model="gpt-4o", messages=MSGS, max_tokens=8, llmbudget_labels={"phase": "p1"}
    )
    evs = list(gov.store.events())
    assert evs[0].labels["agent"] == "critic"
    assert evs[1].labels["phase"] == "p1"
    assert "llmbudget_labels" not in server.state.requests[-1].body


# -- streaming ---------------------------------------------------------------------------------
def test_stream_sync_asks_for_usage_and_hides_the_usage_chunk(
    server: ProviderServer, make_gov: Any
) -> None:
    server.reset(prompt_tokens=30, completion_tokens=6, chunks=6)
    gov = make_gov()
    s = client(server, gov).chat.completions.create(
        model="gpt-4o", messages=MSGS, max_tokens=50, stream=True, stream_options={}
    )
    chunks = list(s)
    # the caller did not ask for usage: every chunk still has a choice
    assert all(ch.choices for ch in chunks)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == " hello" * 6
    assert server.state.requests[-1].body["stream_options"] == {"include_usage": True}
    assert totals(gov)["prompt"] == 30
    assert totals(gov)["completion"] == 6
    assert counter(gov) == (36, 0)
    assert s.usage is not None and s.usage.completion_tokens == 6
    assert not s.cut_off
    assert s.partial.usage_source == "provider"


def test_stream_keeps_the_usage_chunk_the_caller_asked_for(
    server: ProviderServer, make_gov: Any
) -> None:
    gov = make_gov()
    with client(server, gov).chat.completions.create(
        model="gpt-4o",
        messages=MSGS,
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    ) as s:
        chunks = list(s)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 21
    assert totals(gov)["prompt"] == 21


def test_stream_async(server: ProviderServer, make_gov: Any) -> None:
    server.reset(prompt_tokens=25, completion_tokens=8, cached_tokens=5, chunks=8)
    gov = make_gov()

    async def main() -> str:
        async with aclient(server, gov) as c:
            s = await c.chat.completions.create(
                model="gpt-4o", messages=MSGS, max_tokens=50, stream=True
            )
            text = ""
            async for ch in s:
                text += ch.choices[0].delta.content or ""
            return text

    assert asyncio.run(main()) == " hello" * 8
    assert totals(gov) == {"prompt": 25, "completion": 8, "cached": 5, "reasoning": 0, "events": 1}
    assert counter(gov) == (33, 0)


def test_responses_stream_sync_and_async(server: ProviderServer, make_gov: Any) -> None:
    server.reset(prompt_tokens=44, completion_tokens=10, chunks=10)
    gov = make_gov()
    s = client(server, gov).responses.create(model="gpt-4o", input="hi", stream=True)
    types = [e.type for e in s]
    assert types[-1] == "response.completed"

    async def main() -> None:
        async with aclient(server, gov) as c:
            s = await c.responses.create(model="gpt-4o", input="hi", stream=True)
            async for _ in s:
                pass

    asyncio.run(main())
    assert totals(gov)["prompt"] == 88
    assert totals(gov)["completion"] == 20


def test_stream_without_usage_commits_our_count(server: ProviderServer, make_gov: Any) -> None:
    server.reset(omit_usage=True, chunks=12)
    gov = make_gov()
    s = client(server, gov).chat.completions.create(
        model="gpt-4o", messages=MSGS, max_tokens=50, stream=True
    )
    list(s)
    t = totals(gov)
    assert t["prompt"] == gov.count_prompt("gpt-4o", messages=MSGS)
    assert t["completion"] == 12  # " hello" is one o200k token per delta
    assert s.partial.usage_source == "counted"


def test_stream_closed_early_commits_what_was_read(server: ProviderServer, make_gov: Any) -> None:
    server.reset(chunks=500, chunk_delay=0.001)
    gov = make_gov()
    with client(server, gov).chat.completions.create(
        model="gpt-4o", messages=MSGS, max_tokens=1000, stream=True
    ) as s:
        for i, _ in enumerate(s):
            if i == 10:
                break
    assert counter(gov)[1] == 0
    assert totals(gov)["completion"] == 10  # the role chunk carries no text
    assert s.partial.finish_reason == "closed"


# -- INV-TOK-003: cut off at the budget --------------------------------------------------------
@pytest.mark.parametrize("tool_call", [False, True])
def test_stream_cut_at_the_budget_returns_partial(
    server: ProviderServer, make_gov: Any, tool_call: bool
) -> None:
    server.reset(chunks=3000, chunk_delay=0.0005, tool_call=tool_call)
    limit = 600
    gov = make_gov(limit)
    s = client(server, gov).chat.completions.create(
        model="gpt-4o", messages=MSGS, max_tokens=100, stream=True
    )
    got = ""
    with pytest.raises(BudgetExceeded) as ei:
        for ch in s:
            d = ch.choices[0].delta
            got += d.content or (d.tool_calls[0].function.arguments if d.tool_calls else "")
    partial = ei.value.partial
    assert isinstance(partial, PartialResult)
    assert partial.finish_reason == "budget"
    assert partial.text == got and got.startswith(" hello")
    used, reserved = counter(gov)
    assert reserved == 0
    assert used <= limit
    assert used == partial.prompt_tokens + partial.completion_tokens
    assert used >= limit - 1  # extended to the last token before cutting
    assert s.cut_off and s.partial == partial
    assert ei.value.budget == "run"
    time.sleep(0.2)
    assert server.state.client_gone  # the connection was closed: the provider stops
    assert server.state.deltas_sent < 3000


def test_stream_cut_with_stop_mode_ends_quietly(server: ProviderServer, make_gov: Any) -> None:
    server.reset(chunks=3000, chunk_delay=0.0005)
    gov = make_gov(400)
    c = client(server, gov).with_cutoff("stop")
    s = c.chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=50, stream=True)
    text = "".join(ch.choices[0].delta.content or "" for ch in s)
    assert s.cut_off
    assert s.partial.text == text
    assert s.budget_error is not None
    assert counter(gov) == (400, 0)


def test_stream_cut_async(server: ProviderServer, make_gov: Any) -> None:
    server.reset(chunks=3000, chunk_delay=0.0005)
    gov = make_gov(500)

    async def main() -> PartialResult:
        async with aclient(server, gov) as c:
            s = await c.chat.completions.create(
                model="gpt-4o", messages=MSGS, max_tokens=64, stream=True
            )
            try:
                async for _ in s:
                    pass
            except BudgetExceeded as e:
                partial = e.partial
            else:
                raise AssertionError("not cut")
        assert isinstance(partial, PartialResult)
        return partial

    p = asyncio.run(main())
    used, reserved = counter(gov)
    assert (used, reserved) == (p.prompt_tokens + p.completion_tokens, 0)
    assert used <= 500


def test_concurrent_streams_never_pass_the_limit(server: ProviderServer, make_gov: Any) -> None:
    server.reset(chunks=2000, chunk_delay=0.0002)
    limit = 2000
    gov = make_gov(limit)

    async def one(c: Any) -> int:
        try:
            s = await c.chat.completions.create(
                model="gpt-4o", messages=MSGS, max_tokens=100, stream=True
            )
            async for _ in s:
                pass
        except BudgetExceeded:
            return 1
        return 0

    async def main() -> int:
        async with aclient(server, gov) as c:
            return sum(await asyncio.gather(*[one(c) for _ in range(6)]))

    cut = asyncio.run(main())
    assert cut >= 1
    used, reserved = counter(gov)
    assert reserved == 0 and used <= limit


def test_reservation_refused_before_sending(server: ProviderServer, make_gov: Any) -> None:
    gov = make_gov(50)
    with pytest.raises(BudgetExceeded):
        client(server, gov).chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=100)
    assert server.state.requests == []
    assert counter(gov) == (0, 0)


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_http_errors_release(
    server: ProviderServer, make_gov: Any, status: int, exc: type[Exception]
) -> None:
    server.reset(status=status)
    gov = make_gov()
    with pytest.raises(exc):
        client(server, gov).chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=10)
    with pytest.raises(exc):
        client(server, gov).chat.completions.create(
            model="gpt-4o", messages=MSGS, max_tokens=10, stream=True
        )
    assert counter(gov) == (0, 0)
    assert totals(gov)["events"] == 0


def test_connection_refused_releases(make_gov: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gov = make_gov()
    raw = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
    c = gov.wrap(track(raw))
    with pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=10)
    assert counter(gov) == (0, 0)


def test_timeout_charges_the_prompt(server: ProviderServer, make_gov: Any) -> None:
    server.reset(delay=1.0)
    gov = make_gov()
    with pytest.raises(openai.APITimeoutError):
        client(server, gov, timeout=0.2).chat.completions.create(
            model="gpt-4o", messages=MSGS, max_tokens=10
        )
    assert totals(gov)["prompt"] == gov.count_prompt("gpt-4o", messages=MSGS)
    assert totals(gov)["completion"] == 0
    assert counter(gov)[1] == 0


def test_stream_broken_midway_commits_our_count(server: ProviderServer, make_gov: Any) -> None:
    server.reset(chunks=50, break_after=7)
    gov = make_gov()
    s = client(server, gov).chat.completions.create(
        model="gpt-4o", messages=MSGS, max_tokens=100, stream=True
    )
    seen = 0
    with pytest.raises(openai.APIConnectionError):
        for _ in s:
            seen += 1
    assert seen == 8  # role chunk + 7 deltas
    assert totals(gov)["completion"] == 7
    assert totals(gov)["prompt"] == gov.count_prompt("gpt-4o", messages=MSGS)
    assert counter(gov)[1] == 0
    assert s.partial.finish_reason == "error"


def test_a_stream_abandoned_by_break_settles_when_collected(
    server: ProviderServer, make_gov: Any
) -> None:
    import gc

    server.reset(prompt_tokens=30, completion_tokens=6, chunks=6)
    gov = make_gov()
    s = client(server, gov).chat.completions.create(
        model="gpt-4o", messages=MSGS, max_tokens=50, stream=True
    )
    for _ in s:
        break
    assert counter(gov)[1] > 0  # still held while the stream object lives
    del s
    gc.collect()
    used, reserved = counter(gov)
    assert reserved == 0  # settled: what was delivered is committed, the rest released
    assert used > 0
