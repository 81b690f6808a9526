"""Calendar windows in the policy's time zone: properties over instants and IANA zones, the
calendar's edge cases (month ends, leap years, DST, skipped midnights, fractional offsets),
and the same behaviour end to end through a Governor driven by a FakeClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from llmbudget import BudgetExceeded, Governor
from llmbudget.core.windows import Window, WindowSpan, span_for
from llmbudget.testing import FakeClock

CALENDAR = [Window.DAY, Window.WEEK, Window.MONTH]

# Every instant from 1900 to 2100 (aware, UTC), in every zone hypothesis offers.
instants = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(UTC)
)
zones = st.timezones()
FAST = settings(max_examples=150, deadline=None)


@st.composite
def near_local_midnight(draw: st.DrawFn) -> tuple[datetime, ZoneInfo]:
    """An instant within two hours of some local midnight (where DST rules like to act),
    with its zone: random instants alone would rarely land there."""
    tz = draw(zones)
    day = draw(
        st.dates(min_value=datetime(1900, 1, 2).date(), max_value=datetime(2099, 12, 30).date())
    )
    wall = datetime(day.year, day.month, day.day, tzinfo=tz)
    shift = timedelta(seconds=draw(st.integers(-7200, 7200)))
    return wall.astimezone(UTC) + shift, tz


instants_in_zones = st.one_of(st.tuples(instants, zones), near_local_midnight())


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def local(span_edge: datetime | None, tz: ZoneInfo) -> datetime:
    assert span_edge is not None
    return span_edge.astimezone(tz)


def bounds(span: WindowSpan) -> tuple[datetime, datetime]:
    assert span.start is not None
    assert span.end is not None
    return span.start, span.end


# -- properties -------------------------------------------------------------------------------


@FAST
@given(at=instants_in_zones, window=st.sampled_from(CALENDAR))
def test_calendar_window_contains_now_and_tiles(at: tuple[datetime, ZoneInfo], window: Window):
    """day/week/month in every zone: the span holds `now`, the next window starts exactly where
    this one ends and the previous one ends exactly where it starts (no gap, no overlap), and
    neighbours have different ids."""
    now, tz = at
    span = span_for(window, now, tz)
    start, end = bounds(span)
    assert start <= now < end
    assert span.resets_at == end
    nxt = span_for(window, end, tz)
    prev = span_for(window, start - timedelta(microseconds=1), tz)
    assert nxt.start == end
    assert prev.end == start
    assert len({prev.id, span.id, nxt.id}) == 3
    # every instant of the window maps to the same window (its first and last instant)
    assert span_for(window, start, tz) == span
    assert span_for(window, end - timedelta(microseconds=1), tz) == span


@FAST
@given(at=instants_in_zones, window=st.sampled_from(CALENDAR))
def test_calendar_window_id_names_its_local_period(at: tuple[datetime, ZoneInfo], window: Window):
    """The id is the local date / ISO week / month the window starts in; weeks start on a
    Monday and months on the 1st (local), and the window is the period's length give or take
    the zone's offset changes inside it."""
    now, tz = at
    span = span_for(window, now, tz)
    start, end = bounds(span)
    first = start.astimezone(tz).date()
    if window is Window.DAY:
        assert span.id == f"day:{first.isoformat()}"
        nominal = timedelta(days=1)
    elif window is Window.WEEK:
        assert first.weekday() == 0
        iso = first.isocalendar()
        assert span.id == f"week:{iso.year}-W{iso.week:02d}"
        nominal = timedelta(days=7)
    else:
        assert first.day == 1
        assert span.id == f"month:{first.year}-{first.month:02d}"
        nominal = timedelta(days=(end.astimezone(tz).date() - first).days)
    # offsets changed inside the window by at most a day (Pacific/Apia skipped 2011-12-30)
    assert abs((end - start) - nominal) <= timedelta(days=1)


def _whole_hour_apart(*offsets: timedelta | None) -> bool:
    assert all(o is not None for o in offsets)
    return len({int(o.total_seconds()) % 3600 for o in offsets if o is not None}) == 1


