"""Bearer tokens with two roles, checked by one interceptor before any servicer runs.

Every method needs a token except the health service (load balancers probe
it without one). A read-only token may call the methods that change
nothing; everything else needs an admin token. Tokens are compared in
constant time, against every configured token, so timing reveals neither a
token nor which one matched.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import Any

import grpc

HEALTH_PREFIX = "/grpc.health.v1.Health/"
READ, ADMIN = "read", "admin"

# every method of the API with the role it needs; a method missing here needs admin
METHOD_ROLES: dict[str, str] = {
    **{f"/sundial.v1.JobService/{m}": ADMIN for m in (
        "CreateJob", "UpdateJob", "DeleteJob", "PauseJob", "ResumeJob", "TriggerJob", "BackfillJob")},
    **{f"/sundial.v1.JobService/{m}": READ for m in ("GetJob", "ListJobs", "PreviewFireTimes", "GetFireHistory")},
    **{f"/sundial.v1.RunService/{m}": READ for m in ("ListRuns", "GetRun", "GetRunLogs", "WatchRuns")},
    "/sundial.v1.SchedulerService/GetSchedulerStatus": READ,
    "/sundial.v1.SchedulerService/PauseScheduler": ADMIN,
    "/sundial.v1.SchedulerService/ResumeScheduler": ADMIN,
    "/sundial.v1.DeadLetterService/ListDeadLetters": READ,
    "/sundial.v1.DeadLetterService/ReplayDeadLetters": ADMIN,
    "/sundial.v1.DeadLetterService/PurgeDeadLetters": ADMIN,
    "/sundial.v1.EventService/PublishEvent": ADMIN,
    "/sundial.v1.MetricsService/GetMetrics": READ,
    "/sundial.v1.PluginService/ListPlugins": READ,
    # listing the API is reading it
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": READ,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": READ,
}  # fmt: skip


def _digest(token: str) -> bytes:
    # equal-length digests, so compare_digest's time does not depend on the token's length either
    return hashlib.sha256(token.encode()).digest()


def bearer(metadata: Iterable[Any] | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, if any."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class TokenAuth(grpc.ServerInterceptor):
    """Refuses calls without a known token (UNAUTHENTICATED) or with too weak a one (PERMISSION_DENIED)."""

    def __init__(self, read_tokens: Iterable[str], admin_tokens: Iterable[str]) -> None:
        self._tokens = [(_digest(t), READ) for t in read_tokens] + [(_digest(t), ADMIN) for t in admin_tokens]

    def role_of(self, token: str | None) -> str | None:
        """The role ``token`` grants, or None."""
        if token is None:
            return None
        given = _digest(token)
        role = None
        for digest, granted in self._tokens:  # no early exit: every token is compared
            if hmac.compare_digest(digest, given):
                role = granted
        return role

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        method = details.method
        if method.startswith(HEALTH_PREFIX):
            return continuation(details)
        role = self.role_of(bearer(details.invocation_metadata))
        if role is None:
            return _refuse(continuation(details), grpc.StatusCode.UNAUTHENTICATED,
                           "a bearer token is needed: authorization: Bearer <token>")  # fmt: skip
        if METHOD_ROLES.get(method, ADMIN) == ADMIN and role != ADMIN:
            return _refuse(continuation(details), grpc.StatusCode.PERMISSION_DENIED, f"{method} needs an admin token")
        return continuation(details)


def _refuse(handler: Any, code: grpc.StatusCode, message: str) -> Any:
    """A handler of the same kind as ``handler`` (so the request is read the same way) that refuses."""
    if handler is None:
        return None

    def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    kind = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return kind(refuse, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)  # fmt: skip
