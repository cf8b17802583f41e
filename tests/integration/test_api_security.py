"""Tokens on every method, signed events, size and concurrency bounds, health, reflection, TLS."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from apisupport import ADMIN_TOKEN, READ_TOKEN, SECRET, Api, code_of, invoke, message_class, methods, path
from sundial.api.auth import ADMIN, METHOD_ROLES
from sundial.pytest_plugin import service_missing
from sundial.signing import sign
from sundial.store.sqlalchemy import SQLStore
from sundial.v1 import jobs_pb2, runs_pb2
from sundial.v1 import operations_pb2 as ops
from support import REDIS_URL


@pytest.fixture
def api(sqlite_store: SQLStore, tmp_path: Path) -> Iterator[Api]:
    server = Api(sqlite_store, tmp_path)
    yield server
    server.close()


def test_every_method_has_a_declared_role() -> None:
    assert {path(m) for m in methods()} <= set(METHOD_ROLES)


def test_every_method_refuses_no_token_a_bad_token_and_a_read_token_where_admin_is_needed(api: Api) -> None:
    for method in methods():
        request = message_class(method.input_type)()
        for token in (None, "not-a-token-of-this-server"):
            code, message = code_of(invoke, api.channel, method, request, token=token, timeout=5)
            assert code == grpc.StatusCode.UNAUTHENTICATED, (path(method), code)
            assert "bearer token" in message
        code, _ = code_of(invoke, api.channel, method, request, token=READ_TOKEN, timeout=1)
        if METHOD_ROLES[path(method)] == ADMIN:
            assert code == grpc.StatusCode.PERMISSION_DENIED, path(method)
        else:
            assert code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), path(method)
    basic = [("authorization", f"Basic {ADMIN_TOKEN}")]
    stub = api.channel.unary_unary("/sundial.v1.PluginService/ListPlugins",
                                   request_serializer=ops.ListPluginsRequest.SerializeToString)  # fmt: skip
    code, _ = code_of(lambda: stub(ops.ListPluginsRequest(), metadata=basic, timeout=5))
    assert code == grpc.StatusCode.UNAUTHENTICATED  # the scheme matters, not only the token


def test_health_needs_no_token_and_reflection_lists_every_service(api: Api) -> None:
    health = health_pb2_grpc.HealthStub(api.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    answer = health.Check(health_pb2.HealthCheckRequest(service="sundial.v1.JobService"))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(api.channel)
    asks = [reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="sundial.v1.JobService")]  # fmt: skip
    answers = list(reflect.ServerReflectionInfo(iter(asks), metadata=[("authorization", f"Bearer {READ_TOKEN}")]))
    listed = {s.name for s in answers[0].list_services_response.service}
    assert {m.containing_service.full_name for m in methods()} | {"grpc.health.v1.Health"} <= listed
    assert answers[1].file_descriptor_response.file_descriptor_proto
    code, _ = code_of(lambda: list(reflect.ServerReflectionInfo(iter(asks[:1]))))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def signed(
    event: str, payload: dict, event_id: str, *, secret: str = SECRET, at: int | None = None
) -> ops.PublishEventRequest:  # noqa: E501
    body = json.dumps({"event": event, "id": event_id, "payload": payload}).encode()
    stamp = int(time.time()) if at is None else at
    return ops.PublishEventRequest(timestamp=stamp, body=body, signature=sign(secret, stamp, body))


def listen(api: Api, job_id: str = "bind") -> None:
    spec = jobs_pb2.JobSpec(id=job_id, name=job_id, handler="t.record", type="event", trigger_event="code.activated")
    api.call("JobService/CreateJob", jobs_pb2.CreateJobRequest(job=spec))


def publish(api: Api, request: ops.PublishEventRequest) -> tuple[grpc.StatusCode, str]:
    return code_of(lambda: api.call("EventService/PublishEvent", request))


def test_signed_events_fire_once_and_forged_replayed_or_expired_ones_are_refused(api: Api) -> None:
    listen(api)
    request = signed("code.activated", {"code": "X1"}, "evt-1")
    answer = api.call("EventService/PublishEvent", request)
    assert answer.event_id == "evt-1" and [r.job_id for r in answer.runs] == ["bind"]
    assert json.loads(answer.runs[0].payload_json) == {"code": "X1"}
    code, message = publish(api, request)
    assert code == grpc.StatusCode.ALREADY_EXISTS and "accepted already" in message
    tampered = ops.PublishEventRequest()
    tampered.CopyFrom(signed("code.activated", {"code": "X2"}, "evt-2"))
    tampered.body = tampered.body.replace(b"X2", b"X3")
    assert publish(api, tampered)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert publish(api, signed("code.activated", {}, "evt-3", secret="another-secret-0123456"))[0] == (
        grpc.StatusCode.UNAUTHENTICATED)  # fmt: skip
    code, message = publish(api, signed("code.activated", {}, "evt-4", at=int(time.time()) - 3600))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "window" in message
    assert publish(api, signed("code.activated", {}, "evt-5", at=int(time.time()) + 3600))[0] == (
        grpc.StatusCode.UNAUTHENTICATED)  # fmt: skip
    stamp = int(time.time())
    not_json = ops.PublishEventRequest(timestamp=stamp, body=b"{nope", signature=sign(SECRET, stamp, b"{nope"))
    code, message = publish(api, not_json)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("body")
    # a new message for an event already fired (a sender's retry) fires nothing again
    assert (
        list(
            api.call(
                "EventService/PublishEvent", signed("code.activated", {"code": "X1"}, "evt-1", at=request.timestamp + 1)
            ).runs
        )
        == []
    )
    assert len(api.store.list_runs(job_id="bind")) == 1


def test_events_are_refused_when_no_signing_secret_is_set(sqlite_store: SQLStore, tmp_path: Path) -> None:
    server = Api(sqlite_store, tmp_path, event_signing_secret=None)
    try:
        code, message = publish(server, signed("code.activated", {}, "e"))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "event_signing_secret" in message
    finally:
        server.close()


def test_with_redis_two_api_processes_share_the_nonces(sqlite_store: SQLStore, tmp_path: Path,
                                                      redis_prefix: str) -> None:  # fmt: skip
    first = Api(sqlite_store, tmp_path, redis_url=REDIS_URL, redis_key_prefix=redis_prefix)
    second = Api(SQLStore(sqlite_store.url), tmp_path, redis_url=REDIS_URL, redis_key_prefix=redis_prefix)
    try:
        listen(first)
        request = signed("code.activated", {}, "evt-r")
        assert len(first.call("EventService/PublishEvent", request).runs) == 1
        assert publish(second, request)[0] == grpc.StatusCode.ALREADY_EXISTS
        keys = list(first.engine.api.api.verifier.nonces.client.scan_iter(f"{redis_prefix}event-nonce:*"))
        assert len(keys) == 1
    finally:
        second.close()
        first.close()


def test_message_size_and_concurrent_calls_are_bounded(sqlite_store: SQLStore, tmp_path: Path) -> None:
    server = Api(sqlite_store, tmp_path, api_max_message_bytes=4096, api_max_concurrent_calls=1)
    try:
        big = jobs_pb2.JobSpec(id="big", name="big", handler="t.record", type="interval", interval_seconds=5,
                               payload_json=json.dumps({"x": "y" * 10_000}))  # fmt: skip
        code, _ = code_of(lambda: server.call("JobService/CreateJob", jobs_pb2.CreateJobRequest(job=big)))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        watch = server.channel.unary_stream(
            "/sundial.v1.RunService/WatchRuns", request_serializer=runs_pb2.WatchRunsRequest.SerializeToString
        )(runs_pb2.WatchRunsRequest(), metadata=[("authorization", f"Bearer {READ_TOKEN}")])
        holder = threading.Thread(target=lambda: code_of(lambda: list(watch)), daemon=True)
        holder.start()
        time.sleep(0.5)  # the stream holds the one call allowed
        code, _ = code_of(lambda: server.call("PluginService/ListPlugins", ops.ListPluginsRequest()))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        watch.cancel()
        holder.join(5)
    finally:
        server.close()


def _certificates(tmp: Path) -> dict[str, Path]:
    def openssl(*args: str) -> None:
        try:
            subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as e:
            service_missing("openssl", e)

    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=sundial-test-ca")  # fmt: skip
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "1", "-extfile", "san.ext")  # fmt: skip
    return {name: tmp / name for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def test_tls_and_mutual_tls(sqlite_store: SQLStore, tmp_path: Path) -> None:
    files = _certificates(tmp_path)
    server = Api(sqlite_store, tmp_path, api_tls_cert=str(files["server.crt"]), api_tls_key=str(files["server.key"]),
                 api_tls_client_ca=str(files["ca.crt"]))  # fmt: skip
    address = f"127.0.0.1:{server.port}"
    request = ops.ListPluginsRequest()
    method = next(m for m in methods() if m.name == "ListPlugins")
    try:
        with_client = grpc.ssl_channel_credentials(
            files["ca.crt"].read_bytes(), files["client.key"].read_bytes(), files["client.crt"].read_bytes()
        )
        with grpc.secure_channel(address, with_client) as channel:
            assert invoke(channel, method, request, token=READ_TOKEN, timeout=10).plugins
        without = grpc.ssl_channel_credentials(files["ca.crt"].read_bytes())
        with grpc.secure_channel(address, without) as channel:
            code, _ = code_of(lambda: invoke(channel, method, request, token=READ_TOKEN, timeout=5))
            assert code == grpc.StatusCode.UNAVAILABLE  # the handshake fails without a client certificate
        with grpc.insecure_channel(address) as channel:
            code, _ = code_of(lambda: invoke(channel, method, request, token=READ_TOKEN, timeout=5))
            assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        server.close()
