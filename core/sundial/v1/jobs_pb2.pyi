import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sundial.v1 import runs_pb2 as _runs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetryPolicy(_message.Message):
    __slots__ = ("max_retries", "backoff", "delay_seconds", "max_delay_seconds")
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    max_retries: int
    backoff: str
    delay_seconds: float
    max_delay_seconds: float
    def __init__(self, max_retries: _Optional[int] = ..., backoff: _Optional[str] = ..., delay_seconds: _Optional[float] = ..., max_delay_seconds: _Optional[float] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("id", "name", "handler", "type", "cron_expression", "interval_seconds", "run_at", "trigger_event", "timezone", "starts_at", "ends_at", "payload_json", "enabled", "paused", "retry_policy", "misfire_grace_seconds", "coalesce", "max_instances", "overlap", "timeout_seconds", "jitter_seconds", "queue", "priority")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CRON_EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_EVENT_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    MISFIRE_GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COALESCE_FIELD_NUMBER: _ClassVar[int]
    MAX_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    JITTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    handler: str
    type: str
    cron_expression: str
    interval_seconds: float
    run_at: _timestamp_pb2.Timestamp
    trigger_event: str
    timezone: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    payload_json: str
    enabled: bool
    paused: bool
    retry_policy: RetryPolicy
    misfire_grace_seconds: float
    coalesce: bool
    max_instances: int
    overlap: str
    timeout_seconds: float
    jitter_seconds: float
    queue: str
    priority: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., handler: _Optional[str] = ..., type: _Optional[str] = ..., cron_expression: _Optional[str] = ..., interval_seconds: _Optional[float] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trigger_event: _Optional[str] = ..., timezone: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payload_json: _Optional[str] = ..., enabled: _Optional[bool] = ..., paused: _Optional[bool] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., misfire_grace_seconds: _Optional[float] = ..., coalesce: _Optional[bool] = ..., max_instances: _Optional[int] = ..., overlap: _Optional[str] = ..., timeout_seconds: _Optional[float] = ..., jitter_seconds: _Optional[float] = ..., queue: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("spec", "state", "parked_reason", "next_run_at", "last_executed_at", "version", "created_at", "updated_at", "origin", "operator_fields")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PARKED_REASON_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_EXECUTED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELDS_FIELD_NUMBER: _ClassVar[int]
    spec: JobSpec
    state: str
    parked_reason: str
    next_run_at: _timestamp_pb2.Timestamp
    last_executed_at: _timestamp_pb2.Timestamp
    version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    origin: str
    operator_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, spec: _Optional[_Union[JobSpec, _Mapping]] = ..., state: _Optional[str] = ..., parked_reason: _Optional[str] = ..., next_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_executed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., origin: _Optional[str] = ..., operator_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: JobSpec
    def __init__(self, job: _Optional[_Union[JobSpec, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("plugin", "state", "handler", "queue", "page_size", "page_token")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    state: str
    handler: str
    queue: str
    page_size: int
    page_token: str
    def __init__(self, plugin: _Optional[str] = ..., state: _Optional[str] = ..., handler: _Optional[str] = ..., queue: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateJobRequest(_message.Message):
    __slots__ = ("id", "changes", "version", "clear_fields")
    ID_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CLEAR_FIELDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    changes: JobSpec
    version: int
    clear_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., changes: _Optional[_Union[JobSpec, _Mapping]] = ..., version: _Optional[int] = ..., clear_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JobVersionRequest(_message.Message):
    __slots__ = ("id", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class TriggerJobRequest(_message.Message):
    __slots__ = ("id", "payload_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    payload_json: str
    def __init__(self, id: _Optional[str] = ..., payload_json: _Optional[str] = ...) -> None: ...

class PreviewFireTimesRequest(_message.Message):
    __slots__ = ("job_id", "trigger", "count", "after")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    trigger: JobSpec
    count: int
    after: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., trigger: _Optional[_Union[JobSpec, _Mapping]] = ..., count: _Optional[int] = ..., after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FireTime(_message.Message):
    __slots__ = ("at", "local")
    AT_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    local: str
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., local: _Optional[str] = ...) -> None: ...

class PreviewFireTimesResponse(_message.Message):
    __slots__ = ("timezone", "fire_times")
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    FIRE_TIMES_FIELD_NUMBER: _ClassVar[int]
    timezone: str
    fire_times: _containers.RepeatedCompositeFieldContainer[FireTime]
    def __init__(self, timezone: _Optional[str] = ..., fire_times: _Optional[_Iterable[_Union[FireTime, _Mapping]]] = ...) -> None: ...

class BackfillJobRequest(_message.Message):
    __slots__ = ("id", "start", "end", "payload_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    payload_json: str
    def __init__(self, id: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payload_json: _Optional[str] = ...) -> None: ...

class BackfillJobResponse(_message.Message):
    __slots__ = ("created", "already_recorded")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_RECORDED_FIELD_NUMBER: _ClassVar[int]
    created: _containers.RepeatedCompositeFieldContainer[_runs_pb2.Run]
    already_recorded: int
    def __init__(self, created: _Optional[_Iterable[_Union[_runs_pb2.Run, _Mapping]]] = ..., already_recorded: _Optional[int] = ...) -> None: ...

class GetFireHistoryRequest(_message.Message):
    __slots__ = ("id", "start", "end", "page_size")
    ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    id: str
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    page_size: int
    def __init__(self, id: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ...) -> None: ...

class FireRecord(_message.Message):
    __slots__ = ("fire_time", "run", "why_none")
    FIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    WHY_NONE_FIELD_NUMBER: _ClassVar[int]
    fire_time: _timestamp_pb2.Timestamp
    run: _runs_pb2.Run
    why_none: str
    def __init__(self, fire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run: _Optional[_Union[_runs_pb2.Run, _Mapping]] = ..., why_none: _Optional[str] = ...) -> None: ...

class GetFireHistoryResponse(_message.Message):
    __slots__ = ("fires", "truncated")
    FIRES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    fires: _containers.RepeatedCompositeFieldContainer[FireRecord]
    truncated: bool
    def __init__(self, fires: _Optional[_Iterable[_Union[FireRecord, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...
