"""SDK-independent pieces of every governed client: the call plan (labels, exact prompt
count, completion ceiling), provider usage, the error rule, and the attribute proxy.

Nothing here imports a provider SDK; the per-SDK modules only translate request arguments
and response objects into these shapes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .._errors import InvalidUsage

if TYPE_CHECKING:
    from .._reservation import Reservation
    from ..governor import Governor
    from ..tokens import ModelCounter

log = logging.getLogger("llmbudget")

OnCutoff = Literal["raise", "stop"]
LABELS_KWARG = "llmbudget_labels"


@dataclass(frozen=True, slots=True)
class ProviderUsage:
    """Usage as the provider reported it, in llmbudget's terms: ``prompt_tokens`` is all
    billed input (cached reads included), ``completion_tokens`` all output (reasoning
    included)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Settings:
    """What a governed client was wrapped with."""

    gov: Governor
    labels: Mapping[str, str]
    on_cutoff: OnCutoff = "raise"

    def with_labels(self, labels: Mapping[str, str]) -> Settings:
        return Settings(self.gov, {**self.labels, **labels}, self.on_cutoff)


@dataclass(slots=True)
class Plan:
    """One call, before it is sent: the labels it is reserved under, the exact prompt
    count, the completion ceiling, and the counter for streamed deltas."""

    model: str
    labels: dict[str, str]
    prompt_tokens: int
    max_completion_tokens: int
    counter: ModelCounter
    stream: bool = False
    hide_usage_chunk: bool = False  # we asked for usage in the stream; the caller did not
    extra: dict[str, Any] = field(default_factory=dict)


def make_plan(
    settings: Settings,
    kwargs: dict[str, Any],
    *,
    provider: str,
    operation: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    max_tokens: object,
    choices: object = None,
) -> Plan:
    """Count the prompt and pick the completion ceiling (``max_tokens`` or the estimate
    learned from the ledger); pops the per-call ``llmbudget_labels`` from ``kwargs``."""
    from ..tokens import counter_for

    gov = settings.gov
    model, labels = plan_labels(settings, kwargs, provider=provider, operation=operation)
    counter = counter_for(model)
    prompt = counter.count_chat(list(messages), list(tools) if tools else None).tokens
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        completion = gov.completion_estimate(model, operation, max_tokens)
    else:
        completion = gov.completion_estimate(model, operation)
    if isinstance(choices, int) and not isinstance(choices, bool) and choices > 1:
        completion *= choices  # n choices: each may use the ceiling
    return Plan(model, labels, prompt, completion, counter, stream=bool(kwargs.get("stream")))


def plan_labels(
    settings: Settings, kwargs: dict[str, Any], *, provider: str, operation: str
) -> tuple[str, dict[str, str]]:
    """The call's model and the labels it is reserved under (wrap labels, the per-call
    ``llmbudget_labels`` popped from ``kwargs``, then model/provider/operation)."""
    model = kwargs.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidUsage(f"{provider} {operation}: model= is required (a non-empty string)")
    extra = kwargs.pop(LABELS_KWARG, None) or {}
    if not isinstance(extra, Mapping):
        raise InvalidUsage(f"{LABELS_KWARG} must be a mapping of label -> value")
    labels = {
        **settings.labels,
        **extra,
        "model": model,
        "provider": provider,
        "operation": operation,
    }
    return model, labels


def reserve(settings: Settings, plan: Plan) -> Reservation:
    labels: dict[str, Any] = plan.labels
    return settings.gov.reserve(
        prompt_tokens=plan.prompt_tokens,
        max_completion_tokens=plan.max_completion_tokens,
        **labels,
    )


async def areserve(settings: Settings, plan: Plan) -> Reservation:
    from .._reservation import reserve_off_loop

    return await reserve_off_loop(lambda: reserve(settings, plan))


# -- usage -------------------------------------------------------------------------------------
def _num(obj: Any, name: str) -> int | None:
    v = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return max(0, int(v))


