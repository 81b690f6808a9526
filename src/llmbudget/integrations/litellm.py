"""LiteLLM hook: a ``CustomLogger`` that reserves before each call and commits the usage
after it, on success or failure.

::

    import litellm
    from llmbudget.integrations.litellm import LLMBudgetLogger

    litellm.callbacks = [LLMBudgetLogger(gov, app="search")]
    await litellm.acompletion(model="openai/gpt-4o", messages=[...], max_tokens=200)

* **async calls** (``acompletion`` ...): the reservation is made in
  ``async_pre_call_deployment_hook``, just before the request is sent, so a refused budget
  raises :class:`~llmbudget.BudgetExceeded` and nothing is sent.
* **sync calls** (``completion``): LiteLLM's sync API calls ``log_pre_api_call`` and
  swallows any exception raised there, so a refusal *cannot* stop the call: the logger
  logs it at ERROR level, lets the call through and records its usage when it settles.
  Use ``acompletion`` or ``gov.wrap(openai_client)`` where the budget must be enforced.
* Settlement: ``log_success_event`` / ``async_log_success_event`` commit the response's
  usage (for streams, LiteLLM's assembled final response); the failure events apply the
  same rule as the wrapped SDK clients (release, or charge the prompt on a timeout).

Per-call labels: ``metadata={"llmbudget_labels": {"agent": "critic"}}``.
Importing this module imports ``litellm``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from litellm.integrations.custom_logger import CustomLogger

from .._errors import BudgetExceeded
from ._core import Plan, Settings, make_plan, openai_usage, settle_error, settle_usage

if TYPE_CHECKING:
    from .._reservation import Reservation
    from ..governor import Governor

__all__ = ["LLMBudgetLogger"]

log = logging.getLogger("llmbudget")

_OPERATIONS = {
    "completion": "chat.completions",
    "acompletion": "chat.completions",
    "text_completion": "completions",
    "atext_completion": "completions",
    "responses": "responses",
    "aresponses": "responses",
    "anthropic_messages": "messages",
}


def _call_type(v: Any) -> str:
    return str(getattr(v, "value", v) or "completion")


class LLMBudgetLogger(CustomLogger):
    """Governs every LiteLLM call made while it is in ``litellm.callbacks``."""

    def __init__(self, gov: Governor, **labels: str) -> None:
        from ..governor import check_labels

        super().__init__()
        self.gov = gov
        self.settings = Settings(gov, check_labels(labels))
        self._open: dict[str, tuple[Reservation, Plan]] = {}
        self._lock = threading.Lock()

    # -- planning --------------------------------------------------------------------------
    def _plan(self, kwargs: Mapping[str, Any], call_type: str) -> Plan | None:
        full = kwargs.get("model")
        if not isinstance(full, str) or not full:
            return None
        provider = kwargs.get("custom_llm_provider")
        if "/" in full:
            prefix, model = full.split("/", 1)
            provider = provider or prefix
        else:
            model = full
        opt = kwargs.get("optional_params") or {}

        def arg(name: str) -> Any:
            v = kwargs.get(name)
            return v if v is not None else opt.get(name)

        messages = kwargs.get("messages") or kwargs.get("input") or []
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        meta = kwargs.get("metadata") or (kwargs.get("litellm_params") or {}).get("metadata")
        req: dict[str, Any] = {"model": model}
        if isinstance(meta, Mapping) and isinstance(meta.get("llmbudget_labels"), Mapping):
            req["llmbudget_labels"] = dict(meta["llmbudget_labels"])
        from ._core import norm_messages, norm_tools

        max_tokens = arg("max_completion_tokens")
        if max_tokens is None:
            max_tokens = arg("max_tokens")
        if max_tokens is None:
            max_tokens = arg("max_output_tokens")
        return make_plan(
            self.settings,
            req,
            provider=str(provider or "litellm"),
            operation=_OPERATIONS.get(call_type, call_type),
            messages=norm_messages(messages) or [{"role": "user", "content": ""}],
            tools=norm_tools(arg("tools")),
            max_tokens=max_tokens,
            choices=arg("n"),
        )

    def _reserve(self, kwargs: Mapping[str, Any], call_type: str, *, enforce: bool) -> None:
        call_id = kwargs.get("litellm_call_id")
        if not isinstance(call_id, str):
            return
        with self._lock:
            if call_id in self._open:
                return  # a retry of the same call: keep the first reservation
        plan = self._plan(kwargs, call_type)
        if plan is None:
            return
        try:
            res = self.gov.reserve(
                prompt_tokens=plan.prompt_tokens,
                max_completion_tokens=plan.max_completion_tokens,
                **dict[str, Any](plan.labels),
            )
        except BudgetExceeded as e:
            if enforce:
                raise
            log.error(
                "llmbudget: %s (LiteLLM's sync completion() cannot be stopped from a "
                "callback; the call goes ahead and its usage is recorded)",
                e,
            )
            with self._lock:
                self._open[call_id] = (None, plan)  # type: ignore[assignment]
            return
        with self._lock:
            self._open[call_id] = (res, plan)

    def _take(self, kwargs: Mapping[str, Any]) -> tuple[Reservation | None, Plan] | None:
        call_id = kwargs.get("litellm_call_id")
        with self._lock:
            return self._open.pop(call_id, None) if isinstance(call_id, str) else None

    def _success(self, kwargs: Mapping[str, Any], response_obj: Any) -> None:
        entry = self._take(kwargs)
        if entry is None:
            return
        res, plan = entry
        final = kwargs.get("complete_streaming_response") or response_obj
        usage = openai_usage(getattr(final, "usage", None) or _get(final, "usage"))
        if res is None:  # refused but not stoppable: record what was spent
            u = usage
            self.gov.record(
                prompt_tokens=u.prompt_tokens if u else plan.prompt_tokens,
                completion_tokens=u.completion_tokens if u else plan.max_completion_tokens,
                cached_tokens=u.cached_tokens if u else 0,
                reasoning_tokens=u.reasoning_tokens if u else 0,
                **dict[str, Any](plan.labels),
            )
            return
        settle_usage(res, plan, usage)

    def _failure(self, kwargs: Mapping[str, Any]) -> None:
        entry = self._take(kwargs)
        if entry is None:
            return
        res, plan = entry
        if res is None:
            return
        exc = kwargs.get("exception")
        settle_error(res, plan, exc if isinstance(exc, BaseException) else RuntimeError())

    # -- LiteLLM's hooks -------------------------------------------------------------------
    async def async_pre_call_deployment_hook(
        self, kwargs: dict[str, Any], call_type: Any
    ) -> dict[str, Any] | None:
        await asyncio.to_thread(self._reserve, kwargs, _call_type(call_type), enforce=True)
        return None

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        self._reserve(kwargs, _call_type(kwargs.get("call_type")), enforce=False)

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any):  # type: ignore[no-untyped-def]
        self._success(kwargs, response_obj)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any):  # type: ignore[no-untyped-def]
        self._failure(kwargs)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        await asyncio.to_thread(self._success, kwargs, response_obj)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        await asyncio.to_thread(self._failure, kwargs)

    @property
    def open_reservations(self) -> int:
        """Calls reserved and not settled yet."""
        with self._lock:
            return len(self._open)


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else None
