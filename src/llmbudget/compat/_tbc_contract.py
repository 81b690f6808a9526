"""``BudgetContract``, ``ConfidenceGate`` and the token estimate of the tbcontracts API."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import InvalidUsage
from ._tbc_errors import InvalidContract

__all__ = [
    "BudgetContract",
    "ConfidenceGate",
    "check_confidence",
    "count_text_tokens",
    "estimate_tokens",
]

MAX_TOKENS = 10**12


def _whole(name: str, value: object, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidContract(f"{name} must be a whole number (int), got {value!r}")
    return value


def check_confidence(name: str, value: object) -> float:
    """``value`` as a confidence from 0 to 1, or :class:`~llmbudget.InvalidUsage` (a
    ``ValueError``) naming ``name``; NaN, infinities, booleans and non-numbers are refused."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0.0 <= value <= 1.0  # NaN fails this too
    ):
        raise InvalidUsage(f"{name} must be a number from 0 to 1, got {value!r}")
    return float(value)


@dataclass
class BudgetContract:
    """The budget rules of one agent, as in tbcontracts.

    ``priority``: importance, a whole number >= 1 (higher = more important; tokens only flow
    to an agent from agents of lower or equal priority). ``max_tokens``: the initial
    allocation (>= 0). ``min_reserve``: what the agent always keeps when others borrow from
    it (default 10 % of ``max_tokens``, rounded down; between 0 and ``max_tokens``).
    ``confidence_threshold``: from 0 to 1, or ``None`` (no gate). ``last_confidence``: the
    last confidence reported for the agent in this process (set by the manager).

    Invalid values raise ``ValueError`` (:class:`~llmbudget.InvalidUsage`) as in tbcontracts;
    values of the wrong type raise :class:`InvalidContract`, both a ``TypeError`` and a
    ``ValueError``.
    """

    agent_name: str
    priority: int = 1
    max_tokens: int = 1000
    min_reserve: int | None = None
    confidence_threshold: float | None = None
    last_confidence: float | None = field(default=None, repr=False)
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not isinstance(self.agent_name, str) or not self.agent_name:
            raise InvalidContract(f"agent_name must be a non-empty str, got {self.agent_name!r}")
        if len(self.agent_name) > 256:
            raise InvalidUsage(f"agent_name is too long ({len(self.agent_name)} chars, max 256)")
        priority = _whole("priority", self.priority)
        assert priority is not None
        if priority < 1:
            raise InvalidUsage(f"priority must be >= 1, got {priority}")
        max_tokens = _whole("max_tokens", self.max_tokens)
        assert max_tokens is not None
        if not 0 <= max_tokens <= MAX_TOKENS:
            raise InvalidUsage(f"max_tokens must be between 0 and {MAX_TOKENS:,}, got {max_tokens}")
        if self.min_reserve is None:
            self.min_reserve = int(max_tokens * 0.1)
        reserve = _whole("min_reserve", self.min_reserve)
        assert reserve is not None
        if not 0 <= reserve <= max_tokens:
            raise InvalidUsage(
                f"min_reserve must be between 0 and max_tokens ({max_tokens}), got {reserve} "
                f"(agent {self.agent_name!r})"
            )
        if self.confidence_threshold is not None:
            if isinstance(self.confidence_threshold, bool) or not isinstance(
                self.confidence_threshold, int | float
            ):
                raise InvalidContract(
                    "confidence_threshold must be a number from 0 to 1, got "
                    f"{self.confidence_threshold!r}"
                )
            self.confidence_threshold = check_confidence(
                "confidence_threshold", self.confidence_threshold
            )


class ConfidenceGate:
    """Whether an agent may keep spending, given its latest confidence (as in tbcontracts):
    always when the contract has no threshold or no confidence was reported yet, otherwise
    only while the confidence stays below the threshold."""

    @staticmethod
    def allow_further_retrieval(contract: BudgetContract, confidence: float | None) -> bool:
        """True if ``contract``'s agent may spend more at ``confidence``."""
        threshold = contract.confidence_threshold
        if threshold is None or confidence is None:
            return True
        if isinstance(confidence, float) and math.isnan(confidence):
            return False  # an unusable signal never opens a gate
        return confidence < threshold


def _heuristic(text: str) -> int:
    # tbcontracts' fallback estimate: about 1.3 tokens per whitespace-separated word,
    # at least 1 for any non-empty text.
    return max(1, int(len(text.split()) * 1.3))


def count_text_tokens(text: str, model: str | None = None) -> int:
    """Tokens in ``text``: with ``model``'s own tokenizer when a model is given (see
    ``docs/tokens.md``), otherwise tbcontracts' word heuristic (1.3 tokens a word)."""
    if not text:
        return 0
    if model is None:
        return _heuristic(text)
    from ..tokens import count_text

    return count_text(model, text).tokens


def prompt_tokens_of(args: Sequence[Any], kwargs: Mapping[str, Any], model: str | None) -> int:
    """The tokens of every ``str`` argument (positional or keyword) of a governed call."""
    total = 0
    for a in args:
        if isinstance(a, str):
            total += count_text_tokens(a, model)
    for v in kwargs.values():
        if isinstance(v, str):
            total += count_text_tokens(v, model)
    return total


def estimate_tokens(
    args: Sequence[Any], kwargs: Mapping[str, Any], result: Any, model: str | None = None
) -> int:
    """tbcontracts' estimate of one call: the ``str`` arguments plus a ``str`` result."""
    total = prompt_tokens_of(args, kwargs, model)
    if isinstance(result, str):
        total += count_text_tokens(result, model)
    return total
