import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetSchedulerStatusRequest(_message.Message):
    __slots__ = ("next_runs",)
    NEXT_RUNS_FIELD_NUMBER: _ClassVar[int]
    next_runs: int
    def __init__(self, next_runs: _Optional[int] = ...) -> None: ...

class QueuePause(_message.Message):
    __slots__ = ("queue", "reason", "paused_at")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PAUSED_AT_FIELD_NUMBER: _ClassVar[int]
    queue: str
    reason: str
    paused_at: _timestamp_pb2.Timestamp
    def __init__(self, queue: _Optional[str] = ..., reason: _Optional[str] = ..., paused_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NextRun(_message.Message):
    __slots__ = ("job_id", "at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SchedulerProcess(_message.Message):
    __slots__ = ("name", "started_at", "last_seen_at", "backpressure")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    BACKPRESSURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    started_at: _timestamp_pb2.Timestamp
    last_seen_at: _timestamp_pb2.Timestamp
    backpressure: bool
    def __init__(self, name: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., backpressure: _Optional[bool] = ...) -> None: ...

class Backpressure(_message.Message):
    __slots__ = ("active", "outbox_lag_seconds", "pending_due")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PENDING_DUE_FIELD_NUMBER: _ClassVar[int]
    active: bool
    outbox_lag_seconds: float
    pending_due: int
    def __init__(self, active: _Optional[bool] = ..., outbox_lag_seconds: _Optional[float] = ..., pending_due: _Optional[int] = ...) -> None: ...

class SchedulerStatus(_message.Message):
    __slots__ = ("state", "pauses", "job_count", "jobs_by_state", "next_runs", "backpressure", "coordination", "schedulers")
    class JobsByStateEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAUSES_FIELD_NUMBER: _ClassVar[int]
    JOB_COUNT_FIELD_NUMBER: _ClassVar[int]
    JOBS_BY_STATE_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUNS_FIELD_NUMBER: _ClassVar[int]
    BACKPRESSURE_FIELD_NUMBER: _ClassVar[int]
    COORDINATION_FIELD_NUMBER: _ClassVar[int]
    SCHEDULERS_FIELD_NUMBER: _ClassVar[int]
    state: str
    pauses: _containers.RepeatedCompositeFieldContainer[QueuePause]
    job_count: int
    jobs_by_state: _containers.ScalarMap[str, int]
    next_runs: _containers.RepeatedCompositeFieldContainer[NextRun]
    backpressure: Backpressure
    coordination: str
    schedulers: _containers.RepeatedCompositeFieldContainer[SchedulerProcess]
    def __init__(self, state: _Optional[str] = ..., pauses: _Optional[_Iterable[_Union[QueuePause, _Mapping]]] = ..., job_count: _Optional[int] = ..., jobs_by_state: _Optional[_Mapping[str, int]] = ..., next_runs: _Optional[_Iterable[_Union[NextRun, _Mapping]]] = ..., backpressure: _Optional[_Union[Backpressure, _Mapping]] = ..., coordination: _Optional[str] = ..., schedulers: _Optional[_Iterable[_Union[SchedulerProcess, _Mapping]]] = ...) -> None: ...

class PauseSchedulerRequest(_message.Message):
    __slots__ = ("queue", "reason")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    queue: str
    reason: str
    def __init__(self, queue: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResumeSchedulerRequest(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: str
    def __init__(self, queue: _Optional[str] = ...) -> None: ...
