"""Tests for sundial.triggers: cron parsing, DST rules, intervals, dates, events, errors."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sundial.triggers import (
    TRIGGER_TYPES,
    Schedule,
    TriggerError,
    TriggerSpec,
    compile_trigger,
    validate_cron,
    validate_timezone,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def cron(expression: str, tz: str = "UTC", **kwargs: object) -> Schedule:
    return compile_trigger(TriggerSpec("cron", cron_expression=expression, timezone=tz, **kwargs))


def local_day(tz: str, year: int, month: int, day: int) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day, in UTC."""
    zone = ZoneInfo(tz)
    start = datetime(year, month, day, tzinfo=zone).astimezone(UTC)
    end = (datetime(year, month, day, tzinfo=zone) + timedelta(days=1)).astimezone(UTC)
    return start, end


def fires_in_local_day(schedule: Schedule, tz: str, year: int, month: int, day: int) -> list[datetime]:
    start, end = local_day(tz, year, month, day)
    return schedule.fire_times(start, end - timedelta(microseconds=1), inclusive=True)


# ---------------------------------------------------------------- cron syntax


@pytest.mark.parametrize("dow", ["0", "7", "sun", "SUN"])
def test_sunday_is_0_and_7_and_sun(dow: str) -> None:
    times = cron(f"0 9 * * {dow}").fire_times(utc(2026, 1, 1), utc(2026, 1, 31))
    # January 2026 Sundays: 4, 11, 18, 25.
    assert times == [utc(2026, 1, d, 9) for d in (4, 11, 18, 25)]


@pytest.mark.parametrize("dow", ["1-5", "mon-fri", "1,2,3,4,5", "Mon-Fri"])
def test_weekdays_range_is_monday_to_friday(dow: str) -> None:
    times = cron(f"0 9 * * {dow}").fire_times(utc(2026, 1, 4), utc(2026, 1, 11))
    assert [t.isoweekday() for t in times] == [1, 2, 3, 4, 5]
    assert times[0] == utc(2026, 1, 5, 9)


@pytest.mark.parametrize(
    ("dow", "iso_days"),
    [("fri-sun", [5, 6, 7]), ("5-7", [5, 6, 7]), ("6,0", [6, 7]), ("*/2", [7, 2, 4, 6]), ("1/2", [1, 3, 5])],
)
def test_weekday_forms(dow: str, iso_days: list[int]) -> None:
    times = cron(f"0 0 * * {dow}").fire_times(utc(2026, 1, 3, 1), utc(2026, 1, 10, 1))  # Sat..Sat
    assert sorted(t.isoweekday() for t in times) == sorted(iso_days)


def test_month_names_lists_and_steps() -> None:
    times = cron("15 10 1 jan,JUL *").fire_times(utc(2026, 1, 1), utc(2027, 12, 31))
    assert times == [utc(2026, 1, 1, 10, 15), utc(2026, 7, 1, 10, 15), utc(2027, 1, 1, 10, 15), utc(2027, 7, 1, 10, 15)]
    times = cron("*/10 8-9/1 * * *").fire_times(utc(2026, 5, 1), utc(2026, 5, 1, 12))
    assert len(times) == 12 and times[0] == utc(2026, 5, 1, 8) and times[-1] == utc(2026, 5, 1, 9, 50)
    assert cron("5/20 * * * *").fire_times(utc(2026, 5, 1), utc(2026, 5, 1, 1)) == [
        utc(2026, 5, 1, 0, 5),
        utc(2026, 5, 1, 0, 25),
        utc(2026, 5, 1, 0, 45),
    ]


def test_dom_and_dow_both_restricted_is_or() -> None:
    # The 13th OR any Friday (Vixie semantics): Feb 2026 Fridays are 6, 13, 20, 27.
    times = cron("0 0 13 * 5").fire_times(utc(2026, 2, 1), utc(2026, 3, 1))
    assert [t.day for t in times] == [6, 13, 20, 27]
    times = cron("0 0 1 * mon").fire_times(utc(2026, 5, 31), utc(2026, 6, 15))
    assert [t.day for t in times] == [1, 8, 15]  # June 1 2026 is a Monday: once, not twice
    times = cron("0 0 1,15 * sat").fire_times(utc(2026, 3, 1), utc(2026, 3, 31), inclusive=True)
    assert [t.day for t in times] == [1, 7, 14, 15, 21, 28]


