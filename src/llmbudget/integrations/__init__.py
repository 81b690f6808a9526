"""Governed provider clients and framework hooks.

``gov.wrap(client, **labels)`` returns a proxy of an official SDK client (``openai``,
``anthropic``, ``groq``; sync or async) whose model calls are reserved, streamed under
budget and settled with the provider's usage; everything else passes through. The LiteLLM
hook is :class:`llmbudget.integrations.litellm.LLMBudgetLogger`, the LangChain callback
handler :class:`llmbudget.integrations.langchain.LLMBudgetCallbackHandler`.

Each SDK is an optional extra; none is imported here (the wrapped client's own module is
the only one touched, and only by name). Guide: ``docs/integrations.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from ._core import GovernedProxy, OnCutoff, ProviderUsage, Settings
from ._stream import AsyncGovernedStream, GovernedStream, PartialResult

if TYPE_CHECKING:
    from ..governor import Governor

__all__ = [
    "AsyncGovernedStream",
    "GovernedProxy",
    "GovernedStream",
    "PartialResult",
    "ProviderUsage",
    "wrap",
]

_SUPPORTED = (
    "openai.OpenAI/AsyncOpenAI/AzureOpenAI, anthropic.Anthropic/AsyncAnthropic and "
    "groq.Groq/AsyncGroq"
)


def _sdk_of(client: Any) -> str:
    for cls in type(client).__mro__:
        top = cls.__module__.split(".")[0]
        if top in ("openai", "anthropic", "groq"):
            return top
    return ""


def wrap(gov: Governor, client: Any, *, on_cutoff: OnCutoff = "raise", **labels: str) -> Any:
    """Return a governed proxy of ``client`` (dispatch on the SDK it comes from).

    ``labels`` are added to every call (besides ``model``, ``provider``, ``operation``);
    ``on_cutoff``: what a stream does when the budget cuts it — ``"raise"``
    :class:`~llmbudget.BudgetExceeded` carrying ``.partial`` (default) or ``"stop"``
    quietly (check ``stream.cut_off``).
    """
    from ..governor import check_labels

    if isinstance(client, GovernedProxy):
        raise ConfigError("this client is already governed; wrap the SDK client once")
    if on_cutoff not in ("raise", "stop"):
        raise ConfigError(f"on_cutoff must be 'raise' or 'stop', got {on_cutoff!r}")
    settings = Settings(gov, check_labels(labels), on_cutoff)
    sdk = _sdk_of(client)
    name = type(client).__name__
    if sdk == "openai" and hasattr(client, "chat"):
        from . import _openai

        return GovernedProxy(client, _openai.routes(), settings)
    if sdk == "groq" and hasattr(client, "chat"):
        from . import _groq

        return GovernedProxy(client, _groq.routes(), settings)
    if sdk == "anthropic" and hasattr(client, "messages"):
        from . import _anthropic

        return GovernedProxy(client, _anthropic.routes(), settings)
    kind = type(client).__module__.split(".")[0]
    raise ConfigError(f"cannot govern a {name} from {kind!r}: supported clients are {_SUPPORTED}")
