"""SchedulerService: what the schedulers sharing the store are doing, and pausing dispatch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc

from ..scheduler import ALIVE_SECONDS
from ..v1 import scheduler_pb2, scheduler_pb2_grpc
from . import requests as rq
from .context import ApiContext, Servicer
from .convert import timestamp
from .errors import rpc

DEFAULT_NEXT_RUNS = 10


def scheduler_status(api: ApiContext, next_runs: int = DEFAULT_NEXT_RUNS) -> scheduler_pb2.SchedulerStatus:
    """The status message, read from the store (so it is the same whichever API process answers)."""
    store = api.store
    now = api.clock.now()
    pauses = store.pauses()
    seen = store.schedulers(now - timedelta(seconds=ALIVE_SECONDS))
    states = store.job_states()
    paused = any(p.queue is None for p in pauses)
    return scheduler_pb2.SchedulerStatus(
        state="paused" if paused else "running" if seen else "stopped",
        pauses=[
            scheduler_pb2.QueuePause(queue=p.queue or "", reason=p.reason or "", paused_at=timestamp(p.paused_at))
            for p in pauses
        ],
        job_count=sum(states.values()),
        jobs_by_state=states,
        next_runs=[scheduler_pb2.NextRun(job_id=j, at=timestamp(at)) for j, at in store.next_runs(next_runs)],
        backpressure=scheduler_pb2.Backpressure(
            active=any(s.backpressure for s in seen),
            outbox_lag_seconds=round(store.outbox_lag(), 3),
            pending_due=store.pending_due(),
        ),
        coordination="cooperative",
        schedulers=[
            scheduler_pb2.SchedulerProcess(
                name=s.name,
                started_at=timestamp(s.started_at),
                last_seen_at=timestamp(s.last_seen_at),
                backpressure=s.backpressure,
            )
            for s in seen
        ],  # fmt: skip
    )


class SchedulerServicer(Servicer, scheduler_pb2_grpc.SchedulerServiceServicer):
    @rpc
    def GetSchedulerStatus(self, request: Any, context: grpc.ServicerContext) -> scheduler_pb2.SchedulerStatus:
        args = rq.load(rq.SchedulerStatus, request)
        return scheduler_status(self.api, args.get("next_runs") or DEFAULT_NEXT_RUNS)

    @rpc
    def PauseScheduler(self, request: Any, context: grpc.ServicerContext) -> scheduler_pb2.SchedulerStatus:
        args = rq.load(rq.Pause, request)
        self.api.store.pause_dispatch(args.get("queue"), args.get("reason"))
        return scheduler_status(self.api)

    @rpc
    def ResumeScheduler(self, request: Any, context: grpc.ServicerContext) -> scheduler_pb2.SchedulerStatus:
        args = rq.load(rq.Pause, request)
        # resuming what is not paused is no error: a script may resume to be sure
        self.api.store.resume_dispatch(args.get("queue"))
        self.api.wake()
        return scheduler_status(self.api)
