"""A real Sundial API server on 127.0.0.1 (an ephemeral port) and a channel to it, for the API tests."""

from __future__ import annotations

import dataclasses
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor

from sundial.config import Settings
from sundial.engine import Engine
from sundial.plugins.manager import load_plugins
from sundial.store.sqlalchemy import SQLStore
from sundial.v1 import jobs_pb2, operations_pb2, runs_pb2, scheduler_pb2
from support import Handlers

READ_TOKEN = "read-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"
SECRET = "event-secret-0123456789"
FILES = (jobs_pb2, runs_pb2, scheduler_pb2, operations_pb2)


def methods() -> list[MethodDescriptor]:
    """Every method of Sundial's API."""
    return [m for f in FILES for s in f.DESCRIPTOR.services_by_name.values() for m in s.methods]


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def message_class(descriptor: Any) -> Any:
    return message_factory.GetMessageClass(descriptor)


class Api:
    """An engine serving the API, with a channel and a caller that takes a token."""

    def __init__(self, store: SQLStore, tmp: Any, **settings: Any) -> None:
        self.handlers = Handlers()
        base = Settings(
            database_url=store.url, api_addr="127.0.0.1:0", api_tokens=(READ_TOKEN,), api_admin_tokens=(ADMIN_TOKEN,),
            event_signing_secret=SECRET, lease_seconds=5,
        )  # fmt: skip
        self.settings = dataclasses.replace(base, **settings)
        plugins = load_plugins(extra=[("t", self.handlers)], entry_points=False)
        self.engine = Engine(self.settings, store=store, plugins=plugins)
        self.engine.start(("api",))
        self.port = self.engine.api.port
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    @property
    def store(self) -> SQLStore:
        return self.engine.store

    def call(self, method: str, request: Any, *, token: str | None = ADMIN_TOKEN, timeout: float = 10) -> Any:
        """Call ``Service/Method`` (e.g. ``JobService/GetJob``); a stream's answers come as a list."""
        service, name = method.split("/")
        descriptor = next(m for m in methods() if m.containing_service.name == service and m.name == name)
        return invoke(self.channel, descriptor, request, token=token, timeout=timeout)

    def close(self) -> None:
        self.channel.close()
        self.engine.stop()


def invoke(channel: grpc.Channel, method: MethodDescriptor, request: Any, *, token: str | None, timeout: float) -> Any:
    """Call ``method`` generically: unary answers come back, stream answers as a list."""
    response = message_class(method.output_type)
    metadata = [("authorization", f"Bearer {token}")] if token else []
    kind = channel.unary_stream if method.server_streaming else channel.unary_unary
    call = kind(path(method), request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response.FromString)  # fmt: skip
    answer = call(request, metadata=metadata, timeout=timeout)
    return list(answer) if method.server_streaming else answer


def code_of(call: Any, *args: Any, **kwargs: Any) -> tuple[grpc.StatusCode, str]:
    """The status code and message ``call(*args, **kwargs)`` ends with (OK when it raises no grpc.RpcError)."""
    try:
        call(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""
