"""Calibration: how good were our estimates, and what margin keeps under-estimates rare.

A reservation is ``ceil((prompt_estimate + completion_estimate) * (1 + margin))``. After a
call settles, the ledger keeps the estimate and the provider's actual usage as an
:class:`~llmbudget.core.samples.EstimateSample`. For each (model, operation),
:func:`calibrate` reports the bias, the share of calls that used more than was estimated,
the margin in force and the smallest margin that would have kept that share at or below the
target (default 1 %). :class:`MarginTable` holds the margins the governor applies.

The tokenizer-mismatch check compares a provider's reported prompt tokens with our count and
warns once per model when they differ by more than a tolerance.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .._errors import InvalidUsage
from ..core.samples import EstimateSample
from ._types import TokenizerMismatchWarning

__all__ = [
    "DEFAULT_TARGET_UNDER_RATE",
    "CalibrationRow",
    "MarginTable",
    "calibrate",
    "check_prompt_mismatch",
    "required_margin",
]

DEFAULT_TARGET_UNDER_RATE = 0.01
MAX_MARGIN = 10.0


@dataclass(frozen=True, slots=True)
class CalibrationRow:
    """Accuracy of the estimates for one (model, operation).

    ``bias`` is the mean of (estimate - actual) / actual over totals (positive: we
    over-reserve); ``prompt_bias`` and ``completion_bias`` the same for each side;
    ``under_share`` the share of calls whose actual total exceeded the reservation, that is
    the estimate grown by ``margin`` (the margin in force); ``recommended_margin`` the
    smallest margin that keeps ``under_share`` at or below ``target``, assuming the samples'
    estimates were made with ``margin`` applied to nothing (raw estimates).
    """

    model: str
    operation: str
    samples: int
    bias: float
    prompt_bias: float
    completion_bias: float
    under_share: float
    margin: float
    recommended_margin: float
    target: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _rel(est: int, actual: int) -> float:
    if actual == 0:
        return 0.0 if est == 0 else 1.0
    return (est - actual) / actual


def required_margin(
    pairs: Iterable[tuple[int, int]], target: float = DEFAULT_TARGET_UNDER_RATE
) -> float:
    """Smallest margin ``m >= 0`` such that at most ``floor(target * n)`` of the
    ``(estimate, actual)`` pairs have ``actual > ceil(estimate * (1 + m))``.

    With fewer than ``1 / target`` samples no miss is allowed, so the margin covers the worst
    ratio seen (conservative on thin history). Pairs with a zero estimate and a positive
    actual cannot be covered by any margin and count as misses; if they alone exceed the
    budget of misses the result is :data:`MAX_MARGIN`.
    """
    if not (0.0 <= target < 1.0):
        raise InvalidUsage(f"target under-estimate rate must be in [0, 1), got {target!r}")
    ratios: list[float] = []
    uncoverable = 0
    n = 0
    for est, actual in pairs:
        n += 1
        if actual <= est:
            ratios.append(1.0)
        elif est <= 0:
            uncoverable += 1
        else:
            ratios.append(actual / est)
    if n == 0:
        return 0.0
    allowed = math.floor(target * n) - uncoverable
    if allowed < 0:
        return MAX_MARGIN
    ratios.sort(reverse=True)
    if allowed >= len(ratios):
        return 0.0
    need = ratios[allowed] - 1.0
    if need <= 0:
        return 0.0
    # round up to 4 decimals so ceil(est * (1 + m)) really covers the ratio
    return min(MAX_MARGIN, math.ceil(need * 10_000 - 1e-9) / 10_000)


def calibrate(
    samples: Iterable[EstimateSample],
    *,
    target: float = DEFAULT_TARGET_UNDER_RATE,
    margins: Mapping[tuple[str, str], float] | MarginTable | None = None,
) -> list[CalibrationRow]:
    """One :class:`CalibrationRow` per (model, operation), sorted by model then operation.

    ``margins`` are the margins in force (a mapping or a :class:`MarginTable`; missing keys
    mean 0). The samples' estimates are taken as raw (before margin); ``under_share`` is
    measured against the estimate grown by the margin in force.
    """
    if not (0.0 <= target < 1.0):
        raise InvalidUsage(f"target under-estimate rate must be in [0, 1), got {target!r}")
    groups: dict[tuple[str, str], list[EstimateSample]] = defaultdict(list)
    for s in samples:
        if not isinstance(s, EstimateSample):
            raise InvalidUsage(f"calibrate() takes EstimateSample objects, got {type(s).__name__}")
        groups[(s.model, s.operation)].append(s)
    rows: list[CalibrationRow] = []
    for (model, op), group in sorted(groups.items()):
        if isinstance(margins, MarginTable):
            m = margins.get(model, op)
        elif margins is not None:
            m = float(margins.get((model, op), 0.0))
        else:
            m = 0.0
        n = len(group)
        totals = [
            (s.estimated_prompt + s.estimated_completion, s.actual_prompt + s.actual_completion)
            for s in group
        ]
        under = sum(1 for est, act in totals if act > math.ceil(est * (1.0 + m)))
        rows.append(
            CalibrationRow(
                model=model,
                operation=op,
                samples=n,
                bias=sum(_rel(e, a) for e, a in totals) / n,
                prompt_bias=sum(_rel(s.estimated_prompt, s.actual_prompt) for s in group) / n,
                completion_bias=sum(
                    _rel(s.estimated_completion, s.actual_completion) for s in group
                )
                / n,
                under_share=under / n,
                margin=m,
                recommended_margin=required_margin(totals, target),
                target=target,
            )
        )
    return rows


class MarginTable:
    """Thread-safe margins per (model, operation), with a default for everything else.

    The governor multiplies each reservation by ``1 + get(model, operation)``;
    :meth:`update_from` adopts the recommended margins of a calibration run.
    """

    def __init__(self, default: float = 0.0, floor: float = 0.0) -> None:
        self._check(default)
        self._check(floor)
        self.default = default
        self.floor = floor
        self._lock = threading.Lock()
        self._m: dict[tuple[str, str], float] = {}

    @staticmethod
    def _check(v: float) -> None:
        if isinstance(v, bool) or not isinstance(v, int | float) or not (0.0 <= v <= MAX_MARGIN):
            raise InvalidUsage(f"margin must be a number in [0, {MAX_MARGIN:g}], got {v!r}")

    def get(self, model: str, operation: str) -> float:
        """The margin for (model, operation)."""
        return self._m.get((model, operation), self.default)

    def set(self, model: str, operation: str, margin: float) -> None:
        """Set one margin (clamped to the floor)."""
        self._check(margin)
        with self._lock:
            self._m[(model, operation)] = max(self.floor, float(margin))

    def update_from(self, rows: Iterable[CalibrationRow], min_samples: int = 20) -> None:
        """Adopt ``recommended_margin`` from rows with at least ``min_samples`` samples."""
        for r in rows:
            if r.samples >= min_samples:
                self.set(r.model, r.operation, r.recommended_margin)

    def reserve(self, model: str, operation: str, estimate: int) -> int:
        """``ceil(estimate * (1 + margin))``: what to reserve for a raw estimate."""
        return math.ceil(estimate * (1.0 + self.get(model, operation)))

    def as_dict(self) -> dict[tuple[str, str], float]:
        """A snapshot of the explicit margins."""
        with self._lock:
            return dict(self._m)


_mismatch_lock = threading.Lock()
_mismatch_warned: set[str] = set()


def check_prompt_mismatch(
    model: str,
    ours: int,
    theirs: int,
    *,
    tolerance: float = 0.02,
    min_abs: int = 3,
) -> bool:
    """Compare our prompt count with the provider's reported ``prompt_tokens``.

    A mismatch is a difference larger than both ``min_abs`` tokens and ``tolerance`` (a
    fraction of the provider's number). Returns whether it mismatched; the first mismatch
    per model name in this process emits a :class:`TokenizerMismatchWarning` with both
    numbers (later ones only return ``True``, for the caller's metrics).
    """
    for name, v in (("ours", ours), ("theirs", theirs)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InvalidUsage(f"{name} must be a non-negative int, got {v!r}")
    if not (isinstance(tolerance, int | float) and 0.0 <= tolerance < 10.0):
        raise InvalidUsage(f"tolerance must be a fraction in [0, 10), got {tolerance!r}")
    diff = abs(ours - theirs)
    if diff <= min_abs or diff <= tolerance * theirs:
        return False
    with _mismatch_lock:
        first = model not in _mismatch_warned
        _mismatch_warned.add(model)
    if first:
        direction = "under" if ours < theirs else "over"
        warnings.warn(
            f"tokenizer mismatch for model {model!r}: we counted {ours} prompt tokens, the "
            f"provider reported {theirs} ({direction}-count by {diff}, "
            f"{diff / max(theirs, 1):.1%}); check the model's tokenizer registration",
            TokenizerMismatchWarning,
            stacklevel=2,
        )
    return True


def reset_mismatch_warnings() -> None:
    """Forget which models were warned about (for tests and long-running reloads)."""
    with _mismatch_lock:
        _mismatch_warned.clear()
