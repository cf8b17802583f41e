"""sundialctl's subcommands for runs, the scheduler, dead letters, events, metrics and plugins."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import click

from .ctl import Client, as_dict, command, each_page, instant, main, payload_json, show_runs, watch
from .signing import sign
from .v1 import operations_pb2 as ops
from .v1 import runs_pb2 as runs
from .v1 import scheduler_pb2 as sched

# -- runs ------------------------------------------------------------------------------


@main.group("runs")
def runs_group() -> None:
    """Runs: history, attempts, logs, a live view."""


_STATUSES = click.Choice(["pending", "queued", "running", "succeeded", "retrying", "dead", "skipped"])


@command(runs_group, "list")
@click.option("--job", "job_id")
@click.option("--status", "statuses", type=_STATUSES, multiple=True)
@click.option("--start", help="Fire times from (ISO 8601).")
@click.option("--end", help="Fire times before (ISO 8601).")
@click.option("--limit", type=int, default=20, show_default=True)
def runs_list(client: Client, job_id: str | None, statuses: tuple[str, ...], start: str | None, end: str | None,
              limit: int) -> None:  # fmt: skip
    """Runs and skip records, newest fire time first."""

    def fetch(token: str) -> Any:
        return client.call("runs", "ListRuns", runs.ListRunsRequest(
            job_id=job_id or "", statuses=statuses, start=instant(start, "--start"), end=instant(end, "--end"),
            page_size=min(limit, 1000), page_token=token))  # fmt: skip

    found, _ = each_page(fetch, "runs", limit)
    show_runs(client, found)


@command(runs_group, "get")
@click.argument("run_id", type=int)
def runs_get(client: Client, run_id: int) -> None:
    """A run and its attempts."""
    detail = client.call("runs", "GetRun", runs.GetRunRequest(id=run_id))
    if client.as_json:
        client.show([], {}, detail)
        return
    show_runs(client, [detail.run])
    click.echo("")
    client.show(detail.attempts, {"attempt": lambda a: a.attempt, "worker": lambda a: a.worker,
                                  "status": lambda a: a.status, "started": lambda a: client.when(a, "started_at"),
                                  "seconds": lambda a: round(a.duration_seconds, 3) if a.HasField(
                                      "duration_seconds") else "-", "error": lambda a: a.error})  # fmt: skip


@command(runs_group, "logs")
@click.argument("run_id", type=int)
def runs_logs(client: Client, run_id: int) -> None:
    """What a run's handler logged."""
    answer = client.call("runs", "GetRunLogs", runs.GetRunLogsRequest(id=run_id))
    columns = {"at": lambda line: client.when(line, "at"), "attempt": lambda line: line.attempt,
               "level": lambda line: line.level, "message": lambda line: line.message}  # fmt: skip
    client.show(answer.lines, columns, answer)


@command(runs_group, "watch")
@click.option("--job", "job_id")
@click.option("--status", "statuses", type=_STATUSES, multiple=True)
def runs_watch(client: Client, job_id: str | None, statuses: tuple[str, ...]) -> None:
    """Print runs as they change, until interrupted (one JSON object per line with --json)."""

    def show(run: Any) -> None:
        if client.as_json:
            click.echo(json.dumps(as_dict(run)))
        else:
            click.echo(f"{client.when(run, 'updated_at')}  run {run.id}  {run.job_id}  {run.status}"
                       f"{'  ' + run.error if run.error else ''}")  # fmt: skip

    watch(client, "runs", "WatchRuns", runs.WatchRunsRequest(job_id=job_id or "", statuses=statuses), show)


# -- the scheduler ---------------------------------------------------------------------------


@main.group("scheduler")
def scheduler_group() -> None:
    """The schedulers: status, pause and resume dispatch."""


def show_status(client: Client, status: Any) -> None:
    if client.as_json:
        client.show([], {}, status)
        return
    click.echo(f"state         {status.state} ({status.coordination}: {len(status.schedulers)} schedulers seen)")
    click.echo(f"jobs          {status.job_count} " + str(dict(sorted(status.jobs_by_state.items()))))
    bp = status.backpressure
    click.echo(f"backpressure  {'yes' if bp.active else 'no'}; outbox lag {bp.outbox_lag_seconds}s,"
               f" {bp.pending_due} runs due")  # fmt: skip
    for p in status.pauses:
        click.echo(f"paused        {p.queue or 'every queue'} since {client.when(p, 'paused_at')} {p.reason}")
    click.echo("")
    client.show(status.schedulers, {"scheduler": lambda s: s.name, "started": lambda s: client.when(s, "started_at"),
                                    "last_seen": lambda s: client.when(s, "last_seen_at"),
                                    "backpressure": lambda s: s.backpressure})  # fmt: skip
    click.echo("")
    client.show(status.next_runs, {"next_job": lambda n: n.job_id, "at": lambda n: client.when(n, "at")})


@command(scheduler_group, "status")
@click.option("--next", "next_runs", type=int, default=10, show_default=True)
def scheduler_status(client: Client, next_runs: int) -> None:
    """Running or paused, jobs, next runs, backpressure, the schedulers seen."""
    show_status(client, client.call("scheduler", "GetSchedulerStatus",
                                    sched.GetSchedulerStatusRequest(next_runs=next_runs)))  # fmt: skip


@command(scheduler_group, "pause")
@click.option("--queue", help="Only this queue (default: every queue).")
@click.option("--reason", default="")
def scheduler_pause(client: Client, queue: str | None, reason: str) -> None:
    """Pause scheduling and dispatch, of every queue or one."""
    request = sched.PauseSchedulerRequest(queue=queue or "", reason=reason)
    show_status(client, client.call("scheduler", "PauseScheduler", request))