@FAST
@given(at=instants_in_zones)
def test_hour_windows_tile_where_offsets_shift_by_whole_hours(at: tuple[datetime, ZoneInfo]):
    """Hour windows are one hour long, start on the local hour and tile, in every zone whose
    offset changes (around this hour) are whole hours. The exception, a shift that is not a
    whole hour (Australia/Lord_Howe's 30-minute DST, or an old LMT -> standard-time change),
    is pinned down by test_lord_howe_half_hour_shift_overlaps_hour_windows."""
    now, tz = at
    span = span_for(Window.HOUR, now, tz)
    start, end = bounds(span)
    assert start <= now < end
    assert end - start == timedelta(hours=1)
    nxt = span_for(Window.HOUR, end, tz)
    assume(
        _whole_hour_apart(
            start.astimezone(tz).utcoffset(),
            now.astimezone(tz).utcoffset(),
            end.astimezone(tz).utcoffset(),
        )
    )
    wall = start.astimezone(tz)
    assert (wall.minute, wall.second) == (0, 0)
    assert nxt.start == end
    assert nxt.id != span.id
    assert span_for(Window.HOUR, start, tz) == span


@settings(max_examples=100, deadline=None)
@given(now=instants, tz=zones)
def test_run_window_never_resets(now: datetime, tz: ZoneInfo):
    span = span_for(Window.RUN, now, tz)
    assert (span.id, span.start, span.end, span.resets_at) == ("run", None, None, None)


@pytest.mark.parametrize("window", list(Window))
def test_naive_datetime_is_rejected(window: Window):
    with pytest.raises(ValueError, match="naive"):
        span_for(window, datetime(2026, 1, 1, 12, 0), ZoneInfo("UTC"))


# -- month ends, leap years, year change ------------------------------------------------------

UTC_ZONE = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("last_instant", "day_id", "next_day_id", "month_id", "next_month_id"),
    [
        (
            "2026-01-31T23:59:59.999999Z",
            "day:2026-01-31",
            "day:2026-02-01",
            "month:2026-01",
            "month:2026-02",
        ),
        (
            "2026-02-28T23:59:59Z",
            "day:2026-02-28",
            "day:2026-03-01",
            "month:2026-02",
            "month:2026-03",
        ),
        (
            "2024-02-28T23:59:59Z",
            "day:2024-02-28",
            "day:2024-02-29",
            "month:2024-02",
            "month:2024-02",
        ),
        (
            "2024-02-29T23:59:59Z",
            "day:2024-02-29",
            "day:2024-03-01",
            "month:2024-02",
            "month:2024-03",
        ),
        (
            "2000-02-29T23:59:59Z",
            "day:2000-02-29",
            "day:2000-03-01",
            "month:2000-02",
            "month:2000-03",
        ),
        (
            "2100-02-28T23:59:59Z",
            "day:2100-02-28",
            "day:2100-03-01",
            "month:2100-02",
            "month:2100-03",
        ),
        (
            "2025-12-31T23:59:59Z",
            "day:2025-12-31",
            "day:2026-01-01",
            "month:2025-12",
            "month:2026-01",
        ),
    ],
)
def test_rollover_across_month_ends(
    last_instant: str, day_id: str, next_day_id: str, month_id: str, next_month_id: str
):
    """Jan 31 -> Feb 1, Feb 28 -> Mar 1 (2026, 2100: not leap), Feb 28 -> 29 -> Mar 1 (2024,
    2000: leap), Dec 31 -> Jan 1 with the year changing."""
    now = utc(last_instant)
    after = now.replace(microsecond=0) + timedelta(seconds=1)
    assert span_for(Window.DAY, now, UTC_ZONE).id == day_id
    assert span_for(Window.DAY, after, UTC_ZONE).id == next_day_id
    assert span_for(Window.DAY, now, UTC_ZONE).end == after
    assert span_for(Window.MONTH, now, UTC_ZONE).id == month_id
    assert span_for(Window.MONTH, after, UTC_ZONE).id == next_month_id


