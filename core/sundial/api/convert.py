"""Messages to plain values and Sundial's objects back to messages; no proto type goes past this module."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from ..errors import ValidationError
from ..job import Job
from ..run import Attempt, Run, RunLog
from ..schemas import job_document
from ..store.admin import JobStats
from ..v1 import jobs_pb2, operations_pb2, runs_pb2

# times from outside must fall in this range: far enough for any schedule, near enough that no
# arithmetic on them (a fire time plus an interval) leaves Python's datetime range
T = TypeVar("T")
M = TypeVar("M", bound=Message)
_EPOCH = _EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def fields_of(message: Message, prefix: str = "") -> dict[str, Any]:
    """The fields set on ``message`` as plain values: times as aware datetimes, messages as dicts.

    A string with a NUL character or a time out of range is refused here,
    naming the field, so no later layer (PostgreSQL refuses NUL) sees it.
    """
    values: dict[str, Any] = {}
    for field, value in message.ListFields():
        name = f"{prefix}{field.name}"
        if isinstance(value, Timestamp):
            values[field.name] = to_datetime(value, name)
        elif isinstance(value, Message):
            values[field.name] = fields_of(value, f"{name}.")
        elif isinstance(value, str):
            values[field.name] = _text(value, name)
        elif hasattr(value, "__len__") and not isinstance(value, bytes):
            items = list(value)
            values[field.name] = [_text(v, name) if isinstance(v, str) else v for v in items]
        else:
            values[field.name] = value
    return values


def _text(value: str, name: str) -> str:
    if "\x00" in value:
        raise ValidationError({name: ["must not contain NUL characters"]})
    return value


def to_datetime(value: Timestamp, name: str) -> datetime:
    """An aware UTC datetime from a Timestamp between 1970 and 9000; ``ValidationError`` naming ``name``."""
    try:
        when = value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError) as e:
        raise ValidationError({name: [f"is not a valid time: {e}"]}) from e
    if not _EARLIEST <= when < _LATEST:
        raise ValidationError({name: ["must be between 1970 and 9000"]})
    return when


def timestamp(value: datetime | None) -> Timestamp | None:
    """A Timestamp, or None for no time (the field is left unset)."""
    if value is None:
        return None
    # by hand: Timestamp.FromDatetime is the larger part of building a page of jobs
    delta = value - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def json_object(text: str, name: str) -> dict[str, Any]:
    """A JSON object from ``text``; ``ValidationError`` naming ``name`` otherwise."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValidationError({name: [f"is not JSON: {e}"]}) from e
    if not isinstance(value, dict):
        raise ValidationError({name: ["must be a JSON object"]})
    return value


def job_spec_document(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A job document (as ``load_job`` takes) from the plain fields of a JobSpec."""
    document = dict(spec)
    if "payload_json" in document:
        document["payload_template"] = json_object(document.pop("payload_json"), f"{name}.payload_json")
    return document


def _make(kind: type[M], /, **values: Any) -> M:
    """A ``kind`` message of the values that are not None (times become Timestamps), built in one call."""
    return kind(**{k: timestamp(v) if isinstance(v, datetime) else v for k, v in values.items() if v is not None})


def job_state(job: Job) -> str:
    """enabled, paused, parked or disabled."""
    return "parked" if job.parked_reason else "paused" if job.paused else "enabled" if job.enabled else "disabled"


def job_message(job: Job) -> jobs_pb2.Job:
    """The message of a stored job."""
    # by hand rather than through _make: a page of jobs is the API's most frequent answer. A None
    # leaves its field unset, so only the times need converting
    spec = job_document(job)
    trigger = job.trigger
    spec.update(
        retry_policy=jobs_pb2.RetryPolicy(**spec["retry_policy"]),
        payload_json=json.dumps(spec.pop("payload_template"), separators=(",", ":")),
        run_at=timestamp(trigger.run_at),
        starts_at=timestamp(trigger.starts_at),
        ends_at=timestamp(trigger.ends_at),
    )
    return jobs_pb2.Job(
        spec=jobs_pb2.JobSpec(**spec),
        state=job_state(job),
        parked_reason=job.parked_reason,
        next_run_at=timestamp(job.next_run_at),
        last_executed_at=timestamp(job.last_executed_at),
        version=job.version,
        created_at=timestamp(job.created_at),
        updated_at=timestamp(job.updated_at),
        origin=job.origin,
        operator_fields=sorted(job.operator_fields),
    )


def run_message(run: Run) -> runs_pb2.Run:
    """The message of a run or skip record."""
    return _make(
        runs_pb2.Run,
        id=run.id, job_id=run.job_id, scheduled_at=run.scheduled_at, status=run.status.value, queue=run.queue,
        priority=run.priority, payload_json=json.dumps(run.payload, separators=(",", ":")), attempt=run.attempt,
        failures=run.failures, reason=run.reason, last_fire_at=run.last_fire_at, fire_count=run.fire_count,
        event_id=run.event_id, worker=run.worker, error=run.error, duration_seconds=run.duration_seconds,
        created_at=run.created_at, queued_at=run.queued_at, started_at=run.started_at,
        finished_at=run.finished_at, updated_at=run.updated_at,
    )  # fmt: skip


def task_metrics_message(job: Job, stats: JobStats) -> operations_pb2.TaskMetrics:
    """The spec's TaskMetrics of a job: its attempt history in numbers, and its next run."""
    return _make(
        operations_pb2.TaskMetrics,
        job_id=job.id, task_name=job.name, success_count=stats.successes, failure_count=stats.failures,
        avg_execution_seconds=stats.avg_seconds or 0.0, last_execution_seconds=stats.last_seconds or 0.0,
        last_run=stats.last_run or job.last_executed_at, next_run=job.next_run_at, last_error=stats.last_error,
    )  # fmt: skip


def attempt_message(attempt: Attempt) -> runs_pb2.Attempt:
    return _make(
        runs_pb2.Attempt,
        attempt=attempt.attempt, worker=attempt.worker, status=attempt.status, error=attempt.error,
        started_at=attempt.started_at, finished_at=attempt.finished_at, duration_seconds=attempt.duration_seconds,
    )  # fmt: skip


def log_message(line: RunLog) -> runs_pb2.LogLine:
    return _make(runs_pb2.LogLine, attempt=line.attempt, at=line.at, level=line.level, message=line.message)


# -- page tokens: opaque to clients, a JSON list inside ------------------------------------


def page_token(*key: Any) -> str:
    """The token that continues a listing after ``key`` (times as ISO strings)."""
    plain = [k.isoformat() if isinstance(k, datetime) else k for k in key]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def page(found: list[T], size: int, key: Callable[[T], tuple[Any, ...]]) -> tuple[list[T], str]:
    """The first ``size`` of ``found`` (fetched as ``size + 1``) and the token of the next page ("" if none)."""
    if len(found) <= size:
        return found, ""
    return found[:size], page_token(*key(found[size - 1]))


def read_page_token(token: str, types: tuple[type, ...]) -> tuple[Any, ...]:
    """The key inside a token ``page_token`` made; ``ValidationError`` on anything else."""
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(key, list) or len(key) != len(types):
            raise ValueError("wrong shape")
        values = tuple(datetime.fromisoformat(k) if t is datetime else k for k, t in zip(key, types))
        if not all(isinstance(v, t) and not isinstance(v, bool) for v, t in zip(values, types)):
            raise ValueError("wrong types")
        if any(isinstance(v, datetime) and v.tzinfo is None for v in values):
            raise ValueError("naive time")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError) as e:
        raise ValidationError({"page_token": ["is not a token this server gave out"]}) from e
    return values
