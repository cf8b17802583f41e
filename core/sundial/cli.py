"""``python server.py``: run Sundial's roles, migrate the store, and manage jobs on it directly."""

from __future__ import annotations

import gc
import json
import logging
import signal
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import wraps
from typing import Any

import click
from sqlalchemy.orm import Session

from .config import Settings, load_settings
from .engine import ROLES, Engine
from .errors import SundialError, ValidationError
from .plugins.manager import call_impl, load_plugins
from .run import RunStatus

log = logging.getLogger("sundial")


def _fail_cleanly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn Sundial's errors into a one-line message and exit status 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SundialError as e:
            raise click.ClickException(f"{e.__class__.__name__}: {e}") from e

    return wrapper


class _Context:
    def __init__(self, config: str | None, extra_plugins: Sequence[tuple[str, object]] = ()) -> None:
        self.config = config
        self.extra_plugins = extra_plugins
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
            logging.basicConfig(
                level=self._settings.log_level,
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                stream=sys.stderr,
            )
            # migrations announce every step at INFO; an operator needs only their outcome
            logging.getLogger("alembic").setLevel(logging.WARNING)
        return self._settings

    def engine(self, *, prepare: bool = True, **overrides: Any) -> Engine:
        """The engine for this command; ``prepare`` readies the store for direct use."""
        settings = replace(self.settings, **overrides) if overrides else self.settings
        plugins = load_plugins(disabled=settings.plugins_disabled, extra=self.extra_plugins)
        engine = Engine(settings, plugins=plugins)
        if prepare:
            engine.prepare()
        return engine


pass_ctx = click.make_pass_decorator(_Context)


@click.group(invoke_without_command=True)
@click.option(
    "--config", "config", envvar="SUNDIAL_CONFIG", type=click.Path(dir_okay=False), help="A TOML settings file."
)
@click.pass_context
@_fail_cleanly
def main(click_ctx: click.Context, config: str | None) -> None:
    """Sundial, a job scheduler. With no command, runs every role in this process."""
    extra = click_ctx.obj.get("extra_plugins", ()) if isinstance(click_ctx.obj, dict) else ()
    click_ctx.obj = _Context(config, extra)
    if click_ctx.invoked_subcommand is None:
        _serve(click_ctx.obj.engine(prepare=False), ROLES)


def run(extra_plugins: Sequence[tuple[str, object]] = (), *, prog_name: str = "server.py") -> None:
    """The command line, with ``extra_plugins`` (name, plugin) registered besides the installed ones.

    For applications that embed Sundial with their own plugins rather than
    installing them as entry points.
    """
    main(prog_name=prog_name, obj={"extra_plugins": list(extra_plugins)})


def _serve(engine: Engine, roles: Iterable[str]) -> None:
    signals: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        signals.append(signum)
        if len(signals) > 1:
            log.warning("second signal: in-flight runs go back to the queue now")
        engine.request_stop(hurry=len(signals) > 1)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    report = engine.start(roles)
    # what start loaded (modules, plugins, compiled queries) lives as long as the process: moved out
    # of the collector's sight, a full collection costs a few milliseconds instead of a 50 to 100 ms
    # pause of every thread, which runs due at that moment would wear as lag
    gc.collect()
    gc.freeze()
    for failure in report.plugin_failures:
        log.error("plugin %s is not loaded: %s", failure.name, failure.error)
    if report.default_jobs_added:
        log.info("added default jobs: %s", ", ".join(report.default_jobs_added))
    log.info(
        "sundial running (%s) on %s with %s; handlers: %s",
        ", ".join(roles),
        engine.store.dialect,
        "the embedded broker" if engine.settings.embedded else "RabbitMQ",
        ", ".join(engine.registry.names()),
    )
    engine.wait()
    log.info("shutting down")
    engine.stop()
    log.info("stopped")


@main.command("all")
@pass_ctx
@_fail_cleanly
def all_roles(ctx: _Context) -> None:
    """Run the scheduler, a worker and the API in this process."""
    _serve(ctx.engine(prepare=False), ROLES)


@main.command()
@pass_ctx
@_fail_cleanly
def api(ctx: _Context) -> None:
    """Serve only the gRPC control plane (at api_addr)."""
    _serve(ctx.engine(prepare=False), ("api",))


