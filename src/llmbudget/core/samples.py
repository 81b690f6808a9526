"""Estimate-versus-actual samples: what calibration learns from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EstimateSample:
    """One settled call: what was reserved for it and what the provider reported.

    ``estimated_prompt`` is our count of the prompt, ``actual_prompt`` the provider's;
    ``estimated_completion`` what was reserved for the completion (``max_tokens`` or a learned
    estimate), ``actual_completion`` what the provider billed. ``at`` is a POSIX timestamp.
    """

    model: str
    operation: str
    estimated_prompt: int
    actual_prompt: int
    estimated_completion: int
    actual_completion: int
    at: float