def test_star_prefixed_dom_means_and() -> None:
    # A field starting with '*' is unrestricted for the OR rule, as in Vixie cron.
    times = cron("0 0 */2 * mon").fire_times(utc(2026, 6, 1), utc(2026, 7, 1), inclusive=True)
    assert all(t.isoweekday() == 1 and t.day % 2 == 1 for t in times)
    assert [t.day for t in times] == [1, 15, 29]


def test_impossible_dom_is_rejected_unless_dow_can_fire() -> None:
    with pytest.raises(TriggerError) as info:
        validate_cron("0 0 31 2 *")
    assert info.value.field == "cron_expression" and "never occurs" in info.value.message
    times = cron("0 0 31 2 fri").fire_times(utc(2026, 2, 1), utc(2026, 3, 1))
    assert [t.day for t in times] == [6, 13, 20, 27]
    assert cron("0 0 29 2 *").next_fire_time(utc(2026, 1, 1)) == utc(2028, 2, 29)


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@hourly", [utc(2026, 3, 1, 1), utc(2026, 3, 1, 2)]),
        ("@daily", [utc(2026, 3, 2), utc(2026, 3, 3)]),
        ("@midnight", [utc(2026, 3, 2), utc(2026, 3, 3)]),
        ("@weekly", [utc(2026, 3, 8), utc(2026, 3, 15)]),  # Sundays
        ("@monthly", [utc(2026, 4, 1), utc(2026, 5, 1)]),
        ("@yearly", [utc(2027, 1, 1), utc(2028, 1, 1)]),
        ("@ANNUALLY", [utc(2027, 1, 1), utc(2028, 1, 1)]),
    ],
)
def test_macros(macro: str, expected: list[datetime]) -> None:
    assert cron(macro).fire_times(utc(2026, 3, 1), utc(2030, 1, 1), limit=2) == expected


def test_six_fields_have_seconds_first() -> None:
    times = cron("*/15 * * * * *").fire_times(utc(2026, 1, 1), utc(2026, 1, 1, 0, 1))
    assert times == [utc(2026, 1, 1, 0, 0, s) for s in (15, 30, 45)] + [utc(2026, 1, 1, 0, 1)]
    assert cron("30 0 12 * * *").next_fire_time(utc(2026, 1, 1)) == utc(2026, 1, 1, 12, 0, 30)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("* * * *", "got 4"),
        ("* * * * * * *", "got 7"),
        ("60 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day-of-month"),
        ("* * 32 * *", "day-of-month"),
        ("* * * 13 *", "month"),
        ("* * * 0 *", "month"),
        ("* * * * 8", "day-of-week"),
        ("60 * * * * *", "second"),
        ("* * * foo *", "month"),
        ("* * * * funday", "day-of-week"),
        ("jan * * * *", "minute"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "backwards"),
        ("1,,2 * * * *", "minute"),
        ("? * * * *", "minute"),
        ("1-2-3 * * * *", "minute"),
        ("\u0661 * * * *", "minute"),  # Arabic-Indic digit one
        ("@reboot", "macro"),
        ("@every 5m", "macro"),
        ("0 0 30 feb *", "never occurs"),
    ],
)
def test_bad_cron_expressions_name_the_field(expression: str, words: str) -> None:
    with pytest.raises(TriggerError) as info:
        validate_cron(expression)
    assert info.value.field == "cron_expression"
    assert words in info.value.message
    with pytest.raises(TriggerError) as info:
        cron(expression)
    assert info.value.field == "cron_expression"


def test_cron_expression_missing_or_not_a_string() -> None:
    for value in (None, 5):
        with pytest.raises(TriggerError) as info:
            compile_trigger(TriggerSpec("cron", cron_expression=value))  # type: ignore[arg-type]
        assert info.value.field == "cron_expression"


# ---------------------------------------------------------------- DST: explicit UTC lists


def test_london_daily_inside_the_changed_hour() -> None:
    schedule = cron("30 1 * * *", "Europe/London")
    # Spring forward (Mar 29, 01:00 GMT -> 02:00 BST): 01:30 does not exist, skipped.
    assert schedule.fire_times(utc(2026, 3, 27), utc(2026, 3, 31)) == [
        utc(2026, 3, 27, 1, 30),
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 30, 0, 30),
    ]
    # Fall back (Oct 25, 02:00 BST -> 01:00 GMT): 01:30 happens twice, fires once (BST).
    assert schedule.fire_times(utc(2026, 10, 23), utc(2026, 10, 27)) == [
        utc(2026, 10, 23, 0, 30),
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]