@main.command()
@pass_ctx
@_fail_cleanly
def demo(ctx: _Context) -> None:
    """Seed the plugins' sample data, run every plugin's default job once, then run every role.

    Feature switches and a contest round's close are planned a minute or two
    ahead, so one-shot jobs are seen firing too. The backup job writes to
    ./backups.
    """
    engine = ctx.engine()
    seeded = seed_demo(engine)
    log.info("demo data from %s; see `python server.py runs list` and `runs logs ID`", ", ".join(seeded) or "no plugin")
    _serve(engine, ROLES)


def seed_demo(engine: Engine) -> list[str]:
    """Ask each plugin for sample data, then run every plugin's scheduled default jobs now; return who seeded."""
    seeded: list[str] = []
    now = engine.clock.now()
    for impl in engine.plugins.hook.sundial_demo_data.get_hookimpls():
        try:
            # a session per plugin: one plugin's bad rows are rolled back alone
            with Session(engine.domain) as session, session.begin():
                call_impl(impl, {"session": session, "now": now, "control": engine.control})
        except Exception as e:
            engine.plugins.fail(impl.plugin_name, "demo_data", e)
            continue
        seeded.append(impl.plugin_name)
    for job in engine.store.list_jobs(limit=100_000):
        if job.origin is not None and job.type != "event":
            engine.control.run_now(job.id)
    return seeded


@main.command()
@pass_ctx
@_fail_cleanly
def scheduler(ctx: _Context) -> None:
    """Run only the scheduler (any number may share a store)."""
    _serve(ctx.engine(prepare=False), ("scheduler",))


@main.command()
@click.option("--queues", help="Comma-separated queue names to consume.")
@click.option("--concurrency", type=click.IntRange(1, 1024), help="Runs executed at once.")
@pass_ctx
@_fail_cleanly
def worker(ctx: _Context, queues: str | None, concurrency: int | None) -> None:
    """Run only a worker."""
    overrides: dict[str, Any] = {}
    if queues:
        overrides["queues"] = tuple(q.strip() for q in queues.split(",") if q.strip())
    if concurrency:
        overrides["concurrency"] = concurrency
    _serve(ctx.engine(prepare=False, **overrides), ("worker",))


@main.command()
@pass_ctx
@_fail_cleanly
def migrate(ctx: _Context) -> None:
    """Create or upgrade the job store's schema."""
    click.echo(f"job store at revision {ctx.engine(prepare=False).store.migrate()}")


