"""The gRPC server: servicers, health, reflection, token auth, TLS and the configured bounds."""

from __future__ import annotations

import logging
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..config import Settings
from ..errors import ConfigError
from ..signing import EventVerifier, NonceStore, RedisNonces, StoreNonces
from ..v1 import (
    jobs_pb2,
    jobs_pb2_grpc,
    operations_pb2,
    operations_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)
from .auth import TokenAuth
from .context import ApiContext
from .jobs import JobServicer
from .operations import DeadLetterServicer, EventServicer, MetricsServicer, PluginServicer
from .runs import RunServicer
from .scheduler import SchedulerServicer

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger(__name__)

SERVICES = (
    jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    runs_pb2.DESCRIPTOR.services_by_name["RunService"].full_name,
    scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name,
    *(s.full_name for s in operations_pb2.DESCRIPTOR.services_by_name.values()),
)


def context_of(engine: Engine) -> ApiContext:
    """The parts of ``engine`` the API serves, with an event verifier when a signing secret is set."""
    settings = engine.settings
    verifier = None
    if settings.event_signing_secret:
        nonces: NonceStore = (
            RedisNonces(settings.redis_url, settings.redis_key_prefix)
            if settings.redis_url
            else StoreNonces(engine.store, engine.clock)
        )
        window = settings.event_replay_window_seconds
        verifier = EventVerifier(settings.event_signing_secret, window, nonces, engine.clock)
    return ApiContext(
        settings=settings,
        store=engine.store,
        control=engine.control,
        dead_letters=engine.dead_letters,
        plugins=engine.plugins,
        registry=engine.registry,
        clock=engine.clock,
        wake=engine.control.on_change,
        verifier=verifier,
    )


class ApiServer:
    """One gRPC server on ``settings.api_addr``; ``port`` is the one bound (useful with port 0)."""

    def __init__(self, api: ApiContext) -> None:
        self.api = api
        settings = api.settings
        limit = settings.api_max_message_bytes
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.api_max_concurrent_calls, thread_name_prefix="sundial-api"),
            interceptors=[TokenAuth(settings.api_tokens, settings.api_admin_tokens)],
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
            # calls beyond this are answered RESOURCE_EXHAUSTED by grpcio itself
            maximum_concurrent_rpcs=settings.api_max_concurrent_calls,
        )
        jobs_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(api), self.server)
        runs_pb2_grpc.add_RunServiceServicer_to_server(RunServicer(api), self.server)
        scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(SchedulerServicer(api), self.server)
        operations_pb2_grpc.add_DeadLetterServiceServicer_to_server(DeadLetterServicer(api), self.server)
        operations_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(api), self.server)
        operations_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsServicer(api), self.server)
        operations_pb2_grpc.add_PluginServiceServicer_to_server(PluginServicer(api), self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for name in ("", *SERVICES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        self.port = self._bind(settings)

    def _bind(self, settings: Settings) -> int:
        try:
            if settings.api_tls_cert and settings.api_tls_key:
                ca = Path(settings.api_tls_client_ca).read_bytes() if settings.api_tls_client_ca else None
                credentials = grpc.ssl_server_credentials(
                    [(Path(settings.api_tls_key).read_bytes(), Path(settings.api_tls_cert).read_bytes())],
                    root_certificates=ca,
                    require_client_auth=ca is not None,
                )
                port = self.server.add_secure_port(settings.api_addr, credentials)
            else:
                port = self.server.add_insecure_port(settings.api_addr)
        except (RuntimeError, OSError) as e:
            raise ConfigError(f"api_addr: cannot listen on {settings.api_addr}: {e}") from e
        if not port:
            raise ConfigError(f"api_addr: cannot listen on {settings.api_addr}")
        return port

    def start(self) -> ApiServer:
        self.server.start()
        settings = self.api.settings
        if not settings.api_tokens and not settings.api_admin_tokens:
            log.warning("api: no api_tokens or api_admin_tokens configured: every call but health is refused")
        log.info("api listening on port %d (%s)", self.port, "TLS" if settings.api_tls_cert else "plaintext")
        return self

    def stop(self, grace_seconds: float = 5.0) -> None:
        """Report NOT_SERVING, end streams, give calls in flight ``grace_seconds``."""
        self.health.enter_graceful_shutdown()
        self.api.stopping.set()
        self.server.stop(grace_seconds).wait()
        nonces = getattr(self.api.verifier, "nonces", None)
        if isinstance(nonces, RedisNonces):
            nonces.close()


def serve(engine: Engine) -> ApiServer:
    """Start the API of ``engine`` (the ``api`` role)."""
    return ApiServer(context_of(engine)).start()
