"""Trigger specs and their compiled schedules.

This is the only module that touches APScheduler's triggers; everything else in
Sundial asks a :class:`Schedule` for "the next fire time after t" and gets an
aware UTC datetime (or ``None``) back.

Cron semantics
--------------
* Five fields ``min hour dom mon dow`` or six with seconds first
  (``sec min hour dom mon dow``), plus the macros ``@hourly @daily @midnight
  @weekly @monthly @yearly @annually``.
* Day-of-week follows crontab: 0 and 7 are Sunday, 1 is Monday, ``1-5`` is
  Monday to Friday; ``sun``..``sat`` and ``jan``..``dec`` are accepted wherever
  a number is (``fri-sun`` works too: ``sun`` closing a range means 7).
* As in Vixie cron, when day-of-month and day-of-week are both restricted
  (neither starts with ``*``) a day matches if EITHER matches; otherwise both
  must match. The OR is computed as the earlier of two APScheduler triggers.
* The expression is evaluated on the wall clock of ``TriggerSpec.timezone``.

DST rules (a wall time is a local date and time in that zone)
-------------------------------------------------------------
1. Spring forward: a wall time that does not exist that day is skipped that
   day; there is no catch-up run. ``30 1 * * *`` in Europe/London does not
   fire on 2026-03-29, and ``0 * * * *`` fires 23 times that local day.
2. Fall back: a wall time that occurs twice fires at its first occurrence
   only -- unless the hour field covers all 24 hours (``*``, ``0-23``,
   ``*/1``), in which case the job is "every hour" and fires in both passes,
   so it keeps running on real time. ``30 1 * * *`` in London fires once on
   2026-10-25; ``0 * * * *`` fires 25 times and ``*/15 * * * *`` every 15 real
   minutes. (Vixie cron and cronie differ on this edge; this is the simplest
   rule that neither skips nor doubles a run the expression implies.)
3. Interval triggers count elapsed seconds in UTC and ignore DST entirely.
4. A naive ``run_at``/``starts_at``/``ends_at`` is read as wall time in the
   spec's zone with PEP 495's default ``fold=0``: an ambiguous time means its
   first occurrence, a non-existent one is shifted forward by the gap.

Fire times are deterministic (no jitter), so every scheduler computes the same
ones.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from numbers import Real
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

__all__ = [
    "TRIGGER_TYPES",
    "Schedule",
    "TriggerError",
    "TriggerSpec",
    "compile_trigger",
    "validate_cron",
    "validate_timezone",
]

TRIGGER_TYPES = ("cron", "interval", "date", "event")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_ONE_S = timedelta(seconds=1)
_EVENT_RE = re.compile(r"[a-z0-9_.:-]{1,128}", re.IGNORECASE)


class TriggerError(ValueError):
    """Bad trigger spec.

    ``field`` names the offending field (one of ``cron_expression``,
    ``interval_seconds``, ``run_at``, ``trigger_event``, ``timezone``,
    ``starts_at``, ``ends_at``, ``type``); ``message`` says what is wrong.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class TriggerSpec:
    """What a job's trigger says, as stored; :func:`compile_trigger` checks it.

    Only the fields belonging to ``type`` are read; the others are ignored.
    """

    type: str
    cron_expression: str | None = None
    interval_seconds: float | None = None
    run_at: datetime | None = None
    trigger_event: str | None = None
    timezone: str = "UTC"
    starts_at: datetime | None = None
    ends_at: datetime | None = None


# --------------------------------------------------------------------------
# Cron parsing. We parse crontab syntax ourselves, because APScheduler 3's
# from_crontab passes day-of-week numbers through unchanged (its 0 is Monday,
# crontab's is Sunday) and its error messages don't say which field is wrong.
# The parsed sets are handed to CronTrigger as explicit lists / weekday names.

_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTH_NAMES = {n: i for i, n in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_DAY_NAMES = {n: i for i, n in enumerate("sun mon tue wed thu fri sat".split())}
_APS_WEEKDAY = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # by crontab number
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # Feb 29 exists
_ITEM_RE = re.compile(r"(\*|\w+(?:-\w+)?)(?:/(\d+))?", re.ASCII)
# (label, lowest, highest, names)
_SECOND = ("second", 0, 59, None)
_FIELDS = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day-of-month", 1, 31, None),
    ("month", 1, 12, _MONTH_NAMES),
    ("day-of-week", 0, 7, _DAY_NAMES),
)


def _cron_error(message: str) -> TriggerError:
    return TriggerError("cron_expression", message)


def _parse_value(token: str, label: str, names: dict[str, int] | None) -> int:
    if token.isascii() and token.isdigit():
        return int(token)
    if names is not None and token.lower() in names:
        return names[token.lower()]
    raise _cron_error(f"{label} field: {token!r} is not a number or a known name")