def test_february_lengths():
    feb_2024 = span_for(Window.MONTH, utc("2024-02-10T00:00:00Z"), UTC_ZONE)
    feb_2026 = span_for(Window.MONTH, utc("2026-02-10T00:00:00Z"), UTC_ZONE)
    assert feb_2024.end - feb_2024.start == timedelta(days=29)  # type: ignore[operator]
    assert feb_2026.end - feb_2026.start == timedelta(days=28)  # type: ignore[operator]


def test_iso_week_across_the_year_change():
    """2025-12-31 (a Wednesday) is in ISO week 2026-W01, which starts Monday 2025-12-29."""
    span = span_for(Window.WEEK, utc("2025-12-31T12:00:00Z"), UTC_ZONE)
    assert span.id == "week:2026-W01"
    assert bounds(span) == (utc("2025-12-29T00:00:00Z"), utc("2026-01-05T00:00:00Z"))


def test_month_follows_the_policy_zone_not_utc():
    """At 04:59Z on Feb 1 it is still January in New York (EST, UTC-5)."""
    ny = ZoneInfo("America/New_York")
    assert span_for(Window.MONTH, utc("2026-02-01T04:59:59Z"), ny).id == "month:2026-01"
    assert span_for(Window.MONTH, utc("2026-02-01T05:00:00Z"), ny).id == "month:2026-02"
    assert span_for(Window.MONTH, utc("2026-02-01T04:59:59Z"), ny).end == utc(
        "2026-02-01T05:00:00Z"
    )


# -- DST --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "noon_utc", "hours"),
    [
        ("America/New_York", "2026-03-08T16:00:00Z", 23),  # spring forward
        ("America/New_York", "2026-11-01T17:00:00Z", 25),  # fall back
        ("Europe/Paris", "2026-03-29T10:00:00Z", 23),
        ("Europe/Paris", "2026-10-25T11:00:00Z", 25),
    ],
)
def test_dst_days_are_23_and_25_hours(zone: str, noon_utc: str, hours: int):
    tz = ZoneInfo(zone)
    span = span_for(Window.DAY, utc(noon_utc), tz)
    start, end = bounds(span)
    assert end - start == timedelta(hours=hours)
    assert (local(start, tz).hour, local(end, tz).hour) == (0, 0)


def test_repeated_fall_back_hour_is_two_distinct_hour_windows():
    """New York, 2026-11-01: 01:00-02:00 happens twice (EDT, then EST)."""
    ny = ZoneInfo("America/New_York")
    first = span_for(Window.HOUR, utc("2026-11-01T05:30:00Z"), ny)  # 01:30 EDT
    second = span_for(Window.HOUR, utc("2026-11-01T06:30:00Z"), ny)  # 01:30 EST
    assert local(first.start, ny).hour == local(second.start, ny).hour == 1
    assert first.id != second.id
    assert first.end == second.start == utc("2026-11-01T06:00:00Z")
    assert (first.id, second.id) == ("hour:2026-11-01T05:00Z", "hour:2026-11-01T06:00Z")


def test_skipped_spring_hour_has_no_window():
    """New York, 2026-03-08: 02:00-03:00 does not exist; 01:xx EST is followed by 03:00 EDT."""
    ny = ZoneInfo("America/New_York")
    before = span_for(Window.HOUR, utc("2026-03-08T06:30:00Z"), ny)
    after = span_for(Window.HOUR, before.end, ny)  # type: ignore[arg-type]
    assert local(before.start, ny).hour == 1
    assert local(after.start, ny).hour == 3
    assert after.start == before.end


