"""Every error llmbudget raises, in one tree.

::

    LLMBudgetError
    ├── ConfigError              a policy, plan or setting is wrong (names file, key path, line)
    │   └── PolicyError
    ├── InvalidUsage             a bad argument: negative/NaN/huge counts, bad labels (ValueError)
    ├── UnknownModel             no tokenizer or price is known for a model (LookupError)
    ├── TokenizerError           a tokenizer could not be loaded or run
    ├── BudgetExceeded           a budget refused tokens (carries budget, window, limit, used, ...)
    │   ├── ApprovalRequired     ... and a person may grant more (carries the request id)
    │   ├── ApprovalDenied       ... and a person already said no for this window
    │   └── ConfidenceReached    ... because the agent already reported a confident result
    ├── ReservationError         a reservation id is unknown, or already released
    ├── NotFound                 an approval id or budget name is unknown (LookupError)
    └── StoreError               the ledger cannot do its job
        ├── StoreUnavailable     cannot reach / open / write the ledger
        └── SchemaError          the ledger was written by a newer llmbudget

Each message names the thing that is wrong and how to fix it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = [
    "ApprovalDenied",
    "ApprovalRequired",
    "BudgetExceeded",
    "ConfidenceReached",
    "ConfigError",
    "InvalidUsage",
    "LLMBudgetError",
    "NotFound",
    "PolicyError",
    "ReservationError",
    "SchemaError",
    "StoreError",
    "StoreUnavailable",
    "TokenizerError",
    "UnknownModel",
]


class LLMBudgetError(Exception):
    """Base class of every error raised by llmbudget."""


class ConfigError(LLMBudgetError):
    """A configuration value is wrong; the message names where and what was expected."""


class PolicyError(ConfigError):
    """A policy file or object is invalid.

    ``source`` is the file (or ``<policy>``), ``path`` the key path such as
    ``budgets[2].levels[0].at``, ``line`` the 1-based line in the file when known.
    """

    def __init__(
        self, message: str, *, source: str = "<policy>", path: str = "", line: int | None = None
    ) -> None:
        self.source = source
        self.path = path
        self.line = line
        where = source
        if line is not None:
            where += f":{line}"
        if path:
            where += f": {path}"
        super().__init__(f"{where}: {message}")
        self.reason = message


class InvalidUsage(LLMBudgetError, ValueError):
    """An argument is out of range or of the wrong type (token counts, labels, ids)."""


class UnknownModel(LLMBudgetError, LookupError):
    """No tokenizer (or price) is registered for a model name."""


class TokenizerError(LLMBudgetError):
    """A tokenizer could not be loaded or failed on its input."""


class BudgetExceeded(LLMBudgetError):
    """A budget refused a reservation, extension or call.

    Attributes: ``budget`` (name), ``window`` (``run``/``hour``/``day``/``week``/``month`` and
    its id), ``limit``, ``used`` (committed), ``reserved`` (in flight), ``requested``,
    ``resets_at`` (an aware ``datetime`` or ``None`` for lifetime budgets), ``unit``,
    ``suggestion`` (what to change, in which file, or when it resets), ``partial`` (any
    partial result the caller attached, e.g. the streamed text so far) and ``decision``
    (the full :class:`~llmbudget.Decision`, when one was made).
    """

    def __init__(
        self,
        message: str,
        *,
        budget: str,
        window: str,
        limit: int,
        used: int,
        reserved: int,
        requested: int,
        resets_at: datetime | None,
        unit: str = "tokens",
        suggestion: str = "",
        partial: Any = None,
        decision: Any = None,
    ) -> None:
        self.budget = budget
        self.window = window
        self.limit = limit
        self.used = used
        self.reserved = reserved
        self.requested = requested
        self.resets_at = resets_at
        self.unit = unit
        self.suggestion = suggestion
        self.partial = partial
        self.decision = decision
        full = message if not suggestion else f"{message}. {suggestion}"
        super().__init__(full)

    @property
    def remaining(self) -> int:
        """What the budget could still grant right now (never negative)."""
        return max(0, self.limit - self.used - self.reserved)

    def with_partial(self, partial: Any) -> BudgetExceeded:
        """Attach a partial result (e.g. text streamed before the cut) and return ``self``."""
        self.partial = partial
        return self


class ApprovalRequired(BudgetExceeded):
    """A budget reached a level whose action is ``approve``.

    ``request_id`` names the approval request; a person grants more headroom with
    ``llmbudget approve ID [--tokens N]`` (or refuses with ``llmbudget deny ID``) and the
    caller retries.
    """

    def __init__(self, message: str, *, request_id: str, **kwargs: Any) -> None:
        self.request_id = request_id
        super().__init__(message, **kwargs)


class ApprovalDenied(BudgetExceeded):
    """A person denied the approval request for this budget's current window."""

    def __init__(self, message: str, *, request_id: str, **kwargs: Any) -> None:
        self.request_id = request_id
        super().__init__(message, **kwargs)


class ConfidenceReached(BudgetExceeded):
    """A budget with a ``confidence_threshold`` is closed for its window: the agent already
    committed a result at least that confident, so further spending is not approved.
    ``confidence`` is the confidence that closed it, when known."""

    def __init__(self, message: str, *, confidence: float | None = None, **kwargs: Any) -> None:
        self.confidence = confidence
        super().__init__(message, **kwargs)


class ReservationError(LLMBudgetError):
    """A reservation id is unknown, or the reservation was already released or settled."""


class NotFound(LLMBudgetError, LookupError):
    """An approval request, budget or counter named by the caller does not exist."""


class StoreError(LLMBudgetError):
    """The ledger store failed; the message names the store (URL or path)."""


class StoreUnavailable(StoreError):
    """The ledger cannot be reached, opened or written (down, locked, read-only)."""


class SchemaError(StoreError):
    """The ledger's schema is newer than this llmbudget understands."""