def test_london_daily_outside_the_changed_hour_keeps_wall_time() -> None:
    schedule = cron("0 9 * * *", "Europe/London")
    assert schedule.fire_times(utc(2026, 3, 28), utc(2026, 3, 30)) == [utc(2026, 3, 28, 9), utc(2026, 3, 29, 8)]
    assert schedule.fire_times(utc(2026, 10, 24), utc(2026, 10, 26)) == [utc(2026, 10, 24, 8), utc(2026, 10, 25, 9)]


def test_london_hourly_fires_every_real_hour() -> None:
    schedule = cron("0 * * * *", "Europe/London")
    spring = fires_in_local_day(schedule, "Europe/London", 2026, 3, 29)
    assert spring == [utc(2026, 3, 29, h) for h in range(23)]  # 23 real hours
    autumn = fires_in_local_day(schedule, "Europe/London", 2026, 10, 25)
    assert autumn == [utc(2026, 10, 24, 23)] + [utc(2026, 10, 25, h) for h in range(24)]  # 25
    assert len(fires_in_local_day(schedule, "Europe/London", 2026, 7, 1)) == 24


def test_london_every_15_minutes_across_both_changes() -> None:
    schedule = cron("*/15 * * * *", "Europe/London")
    for start in (utc(2026, 3, 28, 22), utc(2026, 10, 24, 22)):
        times = schedule.fire_times(start, start + timedelta(hours=6))
        assert len(times) == 24
        assert all(b - a == timedelta(minutes=15) for a, b in zip(times, times[1:]))


def test_new_york() -> None:
    tz = "America/New_York"
    # Spring forward Mar 8 (02:00 EST -> 03:00 EDT): 02:30 skipped that day.
    assert cron("30 2 * * *", tz).fire_times(utc(2026, 3, 7), utc(2026, 3, 10)) == [
        utc(2026, 3, 7, 7, 30),
        utc(2026, 3, 9, 6, 30),
    ]
    # Fall back Nov 1 (02:00 EDT -> 01:00 EST): 01:30 repeats, fires once (EDT);
    # 02:30 is not repeated and fires once as usual.
    assert cron("30 1 * * *", tz).fire_times(utc(2026, 10, 31), utc(2026, 11, 3)) == [
        utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
    ]
    assert cron("30 2 * * *", tz).fire_times(utc(2026, 10, 31), utc(2026, 11, 3)) == [
        utc(2026, 10, 31, 6, 30),
        utc(2026, 11, 1, 7, 30),
        utc(2026, 11, 2, 7, 30),
    ]
    assert cron("0 9 * * *", tz).fire_times(utc(2026, 3, 7), utc(2026, 3, 9)) == [
        utc(2026, 3, 7, 14),
        utc(2026, 3, 8, 13),
    ]
    assert cron("0 9 * * *", tz).fire_times(utc(2026, 10, 31), utc(2026, 11, 2)) == [
        utc(2026, 10, 31, 13),
        utc(2026, 11, 1, 14),
    ]
    hourly = cron("0 * * * *", tz)
    assert fires_in_local_day(hourly, tz, 2026, 3, 8) == [utc(2026, 3, 8, h) for h in range(5, 24)] + [
        utc(2026, 3, 9, h) for h in range(4)
    ]
    assert fires_in_local_day(hourly, tz, 2026, 11, 1) == [utc(2026, 11, 1, h) for h in range(4, 24)] + [
        utc(2026, 11, 2, h) for h in range(5)
    ]
    quarter = cron("*/15 * * * *", tz).fire_times(utc(2026, 11, 1, 3), utc(2026, 11, 1, 9))
    assert len(quarter) == 24 and all(b - a == timedelta(minutes=15) for a, b in zip(quarter, quarter[1:]))


