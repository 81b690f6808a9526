"""Calendar windows in a policy's time zone.

A budget's window is ``run`` (lifetime: never resets), ``hour``, ``day``, ``week`` (ISO weeks,
Monday first) or ``month``. Windows are computed from the *local* wall clock of the policy's
time zone, so a ``day`` budget in ``Europe/Paris`` resets at Paris midnight, and then converted
to UTC instants. DST is handled by construction:

* a day that is 23 or 25 hours long is simply that long (end = next local midnight);
* the repeated hour of a fall-back is two distinct ``hour`` windows (ids are UTC instants);
* a local midnight that does not exist (zones that jump at 00:00, or whose gap straddles it)
  starts the day at the first instant that does exist;
* a fall-back that crosses midnight (clocks going from 00:01 back to 23:01) leaves the day
  started at the first midnight: the repeated minutes of the previous date count in the new
  day's window, so windows still tile the time line;
* ``hour`` windows are one hour long and start on the local hour; they tile wherever offsets
  change by whole hours. Where a shift is not a whole hour (Australia/Lord_Howe's 30-minute
  DST), the windows on either side of the shift overlap by that fraction.
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
    # fold=0: an ambiguous midnight (a fall-back repeats it) means its first occurrence.
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # Midnight does not exist (it falls in a gap). The day starts at the gap's transition:
    # the first instant whose wall clock reads past midnight. fold=1 reads the wall time
    # with the offset *after* the gap, an instant before it; fold=0 one at or after it.
    # (A jump at exactly 00:00 gives `first` itself; a gap that straddles midnight, such as
    # America/Toronto's 23:30 -> 00:30 in 1919, does not.) Bisect to the whole second.
    lo = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) // 2
        if mid.astimezone(tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi


def _period(window: Window, day: date) -> tuple[date, date, str]:
    """The calendar period of kind ``window`` holding local date ``day``: its first date,
    the first date of the next period, and its id."""
    if window is Window.DAY:
        return day, day + timedelta(days=1), "day:" + day.isoformat()
    if window is Window.WEEK:
        first = day - timedelta(days=day.weekday())
        iso = first.isocalendar()
        return first, first + timedelta(days=7), f"week:{iso.year}-W{iso.week:02d}"
    if window is Window.MONTH:
        first = day.replace(day=1)
        nxt = (
            first.replace(year=first.year + 1, month=1)
            if first.month == 12
            else first.replace(month=first.month + 1)
        )
        return first, nxt, f"month:{first.year}-{first.month:02d}"
    raise ValueError(f"unknown window {window!r}")  # pragma: no cover - exhaustive


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
    first, nxt, wid = _period(window, local.date())
    start = _local_midnight(first, tz)
    end = _local_midnight(nxt, tz)
    # A fall-back that crosses midnight repeats wall times of the *previous* date after the
    # new one began (America/St_Johns until 2010 went from 00:01 back to 23:01): those
    # instants belong to the window that began at the first midnight, so move forward.
    while now >= end:
        first, nxt, wid = _period(window, nxt)
        start, end = end, _local_midnight(nxt, tz)
    if now < start:  # pragma: no cover - defensive: start is the first instant of `first`
        raise AssertionError(f"window {wid} [{start}, {end}) does not contain {now}")
    return WindowSpan(window, wid, start, end)
