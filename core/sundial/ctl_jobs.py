"""sundialctl's jobs subcommands, one per JobService RPC."""

from __future__ import annotations

from typing import Any

import click
from google.protobuf import json_format

from .ctl import Client, command, each_page, instant, main, payload_json, show_runs
from .v1 import jobs_pb2 as pb

# -- jobs ------------------------------------------------------------------------------


@main.group("jobs")
def jobs_group() -> None:
    """Jobs: create, inspect, change, fire."""


def _trigger_options(function: Any) -> Any:
    for option in reversed([
        click.option("--cron", help="A cron expression (5 fields, or 6 with seconds first)."),
        click.option("--every", type=float, help="An interval in seconds."),
        click.option("--at", "run_at", help="A one-shot time, ISO 8601."),
        click.option("--on-event", help="An event name the job answers."),
        click.option("--timezone", "tz", help="The zone cron is evaluated in (default UTC)."),
        click.option("--spec", "spec_json", help="Any other JobSpec fields, as JSON (e.g. '{\"timeout_seconds\": 60, "
                     "\"retry_policy\": {\"max_retries\": 5}}'); the options above win."),
    ]):  # fmt: skip
        function = option(function)
    return function


def _spec(*, cron: str | None = None, every: float | None = None, run_at: str | None = None,
          on_event: str | None = None, tz: str | None = None, spec_json: str | None = None,
          **fields: Any) -> pb.JobSpec:  # fmt: skip
    """A JobSpec of ``--spec`` and the options given (the others unset)."""
    kinds = {"cron": cron, "interval": every, "date": run_at, "event": on_event}
    chosen = [kind for kind, value in kinds.items() if value is not None]
    if len(chosen) > 1:
        raise click.UsageError("give at most one of --cron, --every, --at, --on-event")
    spec = pb.JobSpec()
    if spec_json:
        try:
            json_format.Parse(spec_json, spec)
        except json_format.ParseError as e:
            raise click.BadParameter(str(e), param_hint="--spec") from e
    spec.MergeFrom(pb.JobSpec(**{k: v for k, v in fields.items() if v is not None}))
    if chosen:
        spec.type = chosen[0]
    if cron is not None:
        spec.cron_expression = cron
    if every is not None:
        spec.interval_seconds = every
    if run_at is not None:
        spec.run_at.CopyFrom(instant(run_at, "--at"))
    if on_event is not None:
        spec.trigger_event = on_event
    if tz is not None:
        spec.timezone = tz
    return spec


def show_jobs(client: Client, found: list[Any], whole: Any = None) -> None:
    client.show(found, {
        "id": lambda j: j.spec.id, "name": lambda j: j.spec.name, "handler": lambda j: j.spec.handler,
        "type": lambda j: j.spec.type,
        "schedule": lambda j: _schedule(client, j.spec),
        "timezone": lambda j: j.spec.timezone, "next_run": lambda j: client.when(j, "next_run_at"),
        "state": lambda j: j.state, "version": lambda j: j.version, "origin": lambda j: j.origin,
    }, whole)  # fmt: skip


def _schedule(client: Client, spec: pb.JobSpec) -> str:
    if spec.type == "interval":
        return f"every {spec.interval_seconds:g}s"
    if spec.type == "date":
        return client.when(spec, "run_at")
    return spec.cron_expression if spec.type == "cron" else f"on {spec.trigger_event}"


@command(jobs_group, "create")
@click.option("--id", "job_id", help="A stable id (default: generated).")
@click.option("--name", required=True)
@click.option("--handler", required=True, help="A registered handler, e.g. sundial.log_message.")
@_trigger_options
@click.option("--payload", help="The payload template, a JSON object.")
@click.option("--queue")
@click.option("--paused", is_flag=True, default=None, help="Create it paused.")
def jobs_create(client: Client, job_id: str | None, payload: str | None, **options: Any) -> None:
    """Create a job."""
    spec = _spec(id=job_id, payload_json=payload_json(payload), **options)
    job = client.call("jobs", "CreateJob", pb.CreateJobRequest(job=spec))
    show_jobs(client, [job], job)


@command(jobs_group, "get")
@click.argument("job_id")
def jobs_get(client: Client, job_id: str) -> None:
    """Show a job."""
    job = client.call("jobs", "GetJob", pb.GetJobRequest(id=job_id))
    show_jobs(client, [job], job)


@command(jobs_group, "list")
@click.option("--plugin")
@click.option("--state", type=click.Choice(["enabled", "paused", "parked", "disabled"]))
@click.option("--handler")
@click.option("--queue")
@click.option("--limit", type=int, help="At most this many (default: every page).")
@click.option("--page-size", type=int, default=0)
def jobs_list(client: Client, limit: int | None, page_size: int, **filters: Any) -> None:
    """List jobs, following page tokens."""
    request = {k: v for k, v in filters.items() if v}
    found, _ = each_page(
        lambda token: client.call("jobs", "ListJobs", pb.ListJobsRequest(page_token=token, page_size=page_size,
                                                                          **request)),
        "jobs", limit,
    )  # fmt: skip
    show_jobs(client, found)