def test_sydney() -> None:
    tz = "Australia/Sydney"
    # Fall back Apr 5 (03:00 AEDT -> 02:00 AEST): 02:30 repeats, fires once (AEDT).
    assert cron("30 2 * * *", tz).fire_times(utc(2026, 4, 3), utc(2026, 4, 6)) == [
        utc(2026, 4, 3, 15, 30),
        utc(2026, 4, 4, 15, 30),
        utc(2026, 4, 5, 16, 30),
    ]
    # Spring forward Oct 4 (02:00 AEST -> 03:00 AEDT): 02:30 skipped that day.
    assert cron("30 2 * * *", tz).fire_times(utc(2026, 10, 2), utc(2026, 10, 5)) == [
        utc(2026, 10, 2, 16, 30),
        utc(2026, 10, 4, 15, 30),
    ]
    assert cron("0 9 * * *", tz).fire_times(utc(2026, 4, 3), utc(2026, 4, 5)) == [
        utc(2026, 4, 3, 22),
        utc(2026, 4, 4, 23),
    ]
    assert cron("0 9 * * *", tz).fire_times(utc(2026, 10, 2), utc(2026, 10, 4)) == [
        utc(2026, 10, 2, 23),
        utc(2026, 10, 3, 22),
    ]
    hourly = cron("0 * * * *", tz)
    autumn = fires_in_local_day(hourly, tz, 2026, 4, 5)
    assert autumn == [utc(2026, 4, 4, h) for h in range(13, 24)] + [utc(2026, 4, 5, h) for h in range(14)]
    spring = fires_in_local_day(hourly, tz, 2026, 10, 4)
    assert spring == [utc(2026, 10, 3, h) for h in range(14, 24)] + [utc(2026, 10, 4, h) for h in range(13)]
    assert (len(autumn), len(spring)) == (25, 23)
    for start in (utc(2026, 4, 4, 13), utc(2026, 10, 3, 13)):
        quarter = cron("*/15 * * * *", tz).fire_times(start, start + timedelta(hours=6))
        assert len(quarter) == 24 and all(b - a == timedelta(minutes=15) for a, b in zip(quarter, quarter[1:]))


def test_shanghai_has_no_dst() -> None:
    tz = "Asia/Shanghai"
    assert cron("30 2 * * *", tz).fire_times(utc(2026, 3, 6), utc(2026, 3, 10)) == [
        utc(2026, 3, d, 18, 30) for d in (6, 7, 8, 9)
    ]
    for month, day in ((3, 8), (3, 29), (4, 5), (10, 4), (10, 25), (11, 1)):
        assert len(fires_in_local_day(cron("0 * * * *", tz), tz, 2026, month, day)) == 24
        assert cron("0 9 * * *", tz).next_fire_time(utc(2026, month, day)) == utc(2026, month, day, 1)


def test_first_pass_of_repeated_hour_comes_before_second_pass() -> None:
    # London 2026-10-25: 00:00Z-01:00Z is 01:xx BST, 01:00Z-02:00Z is 01:xx GMT.
    schedule = cron("0,50 * * * *", "Europe/London")
    assert schedule.next_fire_time(utc(2026, 10, 25, 0, 10)) == utc(2026, 10, 25, 0, 50)
    assert schedule.next_fire_time(utc(2026, 10, 25, 0, 50)) == utc(2026, 10, 25, 1, 0)
    assert schedule.next_fire_time(utc(2026, 10, 25, 0, 50), inclusive=True) == utc(2026, 10, 25, 0, 50)
    assert schedule.next_fire_time(utc(2026, 10, 25, 1, 0)) == utc(2026, 10, 25, 1, 50)
    # A job pinned to hour 1 does not get the GMT pass at all.
    pinned = cron("0,50 1 * * *", "Europe/London")
    assert pinned.next_fire_time(utc(2026, 10, 25, 0, 50)) == utc(2026, 10, 26, 1, 0)
    assert pinned.next_fire_time(utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 0)


def test_every_second_across_spring_gap() -> None:
    schedule = cron("* * * * * *", "Europe/London")
    assert schedule.next_fire_time(utc(2026, 3, 29, 0, 59, 59)) == utc(2026, 3, 29, 1)
    pinned = cron("* * 1 * * *", "Europe/London")  # every second of 01:xx: none on Mar 29
    assert pinned.next_fire_time(utc(2026, 3, 28, 2)) == utc(2026, 3, 30, 0)


def test_lord_howe_half_hour_dst() -> None:
    tz = "Australia/Lord_Howe"  # shifts by 30 minutes
    assert len(fires_in_local_day(cron("0,30 * * * *", tz), tz, 2026, 4, 5)) == 49
    assert len(fires_in_local_day(cron("0,30 * * * *", tz), tz, 2026, 10, 4)) == 47
    assert len(fires_in_local_day(cron("15 1 * * *", tz), tz, 2026, 4, 5)) == 1
    assert len(fires_in_local_day(cron("15 2 * * *", tz), tz, 2026, 10, 4)) == 0


# ---------------------------------------------------------------- DST: brute-force oracle

