import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sundial.v1 import runs_pb2 as _runs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("job_id", "page_size")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    page_size: int
    def __init__(self, job_id: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[_runs_pb2.Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[_runs_pb2.Run, _Mapping]]] = ...) -> None: ...

class DeadLetterSelection(_message.Message):
    __slots__ = ("run_ids", "job_id", "all")
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[int]
    job_id: str
    all: bool
    def __init__(self, run_ids: _Optional[_Iterable[int]] = ..., job_id: _Optional[str] = ..., all: _Optional[bool] = ...) -> None: ...

class ReplayDeadLettersResponse(_message.Message):
    __slots__ = ("run_ids",)
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, run_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class PurgeDeadLettersResponse(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...

class PublishEventRequest(_message.Message):
    __slots__ = ("timestamp", "body", "signature")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    timestamp: int
    body: bytes
    signature: str
    def __init__(self, timestamp: _Optional[int] = ..., body: _Optional[bytes] = ..., signature: _Optional[str] = ...) -> None: ...

class PublishEventResponse(_message.Message):
    __slots__ = ("event_id", "runs")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    runs: _containers.RepeatedCompositeFieldContainer[_runs_pb2.Run]
    def __init__(self, event_id: _Optional[str] = ..., runs: _Optional[_Iterable[_Union[_runs_pb2.Run, _Mapping]]] = ...) -> None: ...

class GetMetricsRequest(_message.Message):
    __slots__ = ("job_ids", "page_size", "page_token")
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_ids: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    def __init__(self, job_ids: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class TaskMetrics(_message.Message):
    __slots__ = ("job_id", "task_name", "success_count", "failure_count", "avg_execution_seconds", "last_execution_seconds", "last_run", "next_run", "last_error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    AVG_EXECUTION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_EXECUTION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    task_name: str
    success_count: int
    failure_count: int
    avg_execution_seconds: float
    last_execution_seconds: float
    last_run: _timestamp_pb2.Timestamp
    next_run: _timestamp_pb2.Timestamp
    last_error: str
    def __init__(self, job_id: _Optional[str] = ..., task_name: _Optional[str] = ..., success_count: _Optional[int] = ..., failure_count: _Optional[int] = ..., avg_execution_seconds: _Optional[float] = ..., last_execution_seconds: _Optional[float] = ..., last_run: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_run: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ...) -> None: ...

class QueueDepth(_message.Message):
    __slots__ = ("queue", "pending", "queued", "running", "retrying")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    RETRYING_FIELD_NUMBER: _ClassVar[int]
    queue: str
    pending: int
    queued: int
    running: int
    retrying: int
    def __init__(self, queue: _Optional[str] = ..., pending: _Optional[int] = ..., queued: _Optional[int] = ..., running: _Optional[int] = ..., retrying: _Optional[int] = ...) -> None: ...

class GetMetricsResponse(_message.Message):
    __slots__ = ("tasks", "queues", "outbox_lag_seconds", "dead_letters", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskMetrics]
    queues: _containers.RepeatedCompositeFieldContainer[QueueDepth]
    outbox_lag_seconds: float
    dead_letters: int
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskMetrics, _Mapping]]] = ..., queues: _Optional[_Iterable[_Union[QueueDepth, _Mapping]]] = ..., outbox_lag_seconds: _Optional[float] = ..., dead_letters: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListPluginsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Plugin(_message.Message):
    __slots__ = ("name", "version", "state", "handlers", "failures")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    state: str
    handlers: _containers.RepeatedScalarFieldContainer[str]
    failures: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., state: _Optional[str] = ..., handlers: _Optional[_Iterable[str]] = ..., failures: _Optional[_Iterable[str]] = ...) -> None: ...

class ListPluginsResponse(_message.Message):
    __slots__ = ("plugins",)
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    plugins: _containers.RepeatedCompositeFieldContainer[Plugin]
    def __init__(self, plugins: _Optional[_Iterable[_Union[Plugin, _Mapping]]] = ...) -> None: ...
