"""The exceptions of the tbcontracts-compatible API, rooted in llmbudget's error tree.

::

    LLMBudgetError
    └── TBCError                                  tbcontracts' base
        ├── BudgetExceededError   (BudgetExceeded) an agent cannot get the tokens it asks for
        │   └── ConfidenceGateClosed (ConfidenceReached)  ... because it was confident already
        ├── UnknownAgentError     (NotFound, KeyError)    an agent that was never registered
        └── InvalidContract       (InvalidUsage, TypeError) a contract argument of the wrong type

Code written for tbcontracts catches these under the same names; code written for llmbudget
catches them as :class:`~llmbudget.BudgetExceeded`, :class:`~llmbudget.ConfidenceReached`,
:class:`~llmbudget.NotFound` or :class:`~llmbudget.InvalidUsage`.
"""

from __future__ import annotations

from typing import Any

from .._errors import BudgetExceeded, ConfidenceReached, InvalidUsage, LLMBudgetError, NotFound

__all__ = [
    "BudgetExceededError",
    "ConfidenceGateClosed",
    "InvalidContract",
    "TBCError",
    "UnknownAgentError",
]


class TBCError(LLMBudgetError):
    """Base class of every error the tbcontracts-compatible API raises."""


def _fields(
    agent_name: str, requested: int, available: int, cause: BudgetExceeded | None
) -> dict[str, Any]:
    if cause is not None:
        return {
            "budget": cause.budget,
            "window": cause.window,
            "limit": cause.limit,
            "used": cause.used,
            "reserved": cause.reserved,
            "requested": requested,
            "resets_at": cause.resets_at,
            "unit": cause.unit,
            "suggestion": cause.suggestion,
            "partial": cause.partial,
            "decision": cause.decision,
        }
    return {
        "budget": agent_name,
        "window": "run",
        "limit": max(0, available),
        "used": 0,
        "reserved": 0,
        "requested": requested,
        "resets_at": None,
    }


class BudgetExceededError(TBCError, BudgetExceeded):
    """An agent asked for more tokens than it has, even after borrowing from its pool.

    Constructed as in tbcontracts — ``BudgetExceededError(agent_name, requested, available)``
    — with its ``agent_name``, ``requested`` and ``available`` attributes and message. When
    llmbudget's governor refused, ``cause`` is that :class:`~llmbudget.BudgetExceeded` and its
    details (``budget``, ``limit``, ``used``, ``reserved``, ``decision``, ``suggestion``) are
    carried over; ``partial`` holds the wrapped function's result when the call already ran.
    """

    def __init__(
        self,
        agent_name: str,
        requested: int,
        available: int,
        *,
        cause: BudgetExceeded | None = None,
        partial: Any = None,
        detail: str = "",
    ) -> None:
        self.agent_name = agent_name
        self.available = available
        self.cause = cause
        message = (
            f"Agent '{agent_name}' requested {requested} tokens but only "
            f"{available} were available even after attempting reallocation."
        )
        if detail:
            message = f"{message[:-1]}: {detail}"
        elif cause is not None:
            why = str(cause.args[0]) if cause.args else str(cause)
            if cause.suggestion and why.endswith(f". {cause.suggestion}"):
                why = why[: -len(cause.suggestion) - 2]  # policy-file advice: not for agents
            message = f"{message[:-1]}: {why}"
        fields = _fields(agent_name, requested, available, cause)
        fields["suggestion"] = ""  # already part of the cause's message
        BudgetExceeded.__init__(self, message, **fields)
        self.suggestion = cause.suggestion if cause is not None else ""
        if partial is not None:
            self.partial = partial


class ConfidenceGateClosed(BudgetExceededError, ConfidenceReached):
    """The agent already reported a result at or above its ``confidence_threshold``, so no
    more spending is approved (tbcontracts raises :class:`BudgetExceededError` here with
    ``requested=0``; this subclass is one, and is also a :class:`~llmbudget.ConfidenceReached`
    carrying the ``confidence`` and ``threshold``)."""

    def __init__(
        self,
        agent_name: str,
        requested: int,
        available: int,
        *,
        confidence: float | None = None,
        threshold: float | None = None,
        cause: BudgetExceeded | None = None,
    ) -> None:
        self.confidence = confidence
        self.threshold = threshold
        seen = "an earlier result" if confidence is None else f"a result at {confidence:g}"
        detail = (
            f"confidence gate closed ({seen} reached the threshold {threshold}); "
            "further spending on this agent is not approved"
        )
        BudgetExceededError.__init__(
            self, agent_name, requested, available, cause=cause, detail=detail
        )
        self.confidence = confidence


class UnknownAgentError(TBCError, NotFound, KeyError):
    """An agent name that was never registered. Also a :class:`KeyError` (tbcontracts'
    ``Ledger`` and ``Reallocator`` raise ``KeyError`` for unknown agents) and a
    :class:`~llmbudget.NotFound`."""

    def __str__(self) -> str:  # not KeyError's quoted repr
        return str(self.args[0]) if self.args else ""


class InvalidContract(TBCError, InvalidUsage, TypeError):
    """A contract argument of the wrong type (e.g. ``priority="high"``). Catchable as
    :class:`TypeError` (what tbcontracts ends up raising) and as :class:`ValueError` /
    :class:`~llmbudget.InvalidUsage`."""
