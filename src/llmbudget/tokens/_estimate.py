"""Completion estimates: ``max_tokens`` when given, else a high percentile of history, else a
default. Pure functions over :class:`~llmbudget.core.samples.EstimateSample` sequences."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from .._errors import InvalidUsage
from ..core.samples import EstimateSample

__all__ = [
    "DEFAULT_COMPLETION_TOKENS",
    "CompletionEstimate",
    "CompletionEstimator",
    "estimate_completion",
    "percentile",
]

DEFAULT_COMPLETION_TOKENS = 4096
DEFAULT_PERCENTILE = 0.99
DEFAULT_MIN_SAMPLES = 20


@dataclass(frozen=True, slots=True)
class CompletionEstimate:
    """What to reserve for the completion, and where the number came from.

    ``source`` is ``"max_tokens"``, ``"history"`` (``samples`` settled calls of the same model
    and operation, at ``percentile``) or ``"default"``.
    """

    tokens: int
    source: Literal["max_tokens", "history", "default"]
    samples: int = 0
    percentile: float | None = None


def percentile(values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile (``q`` in (0, 1]): the smallest value with at least ``q`` of
    the values at or below it. Never interpolates below an observed value."""
    if not values:
        raise InvalidUsage("percentile of no values")
    if not (0.0 < q <= 1.0):
        raise InvalidUsage(f"percentile must be in (0, 1], got {q!r}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _check(max_tokens: int | None, q: float, default: int, min_samples: int) -> None:
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0
    ):
        raise InvalidUsage(f"max_tokens must be a positive int, got {max_tokens!r}")
    if not (isinstance(q, float | int) and 0.0 < q <= 1.0):
        raise InvalidUsage(f"percentile must be in (0, 1], got {q!r}")
    if isinstance(default, bool) or not isinstance(default, int) or default <= 0:
        raise InvalidUsage(f"default completion tokens must be a positive int, got {default!r}")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise InvalidUsage(f"min_samples must be an int >= 1, got {min_samples!r}")


def estimate_completion(
    model: str,
    operation: str,
    *,
    max_tokens: int | None = None,
    samples: Iterable[EstimateSample] = (),
    q: float = DEFAULT_PERCENTILE,
    default: int = DEFAULT_COMPLETION_TOKENS,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> CompletionEstimate:
    """Tokens to reserve for a completion of ``model`` doing ``operation``.

    1. ``max_tokens`` when the call sets it (the provider cannot bill more);
    2. else the ``q`` percentile (default 99th) of ``actual_completion`` over the samples of
       the same model and operation, once there are at least ``min_samples`` of them;
    3. else ``default``.
    """
    _check(max_tokens, q, default, min_samples)
    if max_tokens is not None:
        return CompletionEstimate(max_tokens, "max_tokens")
    actual = [s.actual_completion for s in samples if s.model == model and s.operation == operation]
    if len(actual) >= min_samples:
        return CompletionEstimate(max(1, percentile(actual, q)), "history", len(actual), q)
    return CompletionEstimate(default, "default", len(actual))


class CompletionEstimator:
    """:func:`estimate_completion` with the history pre-computed per (model, operation), so
    the hot path is one dict lookup. Build it from the ledger's samples and rebuild it when
    they change (it is immutable, so swapping the reference is thread-safe)."""

    __slots__ = ("_by_key", "default", "min_samples", "q")

    def __init__(
        self,
        samples: Iterable[EstimateSample] = (),
        *,
        q: float = DEFAULT_PERCENTILE,
        default: int = DEFAULT_COMPLETION_TOKENS,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> None:
        _check(None, q, default, min_samples)
        self.q, self.default, self.min_samples = q, default, min_samples
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for s in samples:
            groups[(s.model, s.operation)].append(s.actual_completion)
        self._by_key: dict[tuple[str, str], CompletionEstimate] = {}
        for key, values in groups.items():
            if len(values) >= min_samples:
                est = CompletionEstimate(max(1, percentile(values, q)), "history", len(values), q)
            else:
                est = CompletionEstimate(default, "default", len(values))
            self._by_key[key] = est

    def estimate(
        self, model: str, operation: str, max_tokens: int | None = None
    ) -> CompletionEstimate:
        """Same answer as :func:`estimate_completion` over the samples given at construction."""
        if max_tokens is not None:
            _check(max_tokens, self.q, self.default, self.min_samples)
            return CompletionEstimate(max_tokens, "max_tokens")
        hit = self._by_key.get((model, operation))
        return hit if hit is not None else CompletionEstimate(self.default, "default")
