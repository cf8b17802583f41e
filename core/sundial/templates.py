"""Payload templates: a job's payload, rendered for each run.

A string in a payload template may hold placeholders ``{{ name }}`` or
``{{ name +/- amount unit }}``. There is no expression language and nothing
is evaluated: a placeholder names one of a fixed set of variables, and a time
variable may be shifted by whole seconds (``s``), minutes (``m``), hours
(``h``), days (``d``) or weeks (``w``)::

    {"since": "{{ scheduled_at - 7d }}", "day": "{{ date }}", "key": "digest-{{ run_id }}"}

Variables: ``run_id``, ``job_id``, ``scheduled_at`` (ISO 8601, UTC),
``date`` (the fire time's date in the job's time zone, ``YYYY-MM-DD``).
They depend only on the run, so every attempt of a run sees the same payload.
A string that is exactly one placeholder keeps the rendered text; a
placeholder naming anything else is an error (raised when the job is saved).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .errors import ValidationError

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*(?:([+-])\s*(\d{1,6})\s*([smhdw]))?\s*\}\}")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
VARIABLES = ("run_id", "job_id", "scheduled_at", "date")


def variables(run_id: int, job_id: str, scheduled_at: datetime, timezone: str = "UTC") -> dict[str, Any]:
    """The values placeholders may name, for one run."""
    return {
        "run_id": run_id,
        "job_id": job_id,
        "scheduled_at": scheduled_at,
        "date": scheduled_at.astimezone(ZoneInfo(timezone)).date(),
    }


def render(value: Any, values: Mapping[str, Any]) -> Any:
    """``value`` (any JSON) with every placeholder in its strings replaced; ``ValueError`` for a bad one."""
    if isinstance(value, str):
        if "{{" not in value:
            return value
        rendered = PLACEHOLDER.sub(lambda m: _substitute(m, values), value)
        if "{{" in PLACEHOLDER.sub("", value):
            raise ValueError(f"malformed placeholder in {value!r}: write {{{{ name }}}} or {{{{ name - 7d }}}}")
        return rendered
    if isinstance(value, list):
        return [render(item, values) for item in value]
    if isinstance(value, dict):
        return {key: render(item, values) for key, item in value.items()}
    return value


def check(template: Mapping[str, Any]) -> None:
    """Raise ``ValidationError`` (field ``payload_template``) when a placeholder cannot be rendered."""
    sample = variables(1, "job", datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC")))
    try:
        render(dict(template), sample)
    except ValueError as e:
        raise ValidationError({"payload_template": [str(e)]}) from e


def _substitute(match: re.Match[str], values: Mapping[str, Any]) -> str:
    name, sign, amount, unit = match.groups()
    if name not in values:
        raise ValueError(f"unknown placeholder {{{{ {name} }}}}; known: {', '.join(VARIABLES)}")
    value = values[name]
    if sign:
        if not isinstance(value, (datetime, date)):
            raise ValueError(f"{{{{ {name} }}}} is not a time; only times can be shifted")
        shift = timedelta(**{_UNITS[unit]: int(amount)})
        value = value + shift if sign == "+" else value - shift
    return value.isoformat() if isinstance(value, (datetime, date)) else str(value)