ZONES = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Shanghai",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Europe/Dublin",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "Asia/Kolkata",
]
# Windows around transitions (and one quiet day); Sao_Paulo had DST until 2019, at midnight.
INSTANTS = [
    utc(2026, 3, 29, 1),
    utc(2026, 10, 25, 1),
    utc(2026, 3, 8, 7),
    utc(2026, 11, 1, 6),
    utc(2026, 4, 4, 16),
    utc(2026, 10, 3, 16),
    utc(2026, 4, 4, 15),
    utc(2026, 9, 5, 14),
    utc(2018, 11, 4, 3),
    utc(2019, 2, 17, 2),
    utc(2026, 6, 15, 12),
]


@st.composite
def cron_field(draw: st.DrawFn, lo: int, hi: int, names: list[str] | None = None) -> tuple[str, set[int], bool]:
    """(text, the set of values it denotes, restricted) -- computed independently of the module."""
    top = 6 if names and len(names) == 7 else hi  # day-of-week: '*' is 0-6

    def token(v: int) -> str:
        if names and draw(st.booleans()):
            return names[v % len(names)] if len(names) == 7 else names[v - 1]
        return str(v)

    kinds = ["star", "step", "value", "range", "rangestep", "list"]
    # Day and month fields lean to '*' so most windows contain fire times.
    kind = draw(st.sampled_from(kinds + ["star"] * 4 if lo == 1 or names else kinds))
    if kind == "star":
        return "*", set(range(lo, top + 1)), False
    if kind == "step":
        n = draw(st.integers(1, top - lo + 1))
        return f"*/{n}", set(range(lo, top + 1, n)), False
    if kind == "list":
        vals = draw(st.lists(st.integers(lo, hi), min_size=1, max_size=4))
        return ",".join(token(v) for v in vals), {v % 7 if top == 6 else v for v in vals}, True
    a = draw(st.integers(lo, hi))
    if kind == "value":
        return token(a), {a % 7 if top == 6 else a}, True
    b = draw(st.integers(a, hi))
    n = draw(st.integers(1, 5)) if kind == "rangestep" else 1
    text = f"{a}-{b}" + (f"/{n}" if kind == "rangestep" else "")
    return text, {v % 7 if top == 6 else v for v in range(a, b + 1, n)}, True


DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
MONTH_LENGTHS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


@st.composite
def cron_case(draw: st.DrawFn) -> tuple[str, tuple]:
    minute, hour = draw(cron_field(0, 59)), draw(cron_field(0, 23))
    dom, month, dow = draw(cron_field(1, 31)), draw(cron_field(1, 12, MONTHS)), draw(cron_field(0, 7, DAYS))
    text = " ".join(f[0] for f in (minute, hour, dom, month, dow))
    return text, (minute[1], hour[1], dom, month[1], dow)


def oracle(fields: tuple, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Every UTC minute in [start, end] whose wall time matches, with the module's DST rules."""
    minutes, hours, (_, doms, dom_r), months, (_, dows, dow_r) = fields
    out, t = [], start
    while t <= end:
        local = t.astimezone(zone)
        day_ok = (local.day in doms, (local.weekday() + 1) % 7 in dows)
        matches = (
            local.minute in minutes
            and local.hour in hours
            and local.month in months
            and (any(day_ok) if dom_r and dow_r else all(day_ok))
        )
        if matches and (local.fold == 0 or len(hours) == 24):
            out.append(t)
        t += timedelta(minutes=1)
    return out


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cron_case(), tz=st.sampled_from(ZONES), center=st.sampled_from(INSTANTS), shift=st.integers(-600, 600))
def test_cron_matches_brute_force_oracle(case: tuple[str, tuple], tz: str, center: datetime, shift: int) -> None:
    text, fields = case
    _, _, (_, doms, dom_r), months, (_, _, dow_r) = fields
    assume(any(d <= MONTH_LENGTHS[m - 1] for d in doms for m in months) or (dom_r and dow_r))
    start = center + timedelta(minutes=shift) - timedelta(hours=14)
    end = start + timedelta(hours=28)
    expected = oracle(fields, ZoneInfo(tz), start, end)
    assert cron(text, tz).fire_times(start, end, inclusive=True, limit=10_000) == expected


@st.composite
def any_cron(draw: st.DrawFn) -> str:
    text = draw(cron_case())[0]
    if draw(st.booleans()):
        text = draw(cron_field(0, 59))[0] + " " + text
    return text


