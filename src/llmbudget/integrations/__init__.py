"""Governed provider clients and framework hooks. Each SDK is an optional extra and is
imported only when a client of its kind is wrapped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import ConfigError

if TYPE_CHECKING:
    from ..governor import Governor

__all__ = ["wrap"]


def wrap(gov: Governor, client: Any, **labels: str) -> Any:
    """Return a governed proxy of ``client`` (dispatch on the SDK it comes from)."""
    kind = type(client).__module__.split(".")[0]
    raise ConfigError(
        f"cannot govern a {type(client).__qualname__} from {kind!r}: supported clients are "
        "openai.OpenAI/AsyncOpenAI, anthropic.Anthropic/AsyncAnthropic and groq.Groq/AsyncGroq"
    )
