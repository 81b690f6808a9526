"""A thin synchronous face over :class:`~llmbudget.store.redis.AsyncRedisStore`, so the one
contract suite also runs against the asyncio store.

Every call is scheduled on one event loop running in a background thread and waited for;
calls from several threads run concurrently as tasks on that loop (as they would in an
asyncio application).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from llmbudget.store import Store
from llmbudget.store.redis import AsyncRedisStore


class SyncOverAsync(Store):
    supports_pools = True

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.inner: AsyncRedisStore = self._wait(AsyncRedisStore.open(url))
        self.url = self.inner.url

    def _wait(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    def close(self) -> None:
        self._wait(self.inner.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def _delegate(name: str) -> Callable[..., Any]:
    def method(self: SyncOverAsync, *args: Any, **kwargs: Any) -> Any:
        return self._wait(getattr(self.inner, name)(*args, **kwargs))

    method.__name__ = name
    return method


for _name in [*sorted(Store.__abstractmethods__), "close_counters"]:
    setattr(SyncOverAsync, _name, _delegate(_name))
SyncOverAsync.__abstractmethods__ = frozenset()