@settings(max_examples=200, deadline=None, database=None)
@given(
    text=any_cron(),
    tz=st.sampled_from(ZONES),
    after=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
    inclusive=st.booleans(),
)
def test_successive_fire_times_strictly_increase(text: str, tz: str, after: datetime, inclusive: bool) -> None:
    try:
        schedule = cron(text, tz)
    except TriggerError as e:
        assert "never occurs" in e.message
        return
    current = after.replace(tzinfo=UTC)
    for _ in range(25):
        nxt = schedule.next_fire_time(current, inclusive=inclusive)
        if nxt is None:
            break
        assert nxt.tzinfo is UTC
        assert nxt > current or (inclusive and nxt == current)
        assert schedule.next_fire_time(nxt, inclusive=True) == nxt  # a fire time is a fire time
        current, inclusive = nxt, False


# ---------------------------------------------------------------- inputs and window


def test_naive_and_foreign_inputs() -> None:
    schedule = cron("0 12 * * *", "Europe/Paris")
    expected = utc(2026, 7, 1, 10)
    assert schedule.next_fire_time(datetime(2026, 7, 1, 9)) == expected  # naive = UTC
    assert schedule.next_fire_time(datetime(2026, 7, 1, 5, tzinfo=ZoneInfo("America/New_York"))) == expected
    result = schedule.next_fire_time(utc(2026, 7, 1))
    assert result == expected and result.tzinfo is UTC


def test_inclusive_and_exclusive() -> None:
    schedule = cron("0 * * * *")
    assert schedule.next_fire_time(utc(2026, 1, 1, 5)) == utc(2026, 1, 1, 6)
    assert schedule.next_fire_time(utc(2026, 1, 1, 5), inclusive=True) == utc(2026, 1, 1, 5)
    assert schedule.next_fire_time(utc(2026, 1, 1, 4, 59, 59, 999999)) == utc(2026, 1, 1, 5)
    assert schedule.fire_times(utc(2026, 1, 1, 5), utc(2026, 1, 1, 7)) == [utc(2026, 1, 1, 6), utc(2026, 1, 1, 7)]
    assert schedule.fire_times(utc(2026, 1, 1, 5), utc(2026, 1, 1, 7), inclusive=True)[0] == utc(2026, 1, 1, 5)
    assert schedule.fire_times(utc(2026, 1, 1), utc(2027, 1, 1), limit=3) == [utc(2026, 1, 1, h) for h in (1, 2, 3)]
    assert schedule.fire_times(utc(2026, 1, 1), utc(2027, 1, 1), limit=0) == []


def test_window_bounds_cron() -> None:
    # naive starts_at / ends_at are London wall times
    schedule = cron("0 0 * * *", "Europe/London", starts_at=datetime(2026, 7, 3), ends_at=datetime(2026, 7, 5))
    assert schedule.fire_times(utc(2026, 7, 1), utc(2026, 8, 1)) == [
        utc(2026, 7, 2, 23),
        utc(2026, 7, 3, 23),
        utc(2026, 7, 4, 23),
    ]  # ends_at is inclusive
    assert schedule.next_fire_time(utc(2026, 7, 5)) is None


# ---------------------------------------------------------------- interval, date, event


def interval(seconds: float, **kwargs: object) -> Schedule:
    anchor = kwargs.pop("anchor", None)
    return compile_trigger(TriggerSpec("interval", interval_seconds=seconds, **kwargs), anchor=anchor)


def test_interval_from_anchor() -> None:
    anchor = utc(2026, 1, 1, 0, 0, 7)
    schedule = interval(60, anchor=anchor)
    assert schedule.next_fire_time(utc(2025, 1, 1)) == anchor
    assert schedule.next_fire_time(anchor, inclusive=True) == anchor
    assert schedule.next_fire_time(anchor) == anchor + timedelta(seconds=60)
    assert schedule.next_fire_time(utc(2026, 1, 1, 5, 0, 0)) == utc(2026, 1, 1, 5, 0, 7)
    assert schedule.fire_times(anchor, anchor + timedelta(minutes=3)) == [
        anchor + timedelta(minutes=m) for m in (1, 2, 3)
    ]


