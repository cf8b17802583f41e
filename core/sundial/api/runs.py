"""RunService: run history, attempts, logs, and a live stream of changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import grpc

from ..run import RunStatus
from ..v1 import runs_pb2, runs_pb2_grpc
from . import requests as rq
from .context import Servicer
from .convert import attempt_message, log_message, page, read_page_token, run_message
from .errors import rpc, stream

WATCH_POLL_SECONDS = 0.5
# a change committed a moment after a poll may carry an earlier time: each poll looks this far back
WATCH_OVERLAP = timedelta(seconds=2)
WATCH_BATCH = 1000


class RunServicer(Servicer, runs_pb2_grpc.RunServiceServicer):
    @rpc
    def ListRuns(self, request: Any, context: grpc.ServicerContext) -> runs_pb2.ListRunsResponse:
        args = rq.load(rq.ListRuns, request)
        size = rq.page_size(args.get("page_size"), self.api.max_page_size)
        before = read_page_token(args["page_token"], (datetime, int)) if args.get("page_token") else None
        found = self.api.store.run_page(
            job_id=args.get("job_id"), statuses=[RunStatus(s) for s in args["statuses"]],
            start=args.get("start"), end=args.get("end"), before=before, limit=size + 1,
        )  # fmt: skip
        shown, token = page(found, size, lambda run: (run.scheduled_at, run.id))
        return runs_pb2.ListRunsResponse(runs=[run_message(r) for r in shown], next_page_token=token)

    @rpc
    def GetRun(self, request: Any, context: grpc.ServicerContext) -> runs_pb2.RunDetail:
        run_id = rq.load(rq.RunRef, request)["id"]
        run = self.api.store.get_run(run_id)
        attempts = self.api.store.attempts(run_id)
        return runs_pb2.RunDetail(run=run_message(run), attempts=[attempt_message(a) for a in attempts])

    @rpc
    def GetRunLogs(self, request: Any, context: grpc.ServicerContext) -> runs_pb2.GetRunLogsResponse:
        run_id = rq.load(rq.RunRef, request)["id"]
        self.api.store.get_run(run_id)  # NOT_FOUND rather than an empty list for a run that never was
        return runs_pb2.GetRunLogsResponse(lines=[log_message(line) for line in self.api.store.run_logs(run_id)])

    @stream
    def WatchRuns(self, request: Any, context: grpc.ServicerContext) -> Iterator[runs_pb2.Run]:
        args = rq.load(rq.WatchRuns, request)
        statuses = [RunStatus(s) for s in args["statuses"]]
        store = self.api.store
        cursor = store.now()
        seen: set[tuple[int, datetime | None]] = set()
        # polling the store, not this process's events: runs change in every worker, anywhere
        while context.is_active() and not self.api.stopping.is_set():
            started = store.now()
            changed = store.runs_changed(
                cursor - WATCH_OVERLAP, job_id=args.get("job_id"), statuses=statuses, limit=WATCH_BATCH
            )
            for run in changed:
                if (run.id, run.updated_at) not in seen:
                    yield run_message(run)
            seen = {(run.id, run.updated_at) for run in changed}
            full = len(changed) == WATCH_BATCH and changed[-1].updated_at is not None
            cursor = changed[-1].updated_at if full else started  # type: ignore[assignment]
            if not full:
                self.api.stopping.wait(WATCH_POLL_SECONDS)
