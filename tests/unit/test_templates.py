"""Payload templates: placeholders, time arithmetic, and refusal of anything else."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from sundial.errors import ValidationError
from sundial.templates import check, render, variables

FIRE = datetime(2026, 3, 29, 23, 30, tzinfo=UTC)


def test_placeholders_and_shifts_are_rendered() -> None:
    values = variables(42, "digest", FIRE, "Europe/Berlin")
    template = {
        "key": "digest-{{ run_id }}-{{job_id}}",
        "since": "{{ scheduled_at - 7d }}",
        "until": "{{ scheduled_at + 90m }}",
        "day": "{{ date }}",
        "next_week": "{{ date + 1w }}",
        "nested": [{"at": "{{ scheduled_at }}"}, 3, None],
        "plain": "no braces",
        "number": 7,
    }
    assert render(template, values) == {
        "key": "digest-42-digest",
        "since": "2026-03-22T23:30:00+00:00",
        "until": "2026-03-30T01:00:00+00:00",
        "day": "2026-03-30",  # 01:30 in Berlin, after the spring change
        "next_week": "2026-04-06",
        "nested": [{"at": "2026-03-29T23:30:00+00:00"}, 3, None],
        "plain": "no braces",
        "number": 7,
    }
    assert values["date"] == date(2026, 3, 30)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ now }}", "unknown placeholder"),
        ("{{ run_id + 1d }}", "not a time"),
        ("{{ scheduled_at - 7 days }}", "malformed"),
        ("{{ __import__('os') }}", "malformed"),
        ("{{ run_id", "malformed"),
    ],
)
def test_anything_else_is_refused_when_saved(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check({"value": text})
