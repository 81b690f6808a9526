"""``TelemetryRecorder``: tbcontracts' optional OpenTelemetry spans, with the same names.

Off by default; nothing is imported unless a tracer is given or ``from_global`` finds
``opentelemetry``. Spans are named ``tbc.<event>`` with ``tbc.*`` attributes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

__all__ = ["TelemetryRecorder"]


class _NullSpan:
    """A span that records nothing."""

    def set_attribute(self, key: str, value: Any) -> None:
        """Ignore ``key``."""

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Ignore ``attributes``."""

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        """Ignore the event."""

    def record_exception(self, exception: BaseException) -> None:
        """Ignore ``exception``."""

    def set_status(self, *args: Any, **kwargs: Any) -> None:
        """Ignore the status."""

    def __enter__(self) -> _NullSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class TelemetryRecorder:
    """Emits governance events as OpenTelemetry spans when ``enabled`` (a tracer was given
    and ``enabled=True``); otherwise every method is a no-op."""

    def __init__(self, tracer: Any = None, enabled: bool = False) -> None:
        self._tracer = tracer
        self._enabled = bool(enabled and tracer is not None)

    @classmethod
    def disabled(cls) -> TelemetryRecorder:
        """A recorder that never emits (the default)."""
        return cls()

    @classmethod
    def from_global(cls, service_name: str = "tbcontracts") -> TelemetryRecorder:
        """A recorder on OpenTelemetry's global tracer provider, or a disabled one when
        ``opentelemetry`` is not installed."""
        try:
            from opentelemetry import trace  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return cls.disabled()
        return cls(tracer=trace.get_tracer(service_name), enabled=True)

    @property
    def enabled(self) -> bool:
        """Whether spans are emitted."""
        return self._enabled

    @contextmanager
    def span(self, name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """A span ``tbc.<name>`` (a null span when disabled); an exception raised inside is
        recorded on it and re-raised."""
        if not self._enabled:
            yield _NullSpan()
            return
        with self._tracer.start_as_current_span(f"tbc.{name}") as span:
            for k, v in (attributes or {}).items():
                if v is not None:
                    span.set_attribute(k, v)
            try:
                yield span
            except BaseException as exc:
                with suppress(Exception):  # telemetry never changes a decision
                    span.record_exception(exc)
                raise

    def _event(self, name: str, attributes: Mapping[str, Any]) -> None:
        if self._enabled:
            with self.span(name, attributes):
                pass

    def event_register(self, agent_name: str, priority: int, max_tokens: int) -> None:
        """An agent was registered."""
        self._event(
            "register_agent",
            {"tbc.agent": agent_name, "tbc.priority": priority, "tbc.max_tokens": max_tokens},
        )

    def event_reallocation(self, needy: str, donor: str, tokens: int, shortfall: int) -> None:
        """Tokens moved from ``donor`` to ``needy``."""
        self._event(
            "reallocate",
            {
                "tbc.needy_agent": needy,
                "tbc.donor_agent": donor,
                "tbc.tokens_moved": tokens,
                "tbc.shortfall": shortfall,
            },
        )

    def event_gate_block(
        self, agent_name: str, confidence: float | None, threshold: float | None
    ) -> None:
        """A call was refused at the confidence gate."""
        self._event(
            "confidence_gate_block",
            {"tbc.agent": agent_name, "tbc.confidence": confidence, "tbc.threshold": threshold},
        )