@main.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@_fail_cleanly
def status(ctx: _Context, as_json: bool) -> None:
    """How the store looks: runs by status, outbox lag, parked jobs, dead letters, plugin failures."""
    engine = ctx.engine()
    report = {
        "store": engine.store.dialect,
        "broker": "embedded" if engine.settings.embedded else "rabbitmq",
        "runs": engine.store.counts(),
        "outbox_lag_seconds": round(engine.store.outbox_lag(), 3),
        **queue_report(engine),
        **({"redis": "ok" if engine.locks.ping() else f"unreachable: {engine.locks.problem}"} if engine.locks else {}),
        "parked_jobs": {job.id: job.parked_reason for job in engine.store.list_jobs(parked=True)},
        "dead_letters": engine.store.dead_count(),
        "plugin_failures": {f.name: f.error for f in engine.plugins.failures},
        "plugins": engine.plugins.status(),
        "handlers": engine.registry.names(),
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        click.echo(f"{key:20} {value}")


def queue_report(engine: Engine) -> dict[str, Any]:
    """Work queue depths against their limit, and whether a full one holds runs back (backpressure)."""
    queues = sorted({*engine.settings.queues, *engine.store.queue_depths()})
    try:
        depths = engine.broker.depths(queues)
    except SundialError as e:
        return {"work_queues": f"unreadable: {e}", "backpressure": "unknown"}
    if not depths:
        return {}  # the embedded broker: the store is the queue, runs above say it all
    limit = engine.settings.queue_max_length
    return {
        "work_queues": {name: f"{depth}/{limit}" for name, depth in depths.items()},
        "backpressure": any(depth >= limit for depth in depths.values()),
    }


# -- managing jobs on the store directly ---------------------------------------


@main.group()
def jobs() -> None:
    """Define and manage jobs."""


@jobs.command("add")
@click.option("--id", "job_id", help="A stable id (default: generated).")
@click.option("--name", required=True)
@click.option("--handler", required=True, help="A registered handler, e.g. sundial.log_message.")
@click.option("--cron", help="A cron expression (5 fields, or 6 with seconds first).")
@click.option("--every", type=float, help="An interval in seconds.")
@click.option("--at", "run_at", help="A one-shot time, ISO 8601 (e.g. 2026-12-24T09:00:00+01:00).")
@click.option("--on-event", help="An event name the job answers.")
@click.option("--timezone", "tz", default="UTC", show_default=True, help="The zone cron is evaluated in.")
@click.option("--payload", default="{}", help="The payload template, a JSON object.")
@click.option("--max-retries", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the stored job as JSON.")
@pass_ctx
@_fail_cleanly
def jobs_add(ctx: _Context, job_id: str | None, name: str, handler: str, cron: str | None, every: float | None,
             run_at: str | None, on_event: str | None, tz: str, payload: str, max_retries: int | None,
             as_json: bool) -> None:  # fmt: skip
    """Add a job."""
    triggers = {"cron": cron, "interval": every, "date": run_at, "event": on_event}
    chosen = [kind for kind, value in triggers.items() if value is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --cron, --every, --at, --on-event")
    kind = chosen[0]
    field = {"cron": "cron_expression", "interval": "interval_seconds", "date": "run_at", "event": "trigger_event"}[
        kind
    ]
    try:
        payload_doc = json.loads(payload)
    except json.JSONDecodeError as e:
        raise ValidationError({"payload_template": [f"is not JSON: {e}"]}) from e
    document: dict[str, Any] = {"name": name, "handler": handler, "type": kind, field: triggers[kind],
                                "timezone": tz, "payload_template": payload_doc}  # fmt: skip
    if job_id:
        document["id"] = job_id
    if max_retries is not None:
        document["retry_policy"] = {"max_retries": max_retries}
    job = ctx.engine().control.add_job(document)
    _print_jobs([job], as_json)


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@_fail_cleanly
def jobs_list(ctx: _Context, as_json: bool) -> None:
    """List jobs."""
    _print_jobs(ctx.engine().store.list_jobs(), as_json)


def _job_action(name: str, doc: str, action: Callable[[Engine, str], Any]) -> None:
    @jobs.command(name, help=doc)
    @click.argument("job_id")
    @pass_ctx
    @_fail_cleanly
    def command(ctx: _Context, job_id: str) -> None:
        result = action(ctx.engine(), job_id)
        click.echo(f"{name}: {job_id}" + (f" (run {result.id})" if hasattr(result, "status") else ""))


_job_action("pause", "Pause a job.", lambda e, j: e.control.pause(j))
_job_action("resume", "Resume a paused job.", lambda e, j: e.control.resume(j))
_job_action("delete", "Delete a job and its history.", lambda e, j: e.control.delete(j))
_job_action("run", "Run a job now, outside its schedule.", lambda e, j: e.control.run_now(j))


@main.group()
def runs() -> None:
    """Inspect runs."""


@runs.command("list")
@click.option("--job", "job_id")
@click.option("--status", type=click.Choice([s.value for s in RunStatus]), multiple=True)
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@_fail_cleanly
def runs_list(ctx: _Context, job_id: str | None, status: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    found = ctx.engine().store.list_runs(job_id=job_id, statuses=[RunStatus(s) for s in status] or None, limit=limit)
    rows = [
        {
            "id": r.id,
            "job": r.job_id,
            "fire_time": _iso(r.scheduled_at),
            "status": r.status.value,
            "attempt": r.attempt,
            "reason": r.reason or "",
            "error": r.error or "",
            "covers": r.fire_count,
        }  # fmt: skip
        for r in found
    ]
    _print_rows(rows, as_json)


@runs.command("logs")
@click.argument("run_id", type=int)
@pass_ctx
@_fail_cleanly
def runs_logs(ctx: _Context, run_id: int) -> None:
    """Show what a run's handler logged."""
    for line in ctx.engine().store.run_logs(run_id):
        click.echo(f"{_iso(line.at)} attempt {line.attempt} {line.level:7} {line.message}")


@runs.command("explain")
@click.argument("job_id")
@click.argument("fire_time")
@pass_ctx
@_fail_cleanly
def runs_explain(ctx: _Context, job_id: str, fire_time: str) -> None:
    """Why did (or didn't) JOB_ID run at FIRE_TIME (ISO 8601)?"""
    try:
        when = datetime.fromisoformat(fire_time)
    except ValueError as e:
        raise ValidationError({"fire_time": [f"is not an ISO 8601 time: {fire_time!r}"]}) from e
    if when.tzinfo is None:
        raise ValidationError({"fire_time": ["needs an offset, e.g. 2026-12-24T09:00:00+00:00"]})
    run = ctx.engine().store.explain(job_id, when)
    if run is None:
        click.echo(f"no fire time of {job_id} at {fire_time} is recorded")
    else:
        why = f" ({run.reason})" if run.reason else ""
        click.echo(f"run {run.id}: {run.status.value}{why}, fire time {_iso(run.scheduled_at)}")


@main.group()
def dead() -> None:
    """Inspect, replay and purge dead runs (retries exhausted)."""


def _dead_runs_chosen(all_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The selection both ``dead replay`` and ``dead purge`` take: run ids, ``--job``, or ``--all``."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option("--all", "everything", is_flag=True, help=all_help)(command)
        command = click.option("--job", "job_id", help="Every dead run of this job.")(command)
        return click.argument("run_ids", type=int, nargs=-1)(command)

    return decorate


@dead.command("list")
@click.option("--job", "job_id")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@_fail_cleanly
def dead_list(ctx: _Context, job_id: str | None, limit: int, as_json: bool) -> None:
    """Dead runs, newest first: job, attempts, last error, when."""
    found = ctx.engine().dead_letters.runs(job_id=job_id, limit=limit)
    rows = [
        {
            "id": r.id,
            "job": r.job_id,
            "fire_time": _iso(r.scheduled_at),
            "attempts": r.attempt,
            "died": _iso(r.finished_at),
            "error": r.error or "",
        }  # fmt: skip
        for r in found
    ]
    _print_rows(rows, as_json)


@dead.command("replay")
@_dead_runs_chosen("Every dead run.")
@pass_ctx
@_fail_cleanly
def dead_replay(ctx: _Context, run_ids: tuple[int, ...], job_id: str | None, everything: bool) -> None:
    """Give dead runs a new attempt (their history is kept)."""
    replayed = ctx.engine().dead_letters.replay(run_ids, job_id=job_id, everything=everything)
    click.echo(f"{len(replayed)} runs replayed")


@dead.command("purge")
@_dead_runs_chosen("Every dead run, and the broker's parking queue.")
@pass_ctx
@_fail_cleanly
def dead_purge(ctx: _Context, run_ids: tuple[int, ...], job_id: str | None, everything: bool) -> None:
    """Take dead runs off the list (their history stays)."""
    purged = ctx.engine().dead_letters.purge(run_ids, job_id=job_id, everything=everything)
    click.echo(f"{purged} runs purged")


@main.group()
def events() -> None:
    """Fire events."""


@events.command("emit")
@click.argument("event")
@click.option("--payload", default="{}", help="A JSON object merged into each job's payload.")
@click.option("--id", "event_id", help="The event's id; a repeated id fires nothing (default: generated).")
@pass_ctx
@_fail_cleanly
def events_emit(ctx: _Context, event: str, payload: str, event_id: str | None) -> None:
    """Fire EVENT: every job listening to it gets a run."""
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as e:
        raise ValidationError({"payload": [f"is not JSON: {e}"]}) from e
    if not isinstance(data, dict):
        raise ValidationError({"payload": ["must be a JSON object"]})
    created = ctx.engine().control.emit(event, data, event_id or uuid.uuid4().hex)
    click.echo(f"{len(created)} runs created")


def _iso(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone().isoformat(timespec="seconds")


def _print_jobs(found: list[Any], as_json: bool) -> None:
    rows = [
        {
            "id": j.id,
            "name": j.name,
            "handler": j.handler,
            "type": j.type,
            "schedule": j.trigger.cron_expression
            or j.trigger.interval_seconds
            or j.trigger.run_at
            or j.trigger.trigger_event,
            "timezone": j.timezone,
            "next_run": _iso(j.next_run_at),
            "state": "parked" if j.parked_reason else "paused" if j.paused else "enabled" if j.enabled else "disabled",
            # a plugin's default job, and the fields an operator changed (which its updates leave alone)
            "origin": j.origin or "",
            "edited": ",".join(sorted(j.operator_fields)),
        }  # fmt: skip
        for j in found
    ]
    _print_rows(rows, as_json)


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("(none)")
        return
    headers = list(rows[0])
    cells = [[str(row[h]) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)))
    for c in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(c, widths)))
