"""The one error a plan raises."""

from __future__ import annotations

from .._errors import ConfigError

__all__ = ["PlanError"]


class PlanError(ConfigError):
    """A plan file or object is invalid.

    ``source`` is the file (or ``<plan>``), ``path`` the key path such as
    ``projects.M-006.phases.development[0]``, ``line`` the 1-based line when known.
    """

    def __init__(
        self, message: str, *, source: str = "<plan>", path: str = "", line: int | None = None
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
