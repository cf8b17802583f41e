"""JobService: jobs in and out of the store, through ``Control``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc

from .. import history
from ..errors import ValidationError
from ..scheduler import schedule_for
from ..schemas import load_trigger
from ..triggers import compile_trigger
from ..v1 import jobs_pb2, jobs_pb2_grpc
from . import requests as rq
from .context import Servicer
from .convert import (
    job_message,
    job_spec_document,
    json_object,
    page,
    read_page_token,
    run_message,
    timestamp,
)
from .errors import rpc

DEFAULT_PREVIEW = 10


class JobServicer(Servicer, jobs_pb2_grpc.JobServiceServicer):
    @rpc
    def CreateJob(self, request: Any, context: grpc.ServicerContext) -> jobs_pb2.Job:
        args = rq.load(rq.CreateJob, request)
        return job_message(self.api.control.add_job(job_spec_document(args["job"], "job")))

    @rpc
    def GetJob(self, request: Any, context: grpc.ServicerContext) -> jobs_pb2.Job:
        return job_message(self.api.store.get_job(rq.load(rq.JobRef, request)["id"]))

    @rpc
    def ListJobs(self, request: Any, context: grpc.ServicerContext) -> jobs_pb2.ListJobsResponse:
        args = rq.load(rq.ListJobs, request)
        size = rq.page_size(args.get("page_size"), self.api.max_page_size)
        after = read_page_token(args["page_token"], (str,))[0] if args.get("page_token") else None
        found = self.api.store.find_jobs(
            plugin=args.get("plugin"), state=args.get("state"), handler=args.get("handler"),
            queue=args.get("queue"), after_id=after, limit=size + 1,
        )  # fmt: skip
        shown, token = page(found, size, lambda job: (job.id,))
        return jobs_pb2.ListJobsResponse(jobs=[job_message(j) for j in shown], next_page_token=token)

    @rpc
    def UpdateJob(self, request: Any, context: grpc.ServicerContext) -> jobs_pb2.Job:
        args = rq.load(rq.UpdateJob, request)
        changes = job_spec_document(args["changes"], "changes")
        changes.update({name: None for name in args["clear_fields"]})
        return job_message(self.api.control.update_job(args["id"], changes, expected_version=args.get("version")))

    @rpc
    def DeleteJob(self, request: Any, context: grpc.ServicerContext) -> jobs_pb2.DeleteJobResponse:
        self.api.control.delete(rq.load(rq.JobRef, request)["id"])
        return jobs_pb2.DeleteJobResponse()

    @rpc
    def PauseJob(self, request: Any, context: grpc.ServicerContext) -> jobs_pb2.Job:
        args = rq.load(rq.JobRef, request)
        return job_message(self.api.control.pause(args["id"], expected_version=args.get("version")))

    @rpc
    def ResumeJob(self, request: Any, context: grpc.ServicerContext) -> jobs_pb2.Job:
        args = rq.load(rq.JobRef, request)
        return job_message(self.api.control.resume(args["id"], expected_version=args.get("version")))

    @rpc
    def TriggerJob(self, request: Any, context: grpc.ServicerContext) -> Any:
        args = rq.load(rq.TriggerJob, request)
        return run_message(self.api.control.run_now(args["id"], _payload(args)))

    @rpc
    def PreviewFireTimes(self, request: Any, context: grpc.ServicerContext) -> jobs_pb2.PreviewFireTimesResponse:
        args = rq.load(rq.Preview, request)
        count = rq.page_size(args.get("count") or DEFAULT_PREVIEW, self.api.max_page_size, "count")
        now = self.api.clock.now()
        if "job_id" in args:
            job = self.api.store.get_job(args["job_id"])
            spec, schedule = job.trigger, schedule_for(job)
        else:
            spec = load_trigger(job_spec_document(args["trigger"], "trigger"))
            schedule = compile_trigger(spec, anchor=now)  # an unsaved interval counts from now
        zone = ZoneInfo(spec.timezone)
        times = history.preview(schedule, args.get("after", now), count)
        return jobs_pb2.PreviewFireTimesResponse(
            timezone=spec.timezone,
            fire_times=[_fire_time(t, zone) for t in times],
        )

    @rpc
    def BackfillJob(self, request: Any, context: grpc.ServicerContext) -> jobs_pb2.BackfillJobResponse:
        args = rq.load(rq.Backfill, request)
        created, recorded = self.api.control.backfill(args["id"], args["start"], args["end"], _payload(args))
        return jobs_pb2.BackfillJobResponse(created=[run_message(r) for r in created], already_recorded=recorded)

    @rpc
    def GetFireHistory(self, request: Any, context: grpc.ServicerContext) -> jobs_pb2.GetFireHistoryResponse:
        args = rq.load(rq.FireHistory, request)
        size = rq.page_size(args.get("page_size"), self.api.max_page_size)
        now = self.api.clock.now()
        end = args.get("end", now)
        start = args.get("start", end - timedelta(days=1))
        if start > end:
            raise ValidationError({"start": ["must not be after end"]})
        job = self.api.store.get_job(args["id"])
        entries, truncated = history.fire_history(self.api.store, job, start, end, size, now)
        fires = [
            jobs_pb2.FireRecord(
                fire_time=timestamp(e.fire_time), why_none=e.why_none or "", run=run_message(e.run) if e.run else None
            )  # fmt: skip
            for e in entries
        ]
        return jobs_pb2.GetFireHistoryResponse(fires=fires, truncated=truncated)


def _payload(args: dict[str, Any]) -> dict[str, Any] | None:
    return json_object(args["payload_json"], "payload_json") if "payload_json" in args else None


def _fire_time(at: datetime, zone: ZoneInfo) -> jobs_pb2.FireTime:
    return jobs_pb2.FireTime(at=timestamp(at.astimezone(UTC)), local=at.astimezone(zone).isoformat())
