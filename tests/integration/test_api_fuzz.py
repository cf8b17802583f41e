"""Bad input on every method, property-based: the server answers a proper status, never UNKNOWN or INTERNAL.

Requests are drawn from each method's own message descriptor, with field
values both random and close to valid ones, so that validation, conversion
and the store are all reached.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apisupport import SECRET, Api, code_of, invoke, message_class, methods, path
from sundial.signing import sign
from sundial.store import tables
from sundial.store.sqlalchemy import SQLStore
from sundial.v1 import jobs_pb2, runs_pb2
from sundial.v1 import operations_pb2 as ops

_NEAR_VALID_TEXT = st.sampled_from([
    "", "j1", "t.record", "sundial.log_message", "default", "cron", "interval", "date", "event", "0 8 * * *",
    "*/5 * * * *", "UTC", "Europe/London", "Mars/Base", "{}", '{"a": 1}', "[1]", '{"a": "\\u0000"}', "\x00", "pending",
    "dead", "enabled", "paused", "skip", "queue", "exponential", "WyJqMSJd", "not a token", "a" * 300, "ends_at",
    "misfire_grace_seconds", "code.activated",
])  # fmt: skip
_JSON_VALUES = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["\x00", "a\x00b", "\ud7ff"]),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
_JSON_OBJECTS = st.dictionaries(st.text(max_size=10), _JSON_VALUES, max_size=3)
_INTS = {
    FieldDescriptor.TYPE_INT32: st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(-3, 2000)),
    FieldDescriptor.TYPE_INT64: st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-3, 2000)),
}


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            base: st.SearchStrategy[Any] = st.builds(
                lambda s, n: message_class(field.message_type)(seconds=s, nanos=n),
                st.one_of(st.integers(-(2**40), 2**40), st.integers(1_700_000_000, 1_900_000_000)),
                st.integers(0, 999_999_999),
            )
        else:
            base = request_of(field.message_type, depth + 1)
    elif field.name == "payload_json":
        base = st.one_of(_NEAR_VALID_TEXT, st.text(max_size=40), _JSON_OBJECTS.map(json.dumps))
    elif kind == FieldDescriptor.TYPE_STRING:
        base = st.one_of(_NEAR_VALID_TEXT, st.text(max_size=40))
    elif kind in _INTS:
        base = _INTS[kind]
    elif kind == FieldDescriptor.TYPE_BOOL:
        base = st.booleans()
    elif kind == FieldDescriptor.TYPE_DOUBLE:
        base = st.floats(allow_nan=True, allow_infinity=True)
    elif kind == FieldDescriptor.TYPE_BYTES:
        base = st.one_of(st.binary(max_size=64), st.just(b'{"event": "code.activated", "payload": {}}'))
    else:
        raise AssertionError(f"no strategy for field type {kind} ({field.full_name})")
    if field.is_repeated:
        return st.lists(base, max_size=3)
    return base


def request_of(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of ``descriptor`` with any subset of their fields set."""
    if depth > 2:
        return st.just(message_class(descriptor)())
    fields = {f.name: _field(f, depth) for f in descriptor.fields}

    def build(values: dict[str, Any]) -> Any:
        message = message_class(descriptor)()
        for name, value in values.items():
            target = getattr(message, name)
            if isinstance(value, list):
                target.extend(value)
            elif hasattr(value, "DESCRIPTOR"):
                target.CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries({}, optional=fields).map(build)


def _job(**fields: Any) -> jobs_pb2.JobSpec:
    return jobs_pb2.JobSpec(**{"id": "j1", "name": "j1", "handler": "t.record", "type": "interval",
                               "interval_seconds": 60, **fields})  # fmt: skip


# a valid request of each method that takes an id or a document: random fields are merged onto it,
# so that most of a request is right and the random part reaches conversion, the core and the store
BASES: dict[str, Any] = {
    "CreateJob": jobs_pb2.CreateJobRequest(job=_job(id="j2")),
    "GetJob": jobs_pb2.GetJobRequest(id="j1"),
    "UpdateJob": jobs_pb2.UpdateJobRequest(id="j1", changes=jobs_pb2.JobSpec(name="renamed")),
    "PauseJob": jobs_pb2.JobVersionRequest(id="j1"),
    "ResumeJob": jobs_pb2.JobVersionRequest(id="j1"),
    "TriggerJob": jobs_pb2.TriggerJobRequest(id="j1", payload_json="{}"),
    "PreviewFireTimes": jobs_pb2.PreviewFireTimesRequest(
        trigger=jobs_pb2.JobSpec(type="cron", cron_expression="0 8 * * *")
    ),
    "BackfillJob": jobs_pb2.BackfillJobRequest(id="j1"),
    "GetFireHistory": jobs_pb2.GetFireHistoryRequest(id="j1"),
    "ListRuns": runs_pb2.ListRunsRequest(job_id="j1"),
    "GetRun": runs_pb2.GetRunRequest(id=1),
}


def _merged(base: Any, extra: Any) -> Any:
    request = type(base)()
    request.CopyFrom(base)
    request.MergeFrom(extra)
    return request


def _signed_event(payload: dict[str, Any], event_id: str) -> Any:
    body = json.dumps({"event": "code.activated", "id": event_id, "payload": payload}).encode()
    stamp = int(time.time())
    return ops.PublishEventRequest(timestamp=stamp, body=body, signature=sign(SECRET, stamp, body))


def requests_for(method: Any) -> st.SearchStrategy[Any]:
    """Random requests of ``method``, and valid ones with random fields merged in."""
    random = request_of(method.input_type)
    if method.name == "PublishEvent":
        ids = st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True)
        return st.one_of(random, st.builds(_signed_event, _JSON_OBJECTS, ids))
    base = BASES.get(method.name)
    return random if base is None else st.one_of(random, random.map(lambda extra: _merged(base, extra)))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        store = SQLStore(f"sqlite:///{tmp / 'sundial.db'}")
        store.migrate()
    else:
        store = request.getfixturevalue("_postgres_store")
        with store.engine.begin() as conn:
            for table in reversed(tables.metadata.sorted_tables):
                conn.execute(table.delete())
    server = Api(store, tmp)
    server.call("JobService/CreateJob", jobs_pb2.CreateJobRequest(job=_job()))
    spec = jobs_pb2.JobSpec(id="ev", name="ev", handler="t.record", type="event", trigger_event="code.activated")
    server.call("JobService/CreateJob", jobs_pb2.CreateJobRequest(job=spec))
    yield server
    server.close()


NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE}


@pytest.mark.parametrize("method", methods(), ids=path)
def test_bad_input_gets_a_proper_status(api: Api, method: Any) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])  # fmt: skip
    @given(request=requests_for(method))
    def check(request: Any) -> None:
        timeout = 0.3 if method.server_streaming else 10
        code, message = code_of(invoke, api.channel, method, request, token="admin-token-0123456789", timeout=timeout)
        assert code not in NEVER, (code, message, request)

    check()
    health = health_pb2_grpc.HealthStub(api.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