def _sub(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def openai_usage(u: Any) -> ProviderUsage | None:
    """OpenAI-shaped usage (chat: prompt/completion; responses: input/output), with cached
    and reasoning details. ``None`` when absent."""
    if u is None:
        return None
    p = _num(u, "prompt_tokens")
    if p is None:
        p = _num(u, "input_tokens")
    c = _num(u, "completion_tokens")
    if c is None:
        c = _num(u, "output_tokens")
    if p is None and c is None:
        return None
    p, c = p or 0, c or 0
    pd = _sub(u, "prompt_tokens_details") or _sub(u, "input_tokens_details")
    cd = _sub(u, "completion_tokens_details") or _sub(u, "output_tokens_details")
    cached = (_num(pd, "cached_tokens") or 0) if pd is not None else 0
    reasoning = (_num(cd, "reasoning_tokens") or 0) if cd is not None else 0
    return ProviderUsage(p, c, min(cached, p), min(reasoning, c))


def anthropic_usage(u: Any) -> ProviderUsage | None:
    """Anthropic usage: ``input_tokens`` excludes cache reads and writes, so the billed
    input is input + cache_creation + cache_read; cached = cache_read."""
    if u is None:
        return None
    inp = _num(u, "input_tokens")
    out = _num(u, "output_tokens")
    if inp is None and out is None:
        return None
    read = _num(u, "cache_read_input_tokens") or 0
    write = _num(u, "cache_creation_input_tokens") or 0
    p = (inp or 0) + read + write
    return ProviderUsage(p, out or 0, min(read, p), 0)


# -- errors ------------------------------------------------------------------------------------
ErrorRule = Literal["release", "charge_prompt"]


def error_rule(exc: BaseException) -> ErrorRule:
    """What a failed call costs (see docs/integrations.md, "What is charged on errors").

    * The provider answered with an error status (4xx, 5xx): nothing was generated and the
      providers do not bill failed requests — release.
    * Connection could not be made or was refused — release.
    * Timed out after the request was sent: the provider may have processed the input —
      charge the prompt tokens, 0 completion (conservative).
    * Anything else before a response (cancelled, our own error) — release.
    """
    for cls in type(exc).__mro__:
        name = cls.__name__
        if name in ("APITimeoutError", "Timeout", "ReadTimeout", "TimeoutException"):
            return "charge_prompt"
        if name in ("APIStatusError", "APIConnectionError"):
            return "release"
    return "release"


def settle_error(res: Reservation, plan: Plan, exc: BaseException) -> None:
    try:
        if error_rule(exc) == "charge_prompt":
            res.commit(prompt_tokens=plan.prompt_tokens, completion_tokens=0)
        else:
            res.release()
    except Exception:  # the ledger failing must not hide the provider's error
        log.exception("llmbudget: could not settle reservation %s after an error", res.id[:8])


def settle_usage(res: Reservation, plan: Plan, usage: ProviderUsage | None) -> None:
    """Commit the provider's usage; without it, the reservation's estimate (conservative)."""
    if usage is None:
        log.warning(
            "llmbudget: %s %s returned no usage; charged at the reserved estimate",
            plan.labels.get("provider"),
            plan.model,
        )
        res.commit()
        return
    res.commit(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
    )


# -- request shapes ----------------------------------------------------------------------------
def _jsonish(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=str, sort_keys=True)


def as_dict(v: Any) -> Any:
    """Pydantic models (SDK param objects) to plain data; everything else unchanged."""
    dump = getattr(v, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    return v


def norm_tools(tools: Any) -> list[dict[str, Any]] | None:
    """Tools in a shape the chat counter accepts: function tools as they are, built-in
    tools (``{"type": "web_search"}``...) as a named tool whose description is their JSON."""
    if not tools:
        return None
    out: list[dict[str, Any]] = []
    for t in tools:
        t = as_dict(t)
        if isinstance(t, Mapping) and (isinstance(t.get("function"), Mapping) or t.get("name")):
            out.append(dict(t))
        else:
            kind = t.get("type") if isinstance(t, Mapping) else None
            out.append(
                {
                    "type": "function",
                    "function": {"name": str(kind or "tool"), "description": _jsonish(t)},
                }
            )
    return out


def norm_messages(messages: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages or ():
        m = as_dict(m)
        out.append(dict(m) if isinstance(m, Mapping) else {"role": "user", "content": str(m)})
    return out


# -- the proxy ---------------------------------------------------------------------------------
Factory = Callable[[Settings, Any], Any]
Routes = Mapping[str, "Factory | Routes"]


class GovernedProxy:
    """Forwards every attribute to the wrapped SDK object except the routed ones (the
    governed methods, and the namespaces that lead to them)."""

    __slots__ = ("__wrapped__", "_llmb_cache", "_llmb_routes", "_llmb_settings")

    def __init__(self, target: Any, routes: Routes, settings: Settings) -> None:
        object.__setattr__(self, "__wrapped__", target)
        object.__setattr__(self, "_llmb_routes", routes)
        object.__setattr__(self, "_llmb_settings", settings)
        object.__setattr__(self, "_llmb_cache", {})

    def __getattr__(self, name: str) -> Any:
        cache: dict[str, Any] = self._llmb_cache
        hit = cache.get(name)
        if hit is not None:
            return hit
        value = getattr(self.__wrapped__, name)
        route = self._llmb_routes.get(name)
        if route is None:
            return value
        out = (
            GovernedProxy(value, route, self._llmb_settings)
            if isinstance(route, Mapping)
            else route(self._llmb_settings, value)
        )
        cache[name] = out
        return out

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.__wrapped__, name, value)

    def __repr__(self) -> str:
        return f"<governed {self.__wrapped__!r}>"

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self.__wrapped__)) | {"with_labels", "with_cutoff"})

    # the SDK clients are context managers (sync or async); so is their governed proxy
    def __enter__(self) -> Any:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self.__wrapped__.__exit__(*exc)

    async def __aenter__(self) -> Any:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.__wrapped__.__aexit__(*exc)

    # governed-client extras (the SDKs have no attributes of these names)
    def with_labels(self, **labels: str) -> Any:
        """The same client governed with more labels (e.g. ``agent="critic"``)."""
        from ..governor import check_labels

        checked = check_labels(labels)
        return GovernedProxy(
            self.__wrapped__, self._llmb_routes, self._llmb_settings.with_labels(checked)
        )

    def with_cutoff(self, on_cutoff: OnCutoff) -> Any:
        """The same client, with streams that end quietly (``"stop"``) or raise
        :class:`~llmbudget.BudgetExceeded` (``"raise"``, the default) when cut off."""
        if on_cutoff not in ("raise", "stop"):
            raise InvalidUsage(f"on_cutoff must be 'raise' or 'stop', got {on_cutoff!r}")
        s = self._llmb_settings
        return GovernedProxy(
            self.__wrapped__, self._llmb_routes, Settings(s.gov, s.labels, on_cutoff)
        )


def rewrap(routes: Routes) -> Factory:
    """A route for ``with_options`` / ``copy``: the new client is governed too."""

    def factory(settings: Settings, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            return GovernedProxy(method(*args, **kwargs), routes, settings)

        return call

    return factory