def _parse_field(text: str, label: str, lo: int, hi: int, names: dict[str, int] | None) -> set[int]:
    # Day-of-week's 7 is only an alias for Sunday: '*' and 'a/n' stop at 6 so
    # they don't reach it and double Sunday up.
    top = 6 if label == "day-of-week" else hi
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM_RE.fullmatch(item)
        if not match:
            raise _cron_error(f"{label} field: cannot parse {item!r}")
        base, step_text = match.groups()
        step = int(step_text) if step_text else 1
        if step < 1:
            raise _cron_error(f"{label} field: step must be at least 1 in {item!r}")
        if base == "*":
            first, last = lo, top
        elif "-" in base:
            first_text, last_text = base.split("-")
            first = _parse_value(first_text, label, names)
            last = _parse_value(last_text, label, names)
            if label == "day-of-week" and last == 0 and first > 0:
                last = 7  # 'fri-sun': Sunday closing a range is the 7 alias
            if first > last:
                raise _cron_error(f"{label} field: range {item!r} runs backwards")
        else:
            first = _parse_value(base, label, names)
            last = top if step_text else first  # 'a/n' means a..max every n
            last = max(last, first)  # so '7/2' stays 7 (Sunday), not an empty range
        for value in (first, last):
            if not lo <= value <= hi:
                raise _cron_error(f"{label} field: {value} is out of range {lo}-{hi} in {item!r}")
        values.update(range(first, last + 1, step))
    if label == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return values


def _render(values: set[int], lo: int, hi: int) -> str:
    return "*" if values == set(range(lo, hi + 1)) else ",".join(map(str, sorted(values)))


@dataclass(frozen=True)
class _CronPlan:
    """A parsed expression: one CronTrigger, or two whose earlier result wins (dom OR dow)."""

    triggers: tuple[CronTrigger, ...]
    every_hour: bool  # hour field covers all 24 hours: see DST rule 2


@lru_cache(maxsize=1024)
def _compile_cron(expression: str) -> _CronPlan:
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in _MACROS:
            raise _cron_error(f"unknown macro {text!r}; expected one of {', '.join(_MACROS)}")
        text = _MACROS[text.lower()]
    parts = text.split()
    if len(parts) == 5:
        parts.insert(0, "0")
    elif len(parts) != 6:
        raise _cron_error(
            f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 with "
            f"seconds first, got {len(parts)} in {expression!r}"
        )
    seconds, minutes, hours, days, months, weekdays = (
        _parse_field(part, *spec) for part, spec in zip(parts, (_SECOND, *_FIELDS))
    )
    dom_restricted = not parts[3].startswith("*")
    dow_restricted = not parts[5].startswith("*")
    dom_possible = any(d <= _DAYS_IN_MONTH[m] for d in days for m in months)
    if not dom_possible and not (dom_restricted and dow_restricted):
        # Would never fire; CronTrigger would also scan years up to 9999 to find that out.
        raise _cron_error(f"day-of-month {parts[3]!r} never occurs in month {parts[4]!r}")

    common = dict(
        second=_render(seconds, 0, 59),
        minute=_render(minutes, 0, 59),
        hour=_render(hours, 0, 23),
        month=_render(months, 1, 12),
    )
    day = _render(days, 1, 31)
    weekday = "*" if len(weekdays) == 7 else ",".join(_APS_WEEKDAY[d] for d in sorted(weekdays))

    # The triggers run in UTC on naive wall-clock values, i.e. on a calendar
    # without DST. APScheduler 3.11.3 mishandles real zones at a fall-back:
    # for '0 * * * *' in Europe/London, get_next_fire_time(None, 01:00:00.000001Z
    # on 2026-10-25) returns 01:00Z again, so a caller that steps forward loops
    # forever, and '*/15' jumps back an hour; '30 1 * * *' fires twice. At a
    # spring-forward it returns non-existent wall times. The DST rules are
    # applied by _CronSchedule instead.
    def trigger(dom: str, dow: str) -> CronTrigger:
        return CronTrigger(day=dom, day_of_week=dow, timezone=UTC, **common)

    if dom_restricted and dow_restricted:
        triggers = (trigger("*", weekday),) + ((trigger(day, "*"),) if dom_possible else ())
    else:
        triggers = (trigger(day, weekday),)
    return _CronPlan(triggers, every_hour=len(hours) == 24)


def validate_cron(expression: str) -> None:
    """Raise ``TriggerError('cron_expression', ...)`` unless ``expression`` is valid cron."""
    if not isinstance(expression, str) or not expression.strip():
        raise _cron_error("must be a non-empty string")
    _compile_cron(expression)