@command(jobs_group, "update")
@click.argument("job_id")
@click.option("--version", type=int, help="The version last seen: refused if the job changed since.")
@click.option("--name")
@click.option("--handler")
@_trigger_options
@click.option("--payload", help="The payload template, a JSON object.")
@click.option("--queue")
@click.option("--clear", "clear_fields", multiple=True, help="An optional field to reset, e.g. ends_at.")
def jobs_update(client: Client, job_id: str, version: int | None, payload: str | None, clear_fields: tuple[str, ...],
                **options: Any) -> None:  # fmt: skip
    """Change some fields of a job."""
    request = pb.UpdateJobRequest(id=job_id, changes=_spec(payload_json=payload_json(payload), **options),
                                  clear_fields=clear_fields)  # fmt: skip
    if version is not None:
        request.version = version
    job = client.call("jobs", "UpdateJob", request)
    show_jobs(client, [job], job)


@command(jobs_group, "delete")
@click.argument("job_id")
def jobs_delete(client: Client, job_id: str) -> None:
    """Delete a job and its history."""
    client.call("jobs", "DeleteJob", pb.DeleteJobRequest(id=job_id))
    client.show([], {}, pb.DeleteJobResponse()) if client.as_json else click.echo(f"deleted {job_id}")


def _pause_resume(name: str, method: str, help_text: str) -> None:
    @command(jobs_group, name, help=help_text)
    @click.argument("job_id")
    @click.option("--version", type=int, help="The version last seen: refused if the job changed since.")
    def action(client: Client, job_id: str, version: int | None) -> None:
        request = pb.JobVersionRequest(id=job_id)
        if version is not None:
            request.version = version
        job = client.call("jobs", method, request)
        show_jobs(client, [job], job)


_pause_resume("pause", "PauseJob", "Pause a job.")
_pause_resume("resume", "ResumeJob", "Resume a paused job.")


@command(jobs_group, "trigger")
@click.argument("job_id")
@click.option("--payload", help="A JSON object used instead of the job's payload template.")
def jobs_trigger(client: Client, job_id: str, payload: str | None) -> None:
    """Run a job now, outside its schedule."""
    request = pb.TriggerJobRequest(id=job_id)
    if payload is not None:
        request.payload_json = payload_json(payload)  # type: ignore[assignment]
    run = client.call("jobs", "TriggerJob", request)
    show_runs(client, [run], run)


@command(jobs_group, "preview")
@click.argument("job_id", required=False)
@_trigger_options
@click.option("--count", type=int, default=10, show_default=True)
@click.option("--after", help="Start after this time (default: now).")
def jobs_preview(client: Client, job_id: str | None, count: int, after: str | None, **trigger: Any) -> None:
    """The next fire times of JOB_ID, or of a trigger given by options, in UTC and in the job's zone."""
    request = pb.PreviewFireTimesRequest(count=count)
    if job_id:
        request.job_id = job_id
    else:
        request.trigger.CopyFrom(_spec(**trigger))
    if after:
        request.after.CopyFrom(instant(after, "--after"))
    answer = client.call("jobs", "PreviewFireTimes", request)
    client.show(answer.fire_times, {"utc": lambda f: f.at.ToDatetime().isoformat() + "Z",
                                    answer.timezone or "local": lambda f: f.local,
                                    "yours": lambda f: client.when(f, "at")}, answer)  # fmt: skip


@command(jobs_group, "backfill")
@click.argument("job_id")
@click.option("--start", required=True, help="ISO 8601.")
@click.option("--end", required=True, help="ISO 8601, at most now.")
@click.option("--payload", help="A JSON object used instead of the job's payload template.")
def jobs_backfill(client: Client, job_id: str, start: str, end: str, payload: str | None) -> None:
    """Create runs for the fire times in a past range that have no record yet."""
    request = pb.BackfillJobRequest(id=job_id, start=instant(start, "--start"), end=instant(end, "--end"))
    if payload is not None:
        request.payload_json = payload_json(payload)  # type: ignore[assignment]
    answer = client.call("jobs", "BackfillJob", request)
    if not client.as_json:
        click.echo(f"{len(answer.created)} runs created, {answer.already_recorded} fire times recorded already")
    show_runs(client, list(answer.created), answer)


@command(jobs_group, "history")
@click.argument("job_id")
@click.option("--start", help="ISO 8601 (default: a day before --end).")
@click.option("--end", help="ISO 8601 (default: now).")
@click.option("--limit", "page_size", type=int, default=0)
def jobs_history(client: Client, job_id: str, start: str | None, end: str | None, page_size: int) -> None:
    """Each fire time of a job: its run, or why there is none."""
    request = pb.GetFireHistoryRequest(id=job_id, page_size=page_size, start=instant(start, "--start"),
                                       end=instant(end, "--end"))  # fmt: skip
    answer = client.call("jobs", "GetFireHistory", request)
    client.show(answer.fires, {
        "fire_time": lambda f: client.when(f, "fire_time"),
        "run": lambda f: f.run.id if f.HasField("run") else "-",
        "status": lambda f: f.run.status if f.HasField("run") else "-",
        "why": lambda f: (f.run.reason or f.run.error) if f.HasField("run") else f.why_none,
    }, answer)  # fmt: skip