def test_lord_howe_half_hour_shift_overlaps_hour_windows():
    """The documented exception: Lord Howe Island shifts by 30 minutes (+11:00 <-> +10:30).
    Hour windows stay one local hour long, so around each shift two windows overlap by 30
    minutes instead of tiling. Day/week/month windows are unaffected."""
    tz = ZoneInfo("Australia/Lord_Howe")
    # 2026-04-05 02:00 LHDT (+11) -> 01:30 LHST (+10:30) at 15:00Z
    a = span_for(Window.HOUR, utc("2026-04-04T14:45:00Z"), tz)  # 01:45 +11
    b = span_for(Window.HOUR, utc("2026-04-04T15:10:00Z"), tz)  # 01:40 +10:30 (repeated)
    assert bounds(a) == (utc("2026-04-04T14:00:00Z"), utc("2026-04-04T15:00:00Z"))
    assert bounds(b) == (utc("2026-04-04T14:30:00Z"), utc("2026-04-04T15:30:00Z"))
    assert b.start < a.end  # overlap of 30 minutes
    # 2026-10-04 02:00 LHST (+10:30) -> 02:30 LHDT (+11) at 15:30Z
    c = span_for(Window.HOUR, utc("2026-10-03T15:20:00Z"), tz)  # 01:50 +10:30
    d = span_for(Window.HOUR, utc("2026-10-03T15:40:00Z"), tz)  # 02:40 +11
    assert bounds(c) == (utc("2026-10-03T14:30:00Z"), utc("2026-10-03T15:30:00Z"))
    assert bounds(d) == (utc("2026-10-03T15:00:00Z"), utc("2026-10-03T16:00:00Z"))
    assert d.start < c.end
    day = span_for(Window.DAY, utc("2026-04-04T15:10:00Z"), tz)
    assert span_for(Window.DAY, day.end, tz).start == day.end  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("America/Santiago", "2026-09-06"),  # 00:00 -04 -> 01:00 -03
        ("America/Havana", "2026-03-08"),  # 00:00 CST -> 01:00 CDT
        ("Asia/Beirut", "2026-03-29"),  # 00:00 EET -> 01:00 EEST
    ],
)
def test_skipped_midnight_starts_the_day_at_the_first_real_instant(zone: str, day: str):
    tz = ZoneInfo(zone)
    date_ = datetime.fromisoformat(day).date()
    noon = datetime(date_.year, date_.month, date_.day, 12, tzinfo=tz)
    span = span_for(Window.DAY, noon, tz)
    start, end = bounds(span)
    assert span.id == f"day:{day}"
    first_wall = local(start, tz)
    assert (first_wall.date(), first_wall.hour, first_wall.minute) == (date_, 1, 0)
    last_before = local(start - timedelta(seconds=1), tz)
    assert (last_before.date(), last_before.hour) == (date_ - timedelta(days=1), 23)
    assert end - start == timedelta(hours=23)
    assert span_for(Window.DAY, start - timedelta(seconds=1), tz).end == start


def test_gap_straddling_midnight_starts_the_day_at_the_transition():
    """Toronto, 1919-03-31: clocks jumped from 23:30 EST to 00:30 EDT (at 04:30Z); the day
    starts at 00:30, its first real instant (regression: it started at 01:00)."""
    tz = ZoneInfo("America/Toronto")
    span = span_for(Window.DAY, utc("1919-03-31T04:45:00Z"), tz)
    assert span.id == "day:1919-03-31"
    assert span.start == utc("1919-03-31T04:30:00Z")
    assert span_for(Window.DAY, utc("1919-03-31T04:29:59Z"), tz).end == span.start


def test_fall_back_across_midnight_counts_in_the_new_day():
    """St. John's, 2009-11-01: at 00:01 NDT clocks went back to 23:01 NST of Oct 31. The day
    Nov 1 began at the first midnight; the repeated 23:01-00:00 belongs to it (regression:
    span_for raised AssertionError for those instants)."""
    tz = ZoneInfo("America/St_Johns")
    repeated = utc("2009-11-01T03:01:00Z")
    assert local(repeated, tz).date().isoformat() == "2009-10-31"
    span = span_for(Window.DAY, repeated, tz)
    assert span.id == "day:2009-11-01"
    assert span.start == utc("2009-11-01T02:30:00Z")  # 00:00 NDT (-02:30)
    assert span_for(Window.MONTH, repeated, tz).id == "month:2009-11"
    assert span_for(Window.DAY, span.start - timedelta(seconds=1), tz).end == span.start


