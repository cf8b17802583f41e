"""A generic client, as grpcurl is, learns the API through reflection and calls each grpcurl example of docs/api.md."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from apisupport import ADMIN_TOKEN, Api, code_of, methods, path
from sundial.store.sqlalchemy import SQLStore

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# grpcurl -plaintext [-H "..."] [-d '<json>' | -d "<shell>"] ADDRESS METHOD, maybe over several lines
_BREAK = r"(?:\s*\\\n)?\s*"
EXAMPLE = re.compile(
    r"grpcurl -plaintext" + _BREAK + r"(?:-H \"[^\"]*\"" + _BREAK + r")?"
    r"(?:-d (?:'(?P<json>[^']*)'|\"(?P<shell>[^\n]*)\")" + _BREAK + r")?"
    r"127\.0\.0\.1:50051 (?P<method>\S+)",
)


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the token to every call, reflection's included (as grpcurl's -H does)."""

    def _with_token(self, details: Any) -> Any:
        metadata = [*(details.metadata or ()), ("authorization", f"Bearer {ADMIN_TOKEN}")]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)


class _Details(grpc.ClientCallDetails):
    def __init__(self, details: Any, metadata: Any) -> None:
        self.method, self.timeout, self.credentials = details.method, details.timeout, details.credentials
        self.wait_for_ready, self.compression = details.wait_for_ready, details.compression
        self.metadata = metadata


@pytest.fixture
def api(sqlite_store: SQLStore, tmp_path: Path) -> Iterator[Api]:
    server = Api(sqlite_store, tmp_path)
    yield server
    server.close()


def test_every_method_has_a_grpcurl_and_a_sundialctl_example() -> None:
    text = DOC.read_text()
    documented = {m.group("method") for m in EXAMPLE.finditer(text)}
    assert {path(m).lstrip("/") for m in methods()} <= documented
    # each method's section (from its name in bold to the next one) shows sundialctl too
    for method in methods():
        section = text.split(f"**{method.name}**", 1)[1].split("\n**", 1)[0].split("\n## ", 1)[0]
        assert "sundialctl " in section, method.name


def _answer(call: Any, request: Any, streaming: bool) -> Any:
    return list(call(request, timeout=0.5)) if streaming else call(request, timeout=5)


def test_a_generic_client_calls_every_example_through_reflection(api: Api) -> None:
    channel = grpc.intercept_channel(api.channel, _Bearer())
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = DescriptorPool(database)
    services = set(database.get_services())
    assert {m.containing_service.full_name for m in methods()} <= services
    called = 0
    for example in EXAMPLE.finditer(DOC.read_text()):
        text = (example.group("json") or "{}").replace("\\\n", "").replace("\n", " ")
        if example.group("shell") is not None:
            continue  # built by the shell (a signed event): the same request is tested in test_api_security
        if not example.group("method").startswith("sundial."):
            continue  # grpcurl's own list, and the health service
        service_name, method_name = example.group("method").rsplit("/", 1)
        method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request = json_format.Parse(text, message_factory.GetMessageClass(method.input_type)())
        response = message_factory.GetMessageClass(method.output_type)
        kind = channel.unary_stream if method.server_streaming else channel.unary_unary
        call = kind(f"/{service_name}/{method_name}", request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=response.FromString)  # fmt: skip
        code, message = code_of(_answer, call, request, method.server_streaming)
        # the examples name jobs and runs this empty store may not have: those answers are fine
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
                        grpc.StatusCode.DEADLINE_EXCEEDED), (example.group("method"), text, code, message)  # fmt: skip
        called += 1
    assert called >= len(methods()) - 1  # all but PublishEvent