@command(scheduler_group, "resume")
@click.option("--queue", help="Only this queue (default: the global pause).")
def scheduler_resume(client: Client, queue: str | None) -> None:
    """Lift a pause."""
    show_status(client, client.call("scheduler", "ResumeScheduler", sched.ResumeSchedulerRequest(queue=queue or "")))


# -- dead letters, events, metrics, plugins ------------------------------------------------------


@main.group("dead")
def dead_group() -> None:
    """Dead letters: runs that exhausted their retries."""


@command(dead_group, "list")
@click.option("--job", "job_id")
@click.option("--limit", type=int, default=50, show_default=True)
def dead_list(client: Client, job_id: str | None, limit: int) -> None:
    """Dead runs, newest first."""
    answer = client.call("dead", "ListDeadLetters", ops.ListDeadLettersRequest(job_id=job_id or "", page_size=limit))
    show_runs(client, list(answer.runs), answer)


def _selection(name: str, method: str, help_text: str) -> None:
    @command(dead_group, name, help=help_text)
    @click.argument("run_ids", type=int, nargs=-1)
    @click.option("--job", "job_id", help="Every dead run of this job.")
    @click.option("--all", "everything", is_flag=True, help="Every dead run.")
    def action(client: Client, run_ids: tuple[int, ...], job_id: str | None, everything: bool) -> None:
        answer = client.call("dead", method, ops.DeadLetterSelection(run_ids=run_ids, job_id=job_id or "",
                                                                     all=everything))  # fmt: skip
        if client.as_json:
            client.show([], {}, answer)
        else:
            count = len(answer.run_ids) if hasattr(answer, "run_ids") else answer.purged
            click.echo(f"{count} runs {name}{'ed' if name == 'replay' else 'd'}")


_selection("replay", "ReplayDeadLetters", "Give dead runs a new attempt: RUN_IDS, --job or --all.")
_selection("purge", "PurgeDeadLetters", "Take dead runs off the list (history stays): RUN_IDS, --job or --all.")


@main.group("events")
def events_group() -> None:
    """Events: fire the jobs listening to one."""


@command(events_group, "publish")
@click.argument("event")
@click.option("--payload", default="{}", help="A JSON object merged into each job's payload.")
@click.option("--id", "event_id", help="The event's id; a repeated id fires nothing (default: generated).")
@click.option("--secret", envvar="SUNDIALCTL_EVENT_SECRET", required=True,
              help="The event signing secret (or SUNDIALCTL_EVENT_SECRET).")  # fmt: skip
def events_publish(client: Client, event: str, payload: str, event_id: str | None, secret: str) -> None:
    """Sign EVENT with the shared secret and publish it."""
    body = json.dumps({"event": event, "id": event_id or uuid.uuid4().hex,
                       "payload": json.loads(payload_json(payload) or "{}")}).encode()  # fmt: skip
    stamp = int(time.time())
    request = ops.PublishEventRequest(timestamp=stamp, body=body, signature=sign(secret, stamp, body))
    answer = client.call("events", "PublishEvent", request)
    if not client.as_json:
        click.echo(f"event {answer.event_id}: {len(answer.runs)} runs created")
    show_runs(client, list(answer.runs), answer)


@command(main, "metrics")
@click.option("--job", "job_ids", multiple=True, help="These jobs only.")
@click.option("--limit", type=int, help="At most this many jobs (default: every page).")
def metrics(client: Client, job_ids: tuple[str, ...], limit: int | None) -> None:
    """Per job: successes, failures, execution times, last and next run, last error; queue depths and lag."""

    def fetch(token: str) -> Any:
        return client.call("metrics", "GetMetrics", ops.GetMetricsRequest(job_ids=job_ids, page_token=token))

    tasks, last = each_page(fetch, "tasks", limit)
    if client.as_json:
        whole = ops.GetMetricsResponse()
        whole.CopyFrom(last)
        del whole.tasks[:]
        whole.tasks.extend(tasks)
        whole.next_page_token = ""
        client.show([], {}, whole)
        return
    client.show(tasks, {
        "job": lambda m: m.job_id, "ok": lambda m: m.success_count, "failed": lambda m: m.failure_count,
        "avg_s": lambda m: round(m.avg_execution_seconds, 3), "last_s": lambda m: round(m.last_execution_seconds, 3),
        "last_run": lambda m: client.when(m, "last_run"), "next_run": lambda m: client.when(m, "next_run"),
        "last_error": lambda m: m.last_error,
    })  # fmt: skip
    click.echo("")
    client.show(last.queues, {"queue": lambda q: q.queue, "pending": lambda q: q.pending, "queued": lambda q: q.queued,
                              "running": lambda q: q.running, "retrying": lambda q: q.retrying})  # fmt: skip
    click.echo(f"\noutbox lag {last.outbox_lag_seconds}s, {last.dead_letters} dead letters")


@main.group("plugins")
def plugins_group() -> None:
    """Plugins as the API process loaded them."""


@command(plugins_group, "list")
def plugins_list(client: Client) -> None:
    """Plugins with their version, state, handlers and failures."""
    answer = client.call("plugins", "ListPlugins", ops.ListPluginsRequest())
    client.show(answer.plugins, {"name": lambda p: p.name, "version": lambda p: p.version, "state": lambda p: p.state,
                                 "handlers": lambda p: ",".join(p.handlers),
                                 "failures": lambda p: "; ".join(p.failures)}, answer)  # fmt: skip
