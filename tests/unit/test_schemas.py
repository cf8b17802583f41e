"""Validation of job documents: each bad input is rejected naming its field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sundial.errors import ValidationError
from sundial.job import RetryPolicy
from sundial.schemas import job_document, load_job

HANDLERS = {"letters.release_future_letters"}


def doc(**changes: Any) -> dict[str, Any]:
    base = {"name": "Release future letters", "handler": "letters.release_future_letters", "type": "cron",
            "cron_expression": "*/10 * * * *"}  # fmt: skip
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_a_valid_document_becomes_a_job_with_defaults() -> None:
    job = load_job(doc(id="letters.release"), handlers=HANDLERS)
    assert job.id == "letters.release" and job.type == "cron" and job.timezone == "UTC"
    assert job.retry_policy == RetryPolicy() and job.max_instances == 1 and job.overlap == "skip"
    assert job.payload_template == {} and job.enabled and not job.paused


def test_documents_round_trip() -> None:
    job = load_job(
        doc(timezone="Asia/Shanghai", retry_policy={"max_retries": 5, "backoff": "fixed"}), handlers=HANDLERS
    )
    assert load_job(job_document(job), handlers=HANDLERS) == job


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cron_expression": "61 * * * *"}, "cron_expression"),
        ({"cron_expression": "* * *"}, "cron_expression"),
        ({"cron_expression": "every tuesday"}, "cron_expression"),
        ({"cron_expression": None}, "cron_expression"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"handler": "letters.unknown_thing"}, "handler"),
        ({"handler": "NotAName"}, "handler"),
        ({"retry_policy": {"max_retries": -1}}, "retry_policy"),
        ({"retry_policy": {"backoff": "sometimes"}}, "retry_policy"),
        ({"retry_policy": {"delay_seconds": 60, "max_delay_seconds": 10}}, "retry_policy"),
        ({"payload_template": {"blob": "x" * 70_000}}, "payload_template"),
        ({"payload_template": ["not", "an", "object"]}, "payload_template"),
        ({"type": "hourly"}, "type"),
        ({"type": "interval", "cron_expression": None, "interval_seconds": 0}, "interval_seconds"),
        ({"type": "interval", "interval_seconds": 60}, "cron_expression"),
        ({"type": "date", "cron_expression": None}, "run_at"),
        ({"type": "date", "cron_expression": None, "run_at": "2026-12-24T09:00:00"}, "run_at"),
        ({"type": "event", "cron_expression": None, "trigger_event": ""}, "trigger_event"),
        ({"id": "has spaces"}, "id"),
        ({"max_instances": 0}, "max_instances"),
        ({"overlap": "sometimes"}, "overlap"),
        ({"timeout_seconds": 3600}, "timeout_seconds"),
        ({"priority": 10}, "priority"),
        ({"queue": "no spaces allowed"}, "queue"),
        ({"name": ""}, "name"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_input_names_its_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        load_job(doc(**changes), handlers=HANDLERS)
    assert field in caught.value.errors, caught.value.errors
    assert field in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        load_job(doc(cron_expression="99 * * * *", handler="letters.nope", retry_policy={"max_retries": -3}),
                 handlers=HANDLERS)  # fmt: skip
    assert {"cron_expression", "handler", "retry_policy"} <= set(caught.value.errors)


def test_payload_limit_is_configurable() -> None:
    load_job(doc(payload_template={"note": "x" * 100}), handlers=HANDLERS)
    with pytest.raises(ValidationError, match="the limit is 50"):
        load_job(doc(payload_template={"note": "x" * 100}), handlers=HANDLERS, max_payload_bytes=50)


def test_times_without_offset_are_rejected_and_offsets_are_kept_as_instants() -> None:
    job = load_job(doc(type="date", cron_expression=None, run_at="2026-12-24T09:00:00+08:00"), handlers=HANDLERS)
    assert job.trigger.run_at == datetime(2026, 12, 24, 1, 0, tzinfo=UTC)


def test_a_non_object_document_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must be an object"):
        load_job(["not", "a", "job"], handlers=HANDLERS)  # type: ignore[arg-type]