def test_interval_starts_at_wins_and_is_exact() -> None:
    start = datetime(2026, 6, 1, 12)  # naive: wall time in the spec's zone
    schedule = interval(0.1, anchor=utc(2000, 1, 1), starts_at=start, timezone="Europe/London")
    first = utc(2026, 6, 1, 11)
    assert schedule.next_fire_time(utc(2026, 1, 1)) == first
    # Exact fire times, far from the anchor, are hit exactly (no float drift).
    k = 123_456_789
    exact = first + timedelta(microseconds=100_000 * k)
    assert schedule.next_fire_time(exact, inclusive=True) == exact
    assert schedule.next_fire_time(exact - timedelta(microseconds=1)) == exact
    assert schedule.next_fire_time(exact) == exact + timedelta(milliseconds=100)


@settings(max_examples=200, deadline=None, database=None)
@given(
    anchor_us=st.integers(0, 10**16),
    step_us=st.integers(1, 10**11),
    offset_us=st.integers(-(10**12), 10**14),
    inclusive=st.booleans(),
)
def test_interval_is_exact(anchor_us: int, step_us: int, offset_us: int, inclusive: bool) -> None:
    anchor = utc(1970, 1, 1) + timedelta(microseconds=anchor_us)
    after = anchor + timedelta(microseconds=offset_us)
    nxt = interval(step_us / 1e6, anchor=anchor).next_fire_time(after, inclusive=inclusive)
    assert nxt is not None and nxt.tzinfo is UTC
    k, rest = divmod((nxt - anchor) // timedelta(microseconds=1), step_us)
    assert rest == 0 and k >= 0  # on the grid
    assert nxt > after or (inclusive and nxt == after)
    previous = nxt - timedelta(microseconds=step_us)
    assert k == 0 or (previous < after if inclusive else previous <= after)  # and the first such


def test_interval_ignores_dst() -> None:
    schedule = interval(3600, starts_at=datetime(2026, 10, 24, 22), timezone="Europe/London")
    times = schedule.fire_times(utc(2026, 10, 24), utc(2026, 10, 25, 4))
    assert times == [utc(2026, 10, 24, 21) + timedelta(hours=h) for h in range(8)]


def test_interval_fire_times_is_capped() -> None:
    schedule = interval(1, anchor=utc(2026, 1, 1))
    times = schedule.fire_times(utc(2026, 1, 1), utc(2027, 1, 1))
    assert len(times) == 1000 and times[-1] == utc(2026, 1, 1, 0, 16, 40)


def test_date_fires_once() -> None:
    run_at = datetime(2026, 7, 1, 9, tzinfo=ZoneInfo("Asia/Tokyo"))
    schedule = compile_trigger(TriggerSpec("date", run_at=run_at))
    assert schedule.next_fire_time(utc(2026, 1, 1)) == utc(2026, 7, 1, 0)
    assert schedule.next_fire_time(utc(2026, 7, 1), inclusive=True) == utc(2026, 7, 1)
    assert schedule.next_fire_time(utc(2026, 7, 1)) is None
    assert schedule.fire_times(utc(2026, 1, 1), utc(2027, 1, 1)) == [utc(2026, 7, 1)]


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        (datetime(2026, 7, 1, 9), utc(2026, 7, 1, 8)),
        (datetime(2026, 10, 25, 1, 30), utc(2026, 10, 25, 0, 30)),  # ambiguous: first (BST)
        (datetime(2026, 3, 29, 1, 30), utc(2026, 3, 29, 1, 30)),  # missing: 02:30 BST
    ],
)
def test_date_naive_run_at_is_wall_time(wall: datetime, expected: datetime) -> None:
    schedule = compile_trigger(TriggerSpec("date", run_at=wall, timezone="Europe/London"))
    assert schedule.next_fire_time(utc(2026, 1, 1)) == expected


