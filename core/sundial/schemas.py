"""marshmallow schemas for everything that enters from outside: jobs, triggers, retry policies.

A document that fails validation raises ``sundial.errors.ValidationError``
whose ``errors`` name each bad field; nothing is stored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Container, Mapping
from datetime import UTC, datetime
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    fields,
    post_load,
    validate,
    validates_schema,
)
from marshmallow import (
    ValidationError as MarshmallowError,
)

from . import errors
from .job import HANDLER_NAME, Job, RetryPolicy
from .triggers import TRIGGER_TYPES, TriggerError, TriggerSpec, compile_trigger, validate_cron, validate_timezone

JOB_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
QUEUE_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
# RabbitMQ's consumer timeout on our brokers is 30 minutes; a handler must finish well before it
MAX_TIMEOUT_SECONDS = 25 * 60
DEFAULT_MAX_PAYLOAD_BYTES = 65536

# which trigger field each trigger type needs, and which it forbids
_TRIGGER_FIELD = {"cron": "cron_expression", "interval": "interval_seconds", "date": "run_at", "event": "trigger_event"}


class AwareDateTime(fields.AwareDateTime):
    """An ISO 8601 time; without an offset it is read as UTC."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=None, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise self.make_error("invalid", input=value, obj_type="aware datetime")
            return value
        return super()._deserialize(value, attr, data, **kwargs)


class RetryPolicySchema(Schema):
    """``{max_retries, backoff, delay_seconds, max_delay_seconds}``; every key optional."""

    class Meta:
        unknown = RAISE

    max_retries = fields.Integer(strict=True, validate=validate.Range(min=0, max=100))
    backoff = fields.String(validate=validate.OneOf(["fixed", "exponential"]))
    delay_seconds = fields.Float(validate=validate.Range(min=0, max=86400))
    max_delay_seconds = fields.Float(validate=validate.Range(min=0, max=7 * 86400))

    @validates_schema
    def _cap(self, data: dict[str, Any], **_: Any) -> None:
        delay = data.get("delay_seconds", RetryPolicy.delay_seconds)
        cap = data.get("max_delay_seconds", RetryPolicy.max_delay_seconds)
        if cap < delay:
            raise MarshmallowError("must be at least delay_seconds", "max_delay_seconds")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> RetryPolicy:
        return RetryPolicy(**data)


