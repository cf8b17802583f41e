"""Errors to gRPC statuses, in one place.

grpcio turns an exception escaping a servicer into UNKNOWN with the
exception's text: every servicer method is wrapped by ``rpc`` so that never
happens. An error Sundial does not expect is logged with an id and answered
INTERNAL with a generic message naming that id, never with its text.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from ..errors import AlreadyExists, Conflict, NotFound, Refused, StoreError, SundialError, ValidationError

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


class ApiError(SundialError):
    """An error the API answers with a given status (a page too large, a missing token)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        super().__init__(message)


_REFUSED = {"forged": grpc.StatusCode.UNAUTHENTICATED, "expired": grpc.StatusCode.UNAUTHENTICATED,
            "replayed": grpc.StatusCode.ALREADY_EXISTS}  # fmt: skip


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client sees for ``error``."""
    if isinstance(error, ApiError):
        return error.code, str(error)
    if isinstance(error, ValidationError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    if isinstance(error, NotFound):
        return grpc.StatusCode.NOT_FOUND, str(error)
    if isinstance(error, AlreadyExists):
        return grpc.StatusCode.ALREADY_EXISTS, str(error)
    if isinstance(error, Conflict):
        return grpc.StatusCode.FAILED_PRECONDITION, str(error)
    if isinstance(error, Refused):
        return _REFUSED[error.kind], str(error)
    incident = uuid.uuid4().hex[:12]
    if isinstance(error, StoreError):
        # the driver's message can carry SQL and data: it stays in the server's log
        log.error("job store failed (incident %s): %s", incident, error)
        return grpc.StatusCode.UNAVAILABLE, f"the job store is unavailable; incident {incident} is in the server log"
    log.error("internal error (incident %s)", incident, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error; incident {incident} is in the server log"


def rpc(method: F) -> F:
    """Wrap a unary servicer method: any exception is answered with ``status_for``."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as e:
            context.abort(*status_for(e))

    return wrapper  # type: ignore[return-value]


def stream(method: F) -> F:
    """Wrap a server-streaming servicer method likewise."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from method(self, request, context)
        except Exception as e:
            context.abort(*status_for(e))

    return wrapper  # type: ignore[return-value]