def test_event_never_fires_by_clock() -> None:
    schedule = compile_trigger(TriggerSpec("event", trigger_event="Order.Created:v1"))
    assert schedule.next_fire_time(utc(2026, 1, 1)) is None
    assert schedule.fire_times(utc(2026, 1, 1), utc(2030, 1, 1)) == []


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (TriggerSpec("weekly"), "type"),
        (TriggerSpec("CRON", cron_expression="* * * * *"), "type"),
        (TriggerSpec("cron", cron_expression="* * * * *", timezone="Mars/Olympus"), "timezone"),
        (TriggerSpec("cron", cron_expression="* * * * *", timezone=""), "timezone"),
        (TriggerSpec("cron", cron_expression="* * * * *", timezone=" UTC"), "timezone"),
        (TriggerSpec("cron", cron_expression="* * * * *", timezone="../../etc/passwd"), "timezone"),
        (TriggerSpec("cron", cron_expression="* * * * *", timezone=None), "timezone"),  # type: ignore[arg-type]
        (TriggerSpec("cron", cron_expression="* * * * *", starts_at="2026-01-01"), "starts_at"),  # type: ignore[arg-type]
        (TriggerSpec("cron", cron_expression="* * * * *", ends_at=1), "ends_at"),  # type: ignore[arg-type]
        (
            TriggerSpec("cron", cron_expression="* * * * *", starts_at=utc(2026, 2, 1), ends_at=utc(2026, 1, 1)),
            "ends_at",
        ),
        (
            TriggerSpec("cron", cron_expression="* * * * *", starts_at=utc(2026, 1, 1), ends_at=utc(2026, 1, 1)),
            "ends_at",
        ),
        (TriggerSpec("interval", interval_seconds=None, starts_at=utc(2026, 1, 1)), "interval_seconds"),
        (TriggerSpec("interval", interval_seconds=0, starts_at=utc(2026, 1, 1)), "interval_seconds"),
        (TriggerSpec("interval", interval_seconds=-5, starts_at=utc(2026, 1, 1)), "interval_seconds"),
        (TriggerSpec("interval", interval_seconds=math.nan, starts_at=utc(2026, 1, 1)), "interval_seconds"),
        (TriggerSpec("interval", interval_seconds=math.inf, starts_at=utc(2026, 1, 1)), "interval_seconds"),
        (TriggerSpec("interval", interval_seconds=True, starts_at=utc(2026, 1, 1)), "interval_seconds"),
        (TriggerSpec("interval", interval_seconds="5", starts_at=utc(2026, 1, 1)), "interval_seconds"),  # type: ignore[arg-type]
        (TriggerSpec("interval", interval_seconds=1e-9, starts_at=utc(2026, 1, 1)), "interval_seconds"),
        (TriggerSpec("interval", interval_seconds=1e300, starts_at=utc(2026, 1, 1)), "interval_seconds"),
        (TriggerSpec("interval", interval_seconds=5), "starts_at"),  # no anchor either
        (TriggerSpec("date"), "run_at"),
        (TriggerSpec("date", run_at="2026-01-01T00:00:00Z"), "run_at"),  # type: ignore[arg-type]
        (TriggerSpec("event"), "trigger_event"),
        (TriggerSpec("event", trigger_event=""), "trigger_event"),
        (TriggerSpec("event", trigger_event="has space"), "trigger_event"),
        (TriggerSpec("event", trigger_event="x" * 129), "trigger_event"),
        (TriggerSpec("event", trigger_event="ok\n"), "trigger_event"),
        (TriggerSpec("event", trigger_event="caf\u00e9"), "trigger_event"),
    ],
)
def test_bad_specs_name_the_field(spec: TriggerSpec, field: str) -> None:
    with pytest.raises(TriggerError) as info:
        compile_trigger(spec)
    assert info.value.field == field
    assert info.value.message and field in str(info.value)
    assert isinstance(info.value, ValueError)


def test_validate_timezone() -> None:
    assert validate_timezone("Europe/London") == ZoneInfo("Europe/London")
    assert validate_timezone("Europe/London") is validate_timezone("Europe/London")
    with pytest.raises(TriggerError) as info:
        validate_timezone("Europe/Atlantis")
    assert info.value.field == "timezone" and "Europe/Atlantis" in info.value.message


def test_trigger_types_and_valid_specs_compile() -> None:
    assert TRIGGER_TYPES == ("cron", "interval", "date", "event")
    compile_trigger(TriggerSpec("event", trigger_event="x" * 128))
    compile_trigger(TriggerSpec("interval", interval_seconds=1), anchor=datetime(2026, 1, 1))


# ---------------------------------------------------------------- determinism and speed


def test_two_compilations_agree() -> None:
    spec = TriggerSpec("cron", cron_expression="*/7 * * * *", timezone="America/New_York")
    a, b = compile_trigger(spec), compile_trigger(spec)
    span = (utc(2026, 11, 1), utc(2026, 11, 2))
    assert a.fire_times(*span) == b.fire_times(*span)


def test_every_second_across_fall_back_is_capped_and_real_time() -> None:
    schedule = cron("* * * * * *", "Europe/London")
    times = schedule.fire_times(utc(2026, 10, 25, 0, 50), utc(2026, 10, 26))
    assert len(times) == 1000
    assert all(b - a == timedelta(seconds=1) for a, b in zip(times, times[1:]))