class JobSchema(Schema):
    """A job document, as the admin API, config files and plugin defaults give it.

    ``handlers`` is what the handler must be in (the registry); ``None``
    accepts any well-formed name (a plugin's own defaults, checked later
    by the scheduler, which parks a job whose handler is unknown).
    """

    class Meta:
        unknown = RAISE

    id = fields.String(
        validate=validate.Regexp(JOB_ID, error="must be 1-128 letters, digits or _.:- and start with a letter or digit")
    )
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    handler = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(TRIGGER_TYPES))
    cron_expression = fields.String(allow_none=True)
    interval_seconds = fields.Float(allow_none=True)
    run_at = AwareDateTime(allow_none=True)
    trigger_event = fields.String(allow_none=True)
    timezone = fields.String(load_default="UTC")
    starts_at = AwareDateTime(allow_none=True)
    ends_at = AwareDateTime(allow_none=True)
    payload_template = fields.Dict(keys=fields.String(), load_default=dict)
    enabled = fields.Boolean(load_default=True)
    paused = fields.Boolean(load_default=False)
    retry_policy = fields.Nested(RetryPolicySchema, load_default=RetryPolicy)
    misfire_grace_seconds = fields.Float(allow_none=True, validate=validate.Range(min=0))
    coalesce = fields.Boolean(load_default=True)
    max_instances = fields.Integer(strict=True, load_default=1, validate=validate.Range(min=1, max=1000))
    overlap = fields.String(load_default="skip", validate=validate.OneOf(["skip", "queue"]))
    timeout_seconds = fields.Float(load_default=300.0, validate=validate.Range(min=0.001, max=MAX_TIMEOUT_SECONDS))
    jitter_seconds = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=3600))
    queue = fields.String(load_default="default", validate=validate.Regexp(QUEUE_NAME))
    priority = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=9))

    def __init__(
        self,
        *,
        handlers: Container[str] | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.handlers = handlers
        self.max_payload_bytes = max_payload_bytes

    @validates_schema(skip_on_field_errors=False)
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        problems: dict[str, list[str]] = {}
        handler = data.get("handler")
        if handler is not None:
            if not HANDLER_NAME.match(handler):
                problems["handler"] = ["must look like 'plugin.verb_phrase'"]
            elif self.handlers is not None and handler not in self.handlers:
                problems["handler"] = [f"unknown handler {handler!r}; is its plugin installed and enabled?"]
        payload = data.get("payload_template")
        problem = None if payload is None else payload_problem(payload, self.max_payload_bytes)
        if problem:
            problems["payload_template"] = [problem]
        self._check_trigger(data, problems)
        if problems:
            raise MarshmallowError(problems)

    def _check_trigger(self, data: dict[str, Any], problems: dict[str, list[str]]) -> None:
        def problem(field: str, message: str) -> None:
            problems.setdefault(field, []).append(message)

        try:
            validate_timezone(data.get("timezone", "UTC"))
        except TriggerError as e:
            problem(e.field, e.message)
        kind = data.get("type")
        if kind not in _TRIGGER_FIELD:
            return
        for other_kind, name in _TRIGGER_FIELD.items():
            if other_kind != kind and data.get(name) is not None:
                problem(name, f"only applies to type {other_kind!r}, not {kind!r}")
        if kind == "cron" and data.get("cron_expression") is not None:
            try:
                validate_cron(data["cron_expression"])
            except TriggerError as e:
                problem(e.field, e.message)
        if problems.keys() & {"timezone", "cron_expression"}:
            return  # compiling would only repeat these
        try:
            # an interval without a start is anchored at its creation: any time will do here
            compile_trigger(_spec(data), anchor=data.get("starts_at") or datetime.now(UTC))
        except TriggerError as e:
            problem(e.field, e.message)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Job:
        trigger = _spec(data)
        for name in TRIGGER_FIELDS:
            data.pop(name, None)
        data.setdefault("id", uuid.uuid4().hex)
        return Job(trigger=trigger, **data)


TRIGGER_FIELDS = (
    "type", "cron_expression", "interval_seconds", "run_at", "trigger_event", "timezone", "starts_at", "ends_at"
)  # fmt: skip


def payload_problem(payload: Any, max_bytes: int) -> str | None:
    """What is wrong with a payload (not JSON, too large, a NUL character), or None."""
    try:
        size = len(json.dumps(payload, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError, RecursionError):
        return "must be JSON (objects, arrays, strings, numbers, booleans, null)"
    if size > max_bytes:
        return f"is {size} bytes; the limit is {max_bytes}"
    # PostgreSQL's JSONB cannot hold \u0000: refused here rather than failing in the store
    return "must not contain NUL characters (\\u0000)" if _has_nul(payload) else None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _spec(data: Mapping[str, Any]) -> TriggerSpec:
    return TriggerSpec(
        type=data["type"],
        cron_expression=data.get("cron_expression"),
        interval_seconds=data.get("interval_seconds"),
        run_at=data.get("run_at"),
        trigger_event=data.get("trigger_event"),
        timezone=data.get("timezone", "UTC"),
        starts_at=data.get("starts_at"),
        ends_at=data.get("ends_at"),
    )


def load_job(
    document: Mapping[str, Any],
    *,
    handlers: Container[str] | None = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> Job:
    """Validate a job document and build the ``Job``; ``ValidationError`` names every bad field."""
    return _load(JobSchema(handlers=handlers, max_payload_bytes=max_payload_bytes), document)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_document(job: Job) -> dict[str, Any]:
    """The editable fields of ``job`` as a document ``load_job`` accepts (the inverse of loading)."""
    trig, policy = job.trigger, job.retry_policy
    return {
        "id": job.id,
        "name": job.name,
        "handler": job.handler,
        "type": trig.type,
        "cron_expression": trig.cron_expression,
        "interval_seconds": trig.interval_seconds,
        "run_at": _iso(trig.run_at),
        "trigger_event": trig.trigger_event,
        "timezone": trig.timezone,
        "starts_at": _iso(trig.starts_at),
        "ends_at": _iso(trig.ends_at),
        "payload_template": job.payload_template,
        "enabled": job.enabled,
        "paused": job.paused,
        "retry_policy": {
            "max_retries": policy.max_retries,
            "backoff": policy.backoff,
            "delay_seconds": policy.delay_seconds,
            "max_delay_seconds": policy.max_delay_seconds,
        },
        "misfire_grace_seconds": job.misfire_grace_seconds,
        "coalesce": job.coalesce,
        "max_instances": job.max_instances,
        "overlap": job.overlap,
        "timeout_seconds": job.timeout_seconds,
        "jitter_seconds": job.jitter_seconds,
        "queue": job.queue,
        "priority": job.priority,
    }


def load_document(schema: Schema, document: Any, field: str | None = None) -> Any:
    """Load ``document`` with ``schema``; ``ValidationError`` names each bad field (under ``field``, if given)."""
    try:
        if not isinstance(document, Mapping):
            raise MarshmallowError({"_schema": ["must be an object"]})
        return schema.load(document)
    except MarshmallowError as e:
        messages = e.messages if isinstance(e.messages, dict) else {"_schema": e.messages}
        raise errors.ValidationError({field: messages} if field else messages) from e


_load = load_document


def load_trigger(document: Mapping[str, Any]) -> TriggerSpec:
    """Validate a trigger on its own (type, its field, timezone, starts_at, ends_at), as a job's would be."""
    extra = sorted(set(document) - set(TRIGGER_FIELDS))
    if extra:
        raise errors.ValidationError({key: ["is not a trigger field"] for key in extra})
    # the job schema holds the trigger's rules; a placeholder name and handler satisfy the rest
    job = load_job({"name": "preview", "handler": "preview.trigger", **document})
    return job.trigger