# -- fractional offsets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "offset"),
    [
        ("Asia/Kolkata", timedelta(hours=5, minutes=30)),
        ("Asia/Kathmandu", timedelta(hours=5, minutes=45)),
    ],
)
def test_fractional_offsets(zone: str, offset: timedelta):
    tz = ZoneInfo(zone)
    now = datetime(2026, 5, 10, 10, 20, tzinfo=tz)
    hour = span_for(Window.HOUR, now, tz)
    assert hour.start == datetime(2026, 5, 10, 10, 0, tzinfo=UTC) - offset
    assert hour.end == datetime(2026, 5, 10, 11, 0, tzinfo=UTC) - offset
    assert hour.id == "hour:" + hour.start.strftime("%Y-%m-%dT%H:%MZ")  # type: ignore[union-attr]
    day = span_for(Window.DAY, now, tz)
    assert day.id == "day:2026-05-10"
    assert day.start == datetime(2026, 5, 10, tzinfo=UTC) - offset
    assert span_for(Window.HOUR, hour.end, tz).start == hour.end  # type: ignore[arg-type]


# -- end to end through the Governor ----------------------------------------------------------


def governor(window: str, timezone: str, clock: FakeClock) -> Governor:
    policy = {
        "timezone": timezone,
        "budgets": [{"name": f"b-{window}", "window": window, "limit": 100}],
    }
    return Governor(policy, store="memory://", clock=clock, log_events=False)


def test_day_budget_resets_at_local_midnight_of_the_policy_zone():
    # 2026-01-15 23:30 in Paris (UTC+1) is 22:30Z
    clock = FakeClock("2026-01-15T22:30:00Z")
    with governor("day", "Europe/Paris", clock) as gov:
        gov.record(prompt_tokens=60, completion_tokens=40)
        with pytest.raises(BudgetExceeded) as exc:
            gov.reserve(prompt_tokens=1, max_completion_tokens=0)
        assert exc.value.resets_at == utc("2026-01-15T23:00:00Z")
        assert exc.value.window == "day:2026-01-15"
        clock.set("2026-01-15T22:59:59Z")  # 23:59:59 Paris: still the same day
        with pytest.raises(BudgetExceeded):
            gov.reserve(prompt_tokens=1, max_completion_tokens=0)
        clock.set("2026-01-15T23:00:00Z")  # local midnight: a new window (UTC is still 15th)
        with gov.reserve(prompt_tokens=1, max_completion_tokens=0) as r:
            r.commit(prompt_tokens=1, completion_tokens=0)
        assert {s.window: s.used for s in gov.status()} == {"day:2026-01-16": 1}


def test_month_budget_resets_at_month_end_in_the_policy_zone():
    # 2026-01-31 23:00 in New York (UTC-5) is 2026-02-01T04:00Z: still January there
    clock = FakeClock("2026-02-01T04:00:00Z")
    with governor("month", "America/New_York", clock) as gov:
        gov.record(prompt_tokens=100, completion_tokens=0)
        with pytest.raises(BudgetExceeded) as exc:
            gov.reserve(prompt_tokens=1, max_completion_tokens=0)
        assert exc.value.window == "month:2026-01"
        assert exc.value.resets_at == utc("2026-02-01T05:00:00Z")
        clock.advance(hours=1)
        with gov.reserve(prompt_tokens=100, max_completion_tokens=0) as r:
            r.commit(prompt_tokens=100, completion_tokens=0)
        with pytest.raises(BudgetExceeded) as exc:
            gov.reserve(prompt_tokens=1, max_completion_tokens=0)
        assert exc.value.window == "month:2026-02"
        assert exc.value.resets_at == utc("2026-03-01T05:00:00Z")


def test_run_budget_never_resets():
    clock = FakeClock("2026-01-31T23:59:00Z")
    with governor("run", "Europe/Paris", clock) as gov:
        gov.record(prompt_tokens=100, completion_tokens=0)
        for step in (timedelta(minutes=2), timedelta(days=40), timedelta(days=400)):
            clock.advance(step.total_seconds())
            with pytest.raises(BudgetExceeded) as exc:
                gov.reserve(prompt_tokens=1, max_completion_tokens=0)
            assert exc.value.resets_at is None
            assert exc.value.window == "run"
