"""marshmallow schemas for every request, over the plain values ``convert.fields_of`` gives.

Each names the field at fault, so INVALID_ARGUMENT says what to fix.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import Message
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ..handlers import HANDLER_NAME
from ..run import RunStatus
from ..schemas import JOB_ID, QUEUE_NAME, AwareDateTime, load_document
from ..store.admin import JOB_STATES
from .convert import fields_of
from .errors import ApiError

DEFAULT_PAGE_SIZE = 100
_JOB_ID = validate.Regexp(JOB_ID, error="must be 1-128 letters, digits or _.:- and start with a letter or digit")
_QUEUE = validate.Regexp(QUEUE_NAME, error="must be 1-64 letters, digits or _.-")
_STATUS = validate.OneOf([s.value for s in RunStatus])
# optional job fields an update may reset to none
CLEARABLE = ("cron_expression", "interval_seconds", "run_at", "trigger_event", "starts_at", "ends_at",
             "misfire_grace_seconds")  # fmt: skip


class _Request(Schema):
    class Meta:
        unknown = RAISE


class _Paged(_Request):
    page_size = fields.Integer(strict=True, validate=validate.Range(min=0))
    page_token = fields.String(validate=validate.Length(max=1024))


class JobRef(_Request):
    id = fields.String(required=True, validate=_JOB_ID)
    # versions are 32-bit in the store, and an update writes version + 1
    version = fields.Integer(strict=True, validate=validate.Range(min=1, max=2**31 - 2))


class CreateJob(_Request):
    job = fields.Dict(required=True)


class ListJobs(_Paged):
    plugin = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,128}$"))
    state = fields.String(validate=validate.OneOf(JOB_STATES))
    handler = fields.String(validate=validate.Regexp(HANDLER_NAME, error="must look like 'plugin.verb_phrase'"))
    queue = fields.String(validate=_QUEUE)


class UpdateJob(JobRef):
    changes = fields.Dict(load_default=dict)
    clear_fields = fields.List(fields.String(validate=validate.OneOf(CLEARABLE)), load_default=list)


class TriggerJob(_Request):
    id = fields.String(required=True, validate=_JOB_ID)
    payload_json = fields.String()


class Preview(_Request):
    job_id = fields.String(validate=_JOB_ID)
    trigger = fields.Dict()
    count = fields.Integer(strict=True, validate=validate.Range(min=0))
    after = AwareDateTime()

    @validates_schema
    def _target(self, data: dict[str, Any], **_: Any) -> None:
        if ("job_id" in data) == ("trigger" in data):
            raise ValidationError("give a job_id or a trigger", "job_id")


class Backfill(TriggerJob):
    start = AwareDateTime(required=True)
    end = AwareDateTime(required=True)


class FireHistory(_Request):
    id = fields.String(required=True, validate=_JOB_ID)
    start = AwareDateTime()
    end = AwareDateTime()
    page_size = fields.Integer(strict=True, validate=validate.Range(min=0))


class RunRef(_Request):
    id = fields.Integer(strict=True, required=True, validate=validate.Range(min=1))


class WatchRuns(_Request):
    job_id = fields.String(validate=_JOB_ID)
    statuses = fields.List(fields.String(validate=_STATUS), load_default=list)


class ListRuns(_Paged, WatchRuns):
    start = AwareDateTime()
    end = AwareDateTime()


class SchedulerStatus(_Request):
    next_runs = fields.Integer(strict=True, validate=validate.Range(min=0, max=1000))


class Pause(_Request):
    queue = fields.String(validate=_QUEUE)
    reason = fields.String(validate=validate.Length(max=500))


class ListDeadLetters(_Request):
    job_id = fields.String(validate=_JOB_ID)
    page_size = fields.Integer(strict=True, validate=validate.Range(min=0))


class DeadLetterSelection(_Request):
    run_ids = fields.List(fields.Integer(strict=True, validate=validate.Range(min=1)),
                          validate=validate.Length(max=10_000), load_default=list)  # fmt: skip
    job_id = fields.String(validate=_JOB_ID)
    all = fields.Boolean()

    @validates_schema
    def _one(self, data: dict[str, Any], **_: Any) -> None:
        if sum((bool(data.get("run_ids")), "job_id" in data, bool(data.get("all")))) != 1:
            raise ValidationError("choose exactly one: run_ids, job_id or all", "run_ids")


class PublishEvent(_Request):
    timestamp = fields.Integer(strict=True, required=True)
    body = fields.Raw(required=True)
    signature = fields.String(required=True, validate=validate.Length(min=1, max=256))


class GetMetrics(_Paged):
    job_ids = fields.List(fields.String(validate=_JOB_ID), load_default=list)


class ListPlugins(_Request):
    pass


def load(schema: type[Schema], request: Message) -> dict[str, Any]:
    """The request's fields, validated by ``schema``."""
    return load_document(schema(), fields_of(request))  # type: ignore[no-any-return]


def page_size(requested: int | None, limit: int, field: str = "page_size") -> int:
    """The page size to use: the default for 0, RESOURCE_EXHAUSTED above the server's ``limit``."""
    if not requested:
        return min(DEFAULT_PAGE_SIZE, limit)
    if requested > limit:
        raise ApiError(
            grpc.StatusCode.RESOURCE_EXHAUSTED, f"{field}: {requested} is over this server's limit of {limit}"
        )
    return requested
