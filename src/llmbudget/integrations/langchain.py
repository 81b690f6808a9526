"""LangChain callback handler: reserve when a model run starts, commit its usage when it
ends, release when it fails.

::

    from llmbudget.integrations.langchain import LLMBudgetCallbackHandler

    handler = LLMBudgetCallbackHandler(gov, agent="researcher")
    llm.invoke("...", config={"callbacks": [handler]})

The handler sets ``raise_error = True`` so a refused reservation raises
:class:`~llmbudget.BudgetExceeded` out of ``invoke`` before the model is called. Usage is
read from ``llm_output["token_usage"]`` (OpenAI-style integrations) or from each message's
``usage_metadata`` (every current chat model); without either, the reservation's estimate is
committed (conservative). Importing this module imports ``langchain_core``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from ._core import Plan, ProviderUsage, Settings, make_plan, openai_usage, settle_error

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import LLMResult

    from .._reservation import Reservation
    from ..governor import Governor

__all__ = ["LLMBudgetCallbackHandler"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def _model_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> str:
    params = kwargs.get("invocation_params") or {}
    for key in ("model", "model_name", "model_id"):
        v = params.get(key)
        if isinstance(v, str) and v:
            return v
    meta = kwargs.get("metadata") or {}
    v = meta.get("ls_model_name")
    if isinstance(v, str) and v:
        return v
    kw = (serialized or {}).get("kwargs") or {}
    for key in ("model", "model_name"):
        v = kw.get(key)
        if isinstance(v, str) and v:
            return v
    return "unknown"


def _content(c: Any) -> Any:
    return c if isinstance(c, str | list) else str(c)


class LLMBudgetCallbackHandler(BaseCallbackHandler):
    """Governs every LLM / chat model run it is attached to (one reservation per run)."""

    raise_error = True  # a refused budget must stop the run, not be logged and ignored

    def __init__(self, gov: Governor, **labels: str) -> None:
        from ..governor import check_labels

        self.gov = gov
        self.settings = Settings(gov, check_labels(labels))
        self._open: dict[UUID, tuple[Reservation, Plan]] = {}
        self._lock = threading.Lock()

    def _start(
        self,
        run_id: UUID,
        serialized: Mapping[str, Any] | None,
        messages: list[dict[str, Any]],
        kwargs: Mapping[str, Any],
    ) -> None:
        params = kwargs.get("invocation_params") or {}
        provider = (kwargs.get("metadata") or {}).get("ls_provider") or params.get("_type")
        max_tokens = params.get("max_tokens")
        if max_tokens is None:
            max_tokens = params.get("max_completion_tokens")
        plan = make_plan(
            self.settings,
            {"model": _model_name(serialized, kwargs)},
            provider=str(provider or "langchain"),
            operation="chat" if messages and messages[0].get("role") else "llm",
            messages=messages or [{"role": "user", "content": ""}],
            tools=params.get("tools"),
            max_tokens=max_tokens,
            choices=params.get("n"),
        )
        res = self.gov.reserve(
            prompt_tokens=plan.prompt_tokens,
            max_completion_tokens=plan.max_completion_tokens,
            **dict[str, Any](plan.labels),
        )
        with self._lock:
            self._open[run_id] = (res, plan)

    # -- LangChain's callbacks -------------------------------------------------------------
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        msgs = [
            {"role": _ROLES.get(m.type, "user"), "content": _content(m.content)}
            for batch in messages
            for m in batch
        ]
        self._start(run_id, serialized, msgs, kwargs)

    def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, **kwargs: Any
    ) -> None:
        msgs = [{"role": "user", "content": p} for p in prompts]
        self._start(run_id, serialized, msgs, kwargs)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            entry = self._open.pop(run_id, None)
        if entry is None:
            return
        res, _plan = entry
        u = _usage(response)
        if u is None:
            res.commit()
            return
        res.commit(
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
            cached_tokens=u.cached_tokens,
            reasoning_tokens=u.reasoning_tokens,
        )

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            entry = self._open.pop(run_id, None)
        if entry is not None:
            settle_error(entry[0], entry[1], error)


def _usage(response: LLMResult) -> ProviderUsage | None:
    out = response.llm_output or {}
    u = openai_usage(out.get("token_usage") or out.get("usage"))
    if u is not None:
        return u
    p = c = cached = reasoning = 0
    found = False
    gens: Sequence[Sequence[Any]] = response.generations
    for batch in gens:
        for g in batch:
            meta = getattr(getattr(g, "message", None), "usage_metadata", None)
            if not meta:
                continue
            found = True
            p += int(meta.get("input_tokens", 0))
            c += int(meta.get("output_tokens", 0))
            cached += int((meta.get("input_token_details") or {}).get("cache_read", 0))
            reasoning += int((meta.get("output_token_details") or {}).get("reasoning", 0))
    if not found:
        return None
    return ProviderUsage(p, c, min(cached, p), min(reasoning, c))