def validate_timezone(name: str) -> ZoneInfo:
    """Return the ``ZoneInfo`` for an IANA name; raise ``TriggerError('timezone', ...)``."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise TriggerError("timezone", f"{name!r} is not a time zone name")
    return _zone(name)


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise TriggerError("timezone", f"unknown time zone {name!r}") from e


# --------------------------------------------------------------------------
# Time helpers


def _as_utc(value: datetime) -> datetime:
    """Aware UTC; naive input is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _localize(value: object, field: str, zone: ZoneInfo) -> datetime:
    """Aware UTC; naive input is wall time in ``zone`` (PEP 495 fold=0, DST rule 4)."""
    if not isinstance(value, datetime):
        raise TriggerError(field, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def _transition(zone: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """The instant in (lo, hi] at which ``zone``'s UTC offset changes (exactly one change)."""
    # Via UTC: astimezone() to the datetime's own zone returns it unchanged,
    # which would keep a fold=1 gap time's (wrong) offset.
    before = lo.astimezone(UTC).astimezone(zone).utcoffset()
    lo_s, hi_s = math.floor(lo.timestamp()), math.ceil(hi.timestamp())
    while hi_s - lo_s > 1:  # tzdata transitions fall on whole seconds
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == before:
            lo_s = mid
        else:
            hi_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


# --------------------------------------------------------------------------
# Schedules


class Schedule:
    """A compiled trigger: answers "when does it fire next?" in aware UTC."""

    def __init__(self, spec: TriggerSpec, starts_at: datetime | None, ends_at: datetime | None) -> None:
        self.spec = spec
        self._starts_at = starts_at
        self._ends_at = ends_at

    def next_fire_time(self, after: datetime, *, inclusive: bool = False) -> datetime | None:
        """First fire time > ``after`` (>= when ``inclusive``), as aware UTC.

        Naive ``after`` is taken as UTC. ``None`` when the trigger never fires
        again (date passed, ``ends_at`` passed, event trigger).
        """
        after = _as_utc(after)
        if self._starts_at is not None and after < self._starts_at:
            after, inclusive = self._starts_at, True
        try:
            result = self._next(after, inclusive)
        except OverflowError:  # beyond datetime.max: never again
            return None
        if result is None or (self._ends_at is not None and result > self._ends_at):
            return None
        return result

    def fire_times(
        self, after: datetime, until: datetime, *, inclusive: bool = False, limit: int = 1000
    ) -> list[datetime]:
        """All fire times in (after, until] ([after, until] when ``inclusive``), UTC, at most ``limit``."""
        until = _as_utc(until)
        times: list[datetime] = []
        current = self.next_fire_time(after, inclusive=inclusive)
        while current is not None and current <= until and len(times) < limit:
            times.append(current)
            current = self.next_fire_time(current)
        return times

    def _next(self, after: datetime, inclusive: bool) -> datetime | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec!r}>"


def _due(instant: datetime, after: datetime, inclusive: bool) -> bool:
    return instant > after or (inclusive and instant == after)


class _CronSchedule(Schedule):
    def __init__(
        self, spec: TriggerSpec, zone: ZoneInfo, plan: _CronPlan, starts_at: datetime | None, ends_at: datetime | None
    ) -> None:
        super().__init__(spec, starts_at, ends_at)
        self._zone = zone
        self._plan = plan

    def _next_wall(self, start: datetime) -> datetime | None:
        """First matching wall time >= ``start`` (naive), or None."""
        now = start.replace(tzinfo=UTC)
        found = [f for t in self._plan.triggers if (f := t.get_next_fire_time(None, now)) is not None]
        return min(found).replace(tzinfo=None) if found else None

    def _next(self, after: datetime, inclusive: bool) -> datetime | None:
        zone = self._zone
        local = after.astimezone(zone)
        wall = local.replace(tzinfo=None, fold=0)
        repeat = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if self._plan.every_hour and local.fold == 0 and repeat != after:
            # `after` is in the first pass of a repeated hour. Wall order is not
            # time order here: later walls of this pass come before the earlier
            # walls of the second pass, so finish this pass first.
            change = _transition(zone, after, repeat)
            match = self._next_wall(wall)
            while match is not None:
                instant = match.replace(tzinfo=zone).astimezone(UTC)
                if instant >= change:
                    break
                if _due(instant, after, inclusive):
                    return instant
                match = self._next_wall(match + _ONE_S)
            wall = _wall(change, zone)
        while True:
            match = self._next_wall(wall)
            if match is None:
                return None
            first = match.replace(tzinfo=zone)
            instant = first.astimezone(UTC)
            if _wall(instant, zone) != match:
                # Skipped by spring forward (DST rule 1): resume where the gap ends.
                wall = _wall(_transition(zone, match.replace(tzinfo=zone, fold=1), instant), zone)
                continue
            if _due(instant, after, inclusive):
                return instant
            second = match.replace(tzinfo=zone, fold=1)
            if self._plan.every_hour and second.utcoffset() != first.utcoffset():
                instant = second.astimezone(UTC)  # repeated hour, second pass (rule 2)
                if _due(instant, after, inclusive):
                    return instant
            wall = match + _ONE_S


class _IntervalSchedule(Schedule):
    # Exact integer microseconds rather than IntervalTrigger: it computes with
    # float timestamps and ceil(), and for an `after` that is exactly a fire
    # time it often returns the NEXT one (about 40% of random µs-resolution
    # cases in 3.11.3), which breaks the inclusive contract.
    def __init__(
        self, spec: TriggerSpec, anchor: datetime, step_us: int, starts_at: datetime | None, ends_at: datetime | None
    ) -> None:
        super().__init__(spec, starts_at, ends_at)
        self._anchor_us = (anchor - _EPOCH) // _ONE_US
        self._step_us = step_us

    def _next(self, after: datetime, inclusive: bool) -> datetime | None:
        elapsed = (after - _EPOCH) // _ONE_US - self._anchor_us
        if elapsed < 0:
            k = 0
        else:
            k, rest = divmod(elapsed, self._step_us)
            if rest or not inclusive:
                k += 1
        return _EPOCH + timedelta(microseconds=self._anchor_us + k * self._step_us)


class _DateSchedule(Schedule):
    def __init__(
        self, spec: TriggerSpec, run_at: datetime, starts_at: datetime | None, ends_at: datetime | None
    ) -> None:
        super().__init__(spec, starts_at, ends_at)
        self._run_at = run_at

    def _next(self, after: datetime, inclusive: bool) -> datetime | None:
        return self._run_at if _due(self._run_at, after, inclusive) else None


class _EventSchedule(Schedule):
    def _next(self, after: datetime, inclusive: bool) -> datetime | None:
        return None  # fired by events, never by the clock


def compile_trigger(spec: TriggerSpec, *, anchor: datetime | None = None) -> Schedule:
    """Validate ``spec`` and compile it into a reusable :class:`Schedule`.

    ``anchor`` is an interval's start when ``spec.starts_at`` is None
    (normally the job's creation time; naive means UTC). Raises
    :class:`TriggerError` naming the offending field.
    """
    if spec.type not in TRIGGER_TYPES:
        raise TriggerError("type", f"unknown trigger type {spec.type!r}; expected one of {', '.join(TRIGGER_TYPES)}")
    zone = validate_timezone(spec.timezone)
    starts_at = None if spec.starts_at is None else _localize(spec.starts_at, "starts_at", zone)
    ends_at = None if spec.ends_at is None else _localize(spec.ends_at, "ends_at", zone)
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise TriggerError("ends_at", "must be after starts_at")

    if spec.type == "cron":
        validate_cron(spec.cron_expression)  # type: ignore[arg-type]
        plan = _compile_cron(spec.cron_expression)  # type: ignore[arg-type]
        return _CronSchedule(spec, zone, plan, starts_at, ends_at)

    if spec.type == "interval":
        seconds = spec.interval_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, Real):
            raise TriggerError("interval_seconds", "must be a number of seconds")
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds <= 0:
            raise TriggerError("interval_seconds", f"must be a finite number > 0, got {seconds}")
        step_us = round(seconds * 1_000_000)
        if step_us < 1:
            raise TriggerError("interval_seconds", "must be at least one microsecond")
        try:
            timedelta(microseconds=step_us)
        except OverflowError:
            raise TriggerError("interval_seconds", f"{seconds} seconds is too long") from None
        if starts_at is None and anchor is None:
            raise TriggerError("starts_at", "an interval trigger needs starts_at or an anchor")
        start = starts_at if starts_at is not None else _as_utc(anchor)  # type: ignore[arg-type]
        return _IntervalSchedule(spec, start, step_us, starts_at, ends_at)

    if spec.type == "date":
        if spec.run_at is None:
            raise TriggerError("run_at", "a date trigger needs run_at")
        return _DateSchedule(spec, _localize(spec.run_at, "run_at", zone), starts_at, ends_at)

    event = spec.trigger_event
    if not isinstance(event, str) or not _EVENT_RE.fullmatch(event):
        raise TriggerError("trigger_event", f"must be 1-128 characters of letters, digits and _ . : - (got {event!r})")
    return _EventSchedule(spec, starts_at, ends_at)
