"""Small value types and warning classes shared by the tokens modules."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


class TokenEstimateWarning(UserWarning):
    """A count was estimated (no exact tokenizer is known for the model).

    Emitted at most once per model name per process.
    """


class TokenizerMismatchWarning(UserWarning):
    """A provider reported a prompt token count that differs from ours beyond the tolerance.

    Emitted at most once per model name per process; the message carries both numbers.
    """


@dataclass(frozen=True, slots=True)
class TokenCount:
    """The result of counting text or a chat for one model.

    ``tokens`` is the count; ``tokenizer`` names what produced it (for example
    ``quicktok:o200k_base`` or ``fallback:bytes``); ``exact`` is true when the number is what
    the provider bills (the model's own tokenizer, and for chats only documented formatting
    rules); ``model`` is the model name as given.
    """

    tokens: int
    tokenizer: str
    exact: bool
    model: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with ``model``, ``tokens``, ``tokenizer`` and ``exact``."""
        return asdict(self)
