"""The two faces (sync, async) of a governed SDK method, shared by every provider: reserve,
call, settle or hand the stream to the meter. A provider supplies a :class:`Spec`."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._core import Plan, ProviderUsage, Settings, areserve, reserve, settle_error, settle_usage
from ._stream import AsyncGovernedStream, GovernedStream, Meter, Reader


@dataclass(frozen=True, slots=True)
class Spec:
    """How one SDK method is governed.

    ``plan(settings, kwargs)`` counts the request (and may edit ``kwargs``, e.g. to ask for
    usage in the stream); ``usage(response)`` reads a non-streamed response's usage;
    ``reader(plan)`` makes a fresh stream reader; ``wrap_stream`` (optional) turns the SDK's
    stream object and our governed iterator into what the caller gets back.
    """

    plan: Callable[[Settings, dict[str, Any]], Plan]
    usage: Callable[[Any], ProviderUsage | None]
    reader: Callable[[Plan], Reader]


def is_async(method: Any) -> bool:
    """An SDK method that returns a coroutine (the SDKs decorate some ``async def``s)."""
    if inspect.iscoroutinefunction(method) or inspect.iscoroutinefunction(inspect.unwrap(method)):
        return True
    owner = getattr(method, "__self__", None)
    return type(owner).__name__.startswith("Async")


def governed(spec: Spec) -> Callable[[Settings, Any], Any]:
    """A proxy route: ``factory(settings, bound_sdk_method) -> governed method``."""

    def factory(settings: Settings, method: Any) -> Any:
        if is_async(method):

            @functools.wraps(method)
            async def acall(*args: Any, **kwargs: Any) -> Any:
                plan = spec.plan(settings, kwargs)
                res = await areserve(settings, plan)
                try:
                    out = await method(*args, **kwargs)
                except BaseException as e:
                    await asyncio.to_thread(settle_error, res, plan, e)
                    raise
                if plan.stream:
                    return AsyncGovernedStream(
                        out, Meter(res, plan), spec.reader(plan), settings.on_cutoff
                    )
                await asyncio.to_thread(settle_usage, res, plan, spec.usage(out))
                return out

            return acall

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            plan = spec.plan(settings, kwargs)
            res = reserve(settings, plan)
            try:
                out = method(*args, **kwargs)
            except BaseException as e:
                settle_error(res, plan, e)
                raise
            if plan.stream:
                return GovernedStream(out, Meter(res, plan), spec.reader(plan), settings.on_cutoff)
            settle_usage(res, plan, spec.usage(out))
            return out

        return call

    return factory
