"""RunService, SchedulerService, DeadLetterService, MetricsService and PluginService over a real channel."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from apisupport import READ_TOKEN, Api, code_of
from sundial.api.convert import timestamp
from sundial.run import RunStatus
from sundial.store.rows import Outcome
from sundial.store.sqlalchemy import SQLStore
from sundial.v1 import jobs_pb2, runs_pb2, scheduler_pb2
from sundial.v1 import operations_pb2 as ops
from support import wait_for


@pytest.fixture
def api(store: SQLStore, tmp_path: Path) -> Iterator[Api]:
    server = Api(store, tmp_path)
    yield server
    server.close()


def job(api: Api, job_id: str, queue: str = "default", **fields: object) -> None:
    spec = jobs_pb2.JobSpec(id=job_id, name=job_id, handler="t.record", type="interval", interval_seconds=60,
                            queue=queue, **fields)  # fmt: skip
    api.call("JobService/CreateJob", jobs_pb2.CreateJobRequest(job=spec))


def attempt(api: Api, run_id: int, *, ok: bool, error: str | None = None, seconds: float = 0.5) -> None:
    """One attempt of ``run_id`` by a worker, as the worker records it."""
    held = api.store.claim("w1", 30, run_id=run_id, statuses=(RunStatus.PENDING, RunStatus.QUEUED))
    assert held is not None
    now = api.store.now()
    logs = [(now, "INFO", f"attempt of run {run_id}")]
    api.store.finish(held, Outcome(ok=ok, error=error, duration_seconds=seconds, logs=logs, started_at=now))


def trigger(api: Api, job_id: str) -> int:
    return api.call("JobService/TriggerJob", jobs_pb2.TriggerJobRequest(id=job_id)).id


def test_runs_list_get_logs_with_filters_and_pages(api: Api) -> None:
    job(api, "a")
    job(api, "b")
    ids = [trigger(api, "a") for _ in range(3)] + [trigger(api, "b")]
    attempt(api, ids[0], ok=True)
    listed = api.call("RunService/ListRuns", runs_pb2.ListRunsRequest(job_id="a", page_size=2), token=READ_TOKEN)
    assert len(listed.runs) == 2 and listed.next_page_token
    rest = api.call("RunService/ListRuns", runs_pb2.ListRunsRequest(job_id="a", page_token=listed.next_page_token))
    assert sorted(r.id for r in [*listed.runs, *rest.runs]) == ids[:3] and not rest.next_page_token
    done = api.call("RunService/ListRuns", runs_pb2.ListRunsRequest(statuses=["succeeded"]))
    assert [r.id for r in done.runs] == [ids[0]]
    first = api.store.get_run(ids[0]).scheduled_at
    until = timestamp(first + timedelta(microseconds=1))
    ranged = api.call("RunService/ListRuns", runs_pb2.ListRunsRequest(job_id="a", end=until))
    assert [r.id for r in ranged.runs] == [ids[0]]
    detail = api.call("RunService/GetRun", runs_pb2.GetRunRequest(id=ids[0]))
    assert detail.run.status == "succeeded" and [a.status for a in detail.attempts] == ["succeeded"]
    logs = api.call("RunService/GetRunLogs", runs_pb2.GetRunLogsRequest(id=ids[0]))
    assert [line.message for line in logs.lines] == [f"attempt of run {ids[0]}"]
    code, _ = code_of(lambda: api.call("RunService/GetRunLogs", runs_pb2.GetRunLogsRequest(id=999_999)))
    assert code == grpc.StatusCode.NOT_FOUND
    code, message = code_of(lambda: api.call("RunService/ListRuns", runs_pb2.ListRunsRequest(statuses=["weird"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "statuses" in message


def test_watch_streams_runs_as_they_change(api: Api) -> None:
    job(api, "w")
    seen: list[runs_pb2.Run] = []
    stream = api.channel.unary_stream(
        "/sundial.v1.RunService/WatchRuns",
        request_serializer=runs_pb2.WatchRunsRequest.SerializeToString,
        response_deserializer=runs_pb2.Run.FromString,
    )(runs_pb2.WatchRunsRequest(job_id="w"), metadata=[("authorization", f"Bearer {READ_TOKEN}")])

    def read() -> None:
        try:
            for run in stream:
                seen.append(run)
        except grpc.RpcError:
            pass  # cancelled at the end of the test

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    run_id = trigger(api, "w")
    wait_for(lambda: any(r.id == run_id and r.status == "pending" for r in seen), timeout=10)
    attempt(api, run_id, ok=True)
    wait_for(lambda: any(r.id == run_id and r.status == "succeeded" for r in seen), timeout=10)
    stream.cancel()
    reader.join(5)
    assert len([r for r in seen if r.status == "succeeded"]) == 1  # each change once


def test_scheduler_pause_holds_scheduling_and_dispatch_until_resumed(api: Api) -> None:
    engine = api.engine
    status = api.call("SchedulerService/GetSchedulerStatus", scheduler_pb2.GetSchedulerStatusRequest())
    assert (status.state, status.coordination, list(status.schedulers)) == ("stopped", "cooperative", [])
    engine.scheduler._step()  # one pass and a heartbeat, as the scheduler role runs them
    status = api.call("SchedulerService/GetSchedulerStatus", scheduler_pb2.GetSchedulerStatusRequest(next_runs=1))
    assert status.state == "running" and [s.name for s in status.schedulers] == [engine.scheduler.name]
    assert len(status.next_runs) == 1 and status.job_count >= 1

    job(api, "mailer", queue="mail")
    job(api, "plain")
    paused = api.call("SchedulerService/PauseScheduler", scheduler_pb2.PauseSchedulerRequest(queue="mail", reason="x"))
    assert [(p.queue, p.reason) for p in paused.pauses] == [("mail", "x")] and paused.state == "running"
    mail_run, plain_run = trigger(api, "mailer"), trigger(api, "plain")
    due = api.store.now() + timedelta(minutes=2)
    engine.scheduler.tick(due)  # both jobs are due by then; only the unpaused queue's is scheduled
    assert {r.job_id for r in api.store.list_runs(limit=100)} >= {"plain"}
    assert [r.id for r in api.store.list_runs(job_id="mailer")] == [mail_run]
    outbox = [r.id for r in api.store.outbox(100)]
    assert plain_run in outbox and mail_run not in outbox
    assert api.store.claim_many("w", 30, queues=("mail",), statuses=(RunStatus.PENDING,), limit=10) == []

    everything = api.call("SchedulerService/PauseScheduler", scheduler_pb2.PauseSchedulerRequest())
    assert everything.state == "paused" and api.store.outbox(100) == []
    api.call("SchedulerService/ResumeScheduler", scheduler_pb2.ResumeSchedulerRequest())
    resumed = api.call("SchedulerService/ResumeScheduler", scheduler_pb2.ResumeSchedulerRequest(queue="mail"))
    assert list(resumed.pauses) == []
    assert mail_run in [r.id for r in api.store.outbox(100)]
    engine.scheduler.tick(due)
    assert len(api.store.list_runs(job_id="mailer")) > 1  # scheduled again


def test_dead_letters_list_replay_and_purge(api: Api) -> None:
    job(api, "doomed", retry_policy=jobs_pb2.RetryPolicy(max_retries=0))
    first, second = trigger(api, "doomed"), trigger(api, "doomed")
    attempt(api, first, ok=False, error="boom")
    attempt(api, second, ok=False, error="bang")
    listed = api.call("DeadLetterService/ListDeadLetters", ops.ListDeadLettersRequest(job_id="doomed"))
    assert sorted(r.id for r in listed.runs) == [first, second] and {r.error for r in listed.runs} == {"boom", "bang"}
    code, message = code_of(lambda: api.call("DeadLetterService/ReplayDeadLetters", ops.DeadLetterSelection()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "run_ids" in message
    replayed = api.call("DeadLetterService/ReplayDeadLetters", ops.DeadLetterSelection(run_ids=[first]))
    assert list(replayed.run_ids) == [first] and api.store.get_run(first).status is RunStatus.PENDING
    purged = api.call("DeadLetterService/PurgeDeadLetters", ops.DeadLetterSelection(all=True))
    assert purged.purged == 1
    assert list(api.call("DeadLetterService/ListDeadLetters", ops.ListDeadLettersRequest()).runs) == []


def test_metrics_per_job_and_queue_depths(api: Api) -> None:
    job(api, "m")
    ok, bad, waiting = trigger(api, "m"), trigger(api, "m"), trigger(api, "m")
    attempt(api, ok, ok=True, seconds=1.0)
    attempt(api, bad, ok=False, error="it broke", seconds=3.0)
    answer = api.call("MetricsService/GetMetrics", ops.GetMetricsRequest(job_ids=["m"]), token=READ_TOKEN)
    [task] = answer.tasks
    assert (task.job_id, task.task_name, task.success_count, task.failure_count) == ("m", "m", 1, 1)
    assert task.avg_execution_seconds == pytest.approx(2.0) and task.last_execution_seconds == pytest.approx(3.0)
    assert task.last_error == "it broke" and task.HasField("last_run") and task.HasField("next_run")
    depth = {q.queue: q for q in answer.queues}["default"]
    assert depth.pending >= 1 and waiting in [r.id for r in api.store.outbox(100)]
    assert answer.outbox_lag_seconds >= 0
    everyone = api.call("MetricsService/GetMetrics", ops.GetMetricsRequest(page_size=1))
    assert len(everyone.tasks) == 1 and everyone.next_page_token
    code, _ = code_of(lambda: api.call("MetricsService/GetMetrics", ops.GetMetricsRequest(job_ids=["nobody"])))
    assert code == grpc.StatusCode.NOT_FOUND


def test_plugins_list_versions_states_and_handlers(api: Api) -> None:
    answer = api.call("PluginService/ListPlugins", ops.ListPluginsRequest(), token=READ_TOKEN)
    plugins = {p.name: p for p in answer.plugins}
    assert plugins["builtin"].state == "loaded" and plugins["builtin"].version
    assert "sundial.log_message" in plugins["builtin"].handlers
    assert plugins["t"].state == "loaded" and "t.record" in plugins["t"].handlers


def test_an_internal_error_is_answered_internal_without_its_text(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(job_id: str) -> None:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(api.store, "get_job", broken)
    code, message = code_of(lambda: api.call("JobService/GetJob", jobs_pb2.GetJobRequest(id="x")))
    assert code == grpc.StatusCode.INTERNAL and "secret" not in message and "incident" in message
