"""The LangChain callback handler with a real chat model class that calls the local
provider stand-in through the openai SDK (usage reported as ``usage_metadata``)."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from llmbudget import BudgetExceeded
from llmbudget.integrations.langchain import LLMBudgetCallbackHandler

from ._helpers import counter, totals
from ._server import ProviderServer


class LocalChat(BaseChatModel):
    """A minimal chat model over the OpenAI wire format."""

    base_url: str
    model: str = "gpt-4o"
    max_tokens: int = 40

    @property
    def _llm_type(self) -> str:
        return "local-openai"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "max_tokens": self.max_tokens}

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        role = {"human": "user", "ai": "assistant", "system": "system"}
        with openai.OpenAI(base_url=self.base_url, api_key="k", max_retries=0) as c:
            r = c.chat.completions.create(
                model=self.model,
                messages=[{"role": role[m.type], "content": str(m.content)} for m in messages],
                max_tokens=self.max_tokens,
            )
        u = r.usage
        msg = AIMessage(
            content=r.choices[0].message.content or "",
            usage_metadata={
                "input_tokens": u.prompt_tokens,
                "output_tokens": u.completion_tokens,
                "total_tokens": u.total_tokens,
                "input_token_details": {"cache_read": u.prompt_tokens_details.cached_tokens},
            },
        )
        return ChatResult(generations=[ChatGeneration(message=msg)])


def test_chat_model_run_is_reserved_and_committed(server: ProviderServer, make_gov: Any) -> None:
    server.reset(prompt_tokens=22, completion_tokens=6, cached_tokens=2)
    gov = make_gov()
    h = LLMBudgetCallbackHandler(gov, agent="writer")
    llm = LocalChat(base_url=server.url + "/v1")
    out = llm.invoke([HumanMessage("hi")], config={"callbacks": [h]})
    assert out.content == " hello" * 5
    asyncio.run(llm.ainvoke([HumanMessage("hi")], config={"callbacks": [h]}))
    assert totals(gov) == {"prompt": 44, "completion": 12, "cached": 4, "reasoning": 0, "events": 2}
    ev = next(iter(gov.store.events()))
    assert ev.labels["agent"] == "writer" and ev.labels["model"] == "gpt-4o"
    assert ev.estimated_completion == 40
    assert counter(gov) == (56, 0)


def test_refused_before_the_model_is_called(server: ProviderServer, make_gov: Any) -> None:
    gov = make_gov(10)
    h = LLMBudgetCallbackHandler(gov)
    with pytest.raises(BudgetExceeded):
        LocalChat(base_url=server.url + "/v1").invoke("hi", config={"callbacks": [h]})
    assert server.state.requests == []


def test_error_releases(server: ProviderServer, make_gov: Any) -> None:
    server.reset(status=500)
    gov = make_gov()
    h = LLMBudgetCallbackHandler(gov)
    with pytest.raises(openai.InternalServerError):
        LocalChat(base_url=server.url + "/v1").invoke("hi", config={"callbacks": [h]})
    assert counter(gov) == (0, 0)
