"""DeadLetterService, EventService, MetricsService and PluginService."""

from __future__ import annotations

import importlib.metadata
import uuid
from typing import Any

import grpc

from ..store.admin import JobStats
from ..v1 import operations_pb2 as pb
from ..v1 import operations_pb2_grpc as pb_grpc
from . import requests as rq
from .context import Servicer
from .convert import page, read_page_token, run_message, task_metrics_message
from .errors import ApiError, rpc


class DeadLetterServicer(Servicer, pb_grpc.DeadLetterServiceServicer):
    @rpc
    def ListDeadLetters(self, request: Any, context: grpc.ServicerContext) -> pb.ListDeadLettersResponse:
        args = rq.load(rq.ListDeadLetters, request)
        size = rq.page_size(args.get("page_size"), self.api.max_page_size)
        return pb.ListDeadLettersResponse(
            runs=[run_message(r) for r in self.api.dead_letters.runs(job_id=args.get("job_id"), limit=size)]
        )

    @rpc
    def ReplayDeadLetters(self, request: Any, context: grpc.ServicerContext) -> pb.ReplayDeadLettersResponse:
        return pb.ReplayDeadLettersResponse(run_ids=self.api.dead_letters.replay(**_chosen(request)))

    @rpc
    def PurgeDeadLetters(self, request: Any, context: grpc.ServicerContext) -> pb.PurgeDeadLettersResponse:
        return pb.PurgeDeadLettersResponse(purged=self.api.dead_letters.purge(**_chosen(request)))


def _chosen(request: Any) -> dict[str, Any]:
    """The run ids, job or everything a DeadLetterSelection names (exactly one), as ``DeadLetters`` takes them."""
    args = rq.load(rq.DeadLetterSelection, request)
    return {"run_ids": args["run_ids"], "job_id": args.get("job_id"), "everything": args.get("all", False)}


class EventServicer(Servicer, pb_grpc.EventServiceServicer):
    @rpc
    def PublishEvent(self, request: Any, context: grpc.ServicerContext) -> pb.PublishEventResponse:
        if self.api.verifier is None:
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION, "events are not accepted: event_signing_secret is not set"
            )
        args = rq.load(rq.PublishEvent, request)
        event = self.api.verifier.verify(args["timestamp"], args["body"], args["signature"])
        event_id = event.get("id") or uuid.uuid4().hex
        runs = self.api.control.emit(event["event"], event["payload"], event_id)
        return pb.PublishEventResponse(event_id=event_id, runs=[run_message(r) for r in runs])


class MetricsServicer(Servicer, pb_grpc.MetricsServiceServicer):
    @rpc
    def GetMetrics(self, request: Any, context: grpc.ServicerContext) -> pb.GetMetricsResponse:
        args = rq.load(rq.GetMetrics, request)
        store = self.api.store
        token = ""
        if args["job_ids"]:
            rq.page_size(len(args["job_ids"]), self.api.max_page_size, "job_ids")
            jobs = [store.get_job(job_id) for job_id in dict.fromkeys(args["job_ids"])]
        else:
            size = rq.page_size(args.get("page_size"), self.api.max_page_size)
            after = read_page_token(args["page_token"], (str,))[0] if args.get("page_token") else None
            jobs, token = page(store.find_jobs(after_id=after, limit=size + 1), size, lambda job: (job.id,))
        stats = store.job_stats([job.id for job in jobs])
        tasks = [task_metrics_message(job, stats.get(job.id, JobStats())) for job in jobs]
        depths = store.queue_depths()
        queues = [
            pb.QueueDepth(
                queue=q, **{k: depths.get(q, {}).get(k, 0) for k in ("pending", "queued", "running", "retrying")}
            )
            for q in sorted(set(depths) | set(self.api.settings.queues))
        ]
        return pb.GetMetricsResponse(
            tasks=tasks, queues=queues, outbox_lag_seconds=round(store.outbox_lag(), 3),
            dead_letters=store.dead_count(), next_page_token=token,
        )  # fmt: skip


class PluginServicer(Servicer, pb_grpc.PluginServiceServicer):
    @rpc
    def ListPlugins(self, request: Any, context: grpc.ServicerContext) -> pb.ListPluginsResponse:
        rq.load(rq.ListPlugins, request)
        plugins, registry = self.api.plugins, self.api.registry
        loaded = set(plugins.names())
        disabled = set(self.api.settings.plugins_disabled)
        failures: dict[str, list[str]] = {}
        for failure in plugins.failures:
            failures.setdefault(failure.name, []).append(failure.error)
        handlers: dict[str | None, list[str]] = {}
        for name in registry.names():
            info = registry.get(name)
            handlers.setdefault(info.plugin if info else None, []).append(name)
        versions = _versions()
        return pb.ListPluginsResponse(
            plugins=[
                pb.Plugin(
                    name=name,
                    version=versions.get(name, ""),
                    state="loaded" if name in loaded else "disabled" if name in disabled else "failed",
                    handlers=handlers.get(name, []),
                    failures=failures.get(name, []),
                )  # fmt: skip
                for name in sorted(loaded | disabled | set(failures))
            ]
        )


def _versions() -> dict[str, str]:
    """Each plugin entry point's distribution version; the built-in plugin is Sundial's own."""
    versions = {"builtin": importlib.metadata.version("sundial")}
    for ep in importlib.metadata.entry_points(group="sundial.plugins"):
        if ep.dist is not None:
            versions.setdefault(ep.name, ep.dist.version)
    return versions
