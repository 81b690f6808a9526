"""Calendar windows in a policy's time zone.

A budget's window is ``run`` (lifetime: never resets), ``hour``, ``day``, ``week`` (ISO weeks,
Monday first) or ``month``. Windows are computed from the *local* wall clock of the policy's
time zone, so a ``day`` budget in ``Europe/Paris`` resets at Paris midnight, and then converted
to UTC instants. DST is handled by construction:

* a day that is 23 or 25 hours long is simply that long (end = next local midnight);
* the repeated hour of a fall-back is two distinct ``hour`` windows (ids are UTC instants);
* a local midnight that does not exist (zones that jump at 00:00) starts the day at the first
  instant that does exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum


class Window(StrEnum):
    """How a budget's counter resets."""

    RUN = "run"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class WindowSpan:
    """One concrete window: ``[start, end)`` as aware UTC datetimes, and a stable id.

    For ``run`` windows ``start``/``end`` are ``None`` and the id is ``"run"``.
    """

    window: Window
    id: str
    start: datetime | None
    end: datetime | None

    @property
    def resets_at(self) -> datetime | None:
        """When the counter starts again from zero (``None``: never)."""
        return self.end


def _local_midnight(d: date, tz: tzinfo) -> datetime:
    """The first existing instant of local date ``d``, as UTC."""
    naive = datetime(d.year, d.month, d.day)
    # fold=0 interprets a non-existent wall time with the offset in force *before* the gap,
    # which is exactly the instant the gap starts: the first real instant of the day.
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def span_for(window: Window, now: datetime, tz: tzinfo) -> WindowSpan:
    """The window of kind ``window`` that contains instant ``now`` (aware), in zone ``tz``."""
    if now.tzinfo is None:
        raise ValueError("span_for needs an aware datetime (got a naive one)")
    if window is Window.RUN:
        return WindowSpan(window, "run", None, None)
    local = now.astimezone(tz)
    if window is Window.HOUR:
        # Floor the UTC instant to the local hour: offsets may be fractional (+05:30), so
        # floor in local time but keep the instant arithmetic in UTC (fold-safe).
        minutes_into_hour = local.minute * 60 + local.second
        start = (now.astimezone(UTC) - timedelta(seconds=minutes_into_hour)).replace(microsecond=0)
        end = start + timedelta(hours=1)
        return WindowSpan(window, "hour:" + start.strftime("%Y-%m-%dT%H:%MZ"), start, end)
    day = local.date()
    if window is Window.DAY:
        first, nxt = day, day + timedelta(days=1)
        wid = "day:" + first.isoformat()
    elif window is Window.WEEK:
        first = day - timedelta(days=day.weekday())
        nxt = first + timedelta(days=7)
        iso = first.isocalendar()
        wid = f"week:{iso.year}-W{iso.week:02d}"
    elif window is Window.MONTH:
        first = day.replace(day=1)
        nxt = (
            first.replace(year=first.year + 1, month=1)
            if first.month == 12
            else first.replace(month=first.month + 1)
        )
        wid = f"month:{first.year}-{first.month:02d}"
    else:  # pragma: no cover - exhaustive over the enum
        raise ValueError(f"unknown window {window!r}")
    start = _local_midnight(first, tz)
    end = _local_midnight(nxt, tz)
    # A zone whose midnight is skipped may put `now` (e.g. 00:30 that does not exist) before the
    # computed start; that cannot happen for real instants because astimezone() never yields a
    # skipped wall time, but guard the invariant anyway.
    if not (start <= now < end):  # pragma: no cover - defensive
        raise AssertionError(f"window {wid} [{start}, {end}) does not contain {now}")
    return WindowSpan(window, wid, start, end)
