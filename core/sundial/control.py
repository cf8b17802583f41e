"""The control API: what operators (and later the gRPC service) do to jobs.

Every document is validated before anything is stored; every change is
checked against the job's version, so two operators cannot silently
overwrite each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Container, Mapping
from datetime import datetime
from typing import Any

from marshmallow import Schema

from . import templates
from .clock import Clock
from .errors import Conflict, NotFound, ValidationError
from .history import Coverage
from .job import Job
from .run import Run, SkipReason
from .scheduler import fast_forward, first_fire, schedule_for
from .schemas import job_document, load_job, payload_problem
from .store.rows import NewRun
from .store.sqlalchemy import SQLStore

_IMMUTABLE = ("id",)
# fire times one backfill may create runs for
MAX_BACKFILL = 1000
# an operator who changes any of these has changed the schedule: a plugin's update keeps them all
_SCHEDULE_FIELDS = frozenset(
    ("type", "cron_expression", "interval_seconds", "run_at", "trigger_event", "timezone", "starts_at", "ends_at")
)


def defaults_hash(document: Mapping[str, Any]) -> str:
    """A digest of a default job's document, to notice when a plugin changes it."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> frozenset[str]:
    """The document keys whose values differ; a change to any schedule key counts as all of them."""
    changed = frozenset(key for key in after if before.get(key) != after[key])
    return changed | _SCHEDULE_FIELDS if changed & _SCHEDULE_FIELDS else changed


class Control:
    """Job operations with validation, optimistic concurrency and scheduler wake-ups."""

    def __init__(
        self,
        store: SQLStore,
        handlers: Container[str],
        clock: Clock,
        *,
        max_payload_bytes: int = 65536,
        on_change: Callable[[], None] = lambda: None,
        event_schemas: Mapping[str, Schema] | None = None,
    ) -> None:
        self.store = store
        self.handlers = handlers
        self.clock = clock
        self.max_payload_bytes = max_payload_bytes
        self.on_change = on_change
        # the payload schema of each event a plugin declared; other events carry any JSON object
        self.event_schemas: dict[str, Schema] = dict(event_schemas or {})

    def validate(self, document: Mapping[str, Any], *, known_handlers_only: bool = True) -> Job:
        """Validate a job document without storing it (its payload template's placeholders included)."""
        job = load_job(
            document, handlers=self.handlers if known_handlers_only else None, max_payload_bytes=self.max_payload_bytes
        )
        templates.check(job.payload_template)
        return job

    def add_job(self, document: Mapping[str, Any], *, known_handlers_only: bool = True) -> Job:
        """Validate and store a new job, scheduled from now."""
        now = self.clock.now()
        job = self.validate(document, known_handlers_only=known_handlers_only).replace(created_at=now)
        job = job.replace(next_run_at=first_fire(job, now))
        stored = self.store.add_job(job, now=now)
        self.on_change()
        return stored

    def ensure_job(self, document: Mapping[str, Any], *, known_handlers_only: bool = False) -> Job | None:
        """Add a job unless one with its id exists; return it when added."""
        try:
            return self.add_job(document, known_handlers_only=known_handlers_only)
        except Conflict:
            return None

    def apply_default(self, plugin: str, document: Mapping[str, Any]) -> str:
        """Bring ``plugin``'s default job in line with ``document``; return added, updated or unchanged.

        A missing job is added (its origin is ``plugin``). A job from an
        earlier version of the document is updated to it, except the fields
        an operator has changed since, which keep the operator's values. A
        job with that id from elsewhere (an operator, another plugin) is left
        alone.
        """
        desired = job_document(self.validate(document, known_handlers_only=False))
        digest = defaults_hash(desired)
        try:
            current = self.store.get_job(desired["id"])
        except NotFound:
            now = self.clock.now()
            job = self.validate(desired, known_handlers_only=False).replace(
                created_at=now, origin=plugin, defaults_hash=digest
            )
            try:
                self.store.add_job(job.replace(next_run_at=first_fire(job, now)), now=now)
            except Conflict:
                return "unchanged"  # another process added it first
            self.on_change()
            return "added"
        if current.origin != plugin or current.defaults_hash == digest:
            return "unchanged"
        ours = job_document(current)
        merged = {**desired, **{key: ours[key] for key in current.operator_fields if key in ours}}
        try:
            self._apply(current, merged, current.version, operator=False, digest=digest)
        except Conflict:
            return "unchanged"  # an operator's edit or another process landed first; next start retries
        self.on_change()
        return "updated"

    def update_job(
        self,
        job_id: str,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        operator: bool = True,
    ) -> Job:
        """Apply ``changes`` (a partial job document) to a job.

        Changing the trigger re-times the job from now; resuming records the
        fire times skipped while paused. ``expected_version`` (the version the
        caller last saw) guards against lost updates; without it the change
        is applied to the current version, retried if another edit lands first.
        On a plugin's default job, the fields an ``operator`` changes are
        recorded, and a new version of the plugin leaves them alone.
        """
        bad = [key for key in _IMMUTABLE if key in changes and changes[key] != job_id]
        if bad:
            raise ValidationError({key: ["cannot be changed"] for key in bad})
        for attempt in range(3):
            current = self.store.get_job(job_id)
            try:
                stored = self._apply(
                    current,
                    changes,
                    current.version if expected_version is None else expected_version,
                    operator=operator,
                )
            except Conflict:
                if expected_version is not None or attempt == 2:
                    raise
                continue
            self.on_change()
            return stored
        raise AssertionError("unreachable")

    def _apply(
        self, current: Job, changes: Mapping[str, Any], version: int, *, operator: bool, digest: str | None = None
    ) -> Job:
        now = self.clock.now()
        before = job_document(current)
        updated = self.validate({**before, **changes}, known_handlers_only=operator)
        edited = current.operator_fields
        if operator and current.origin is not None:
            edited = edited | changed_fields(before, job_document(updated))
        updated = updated.replace(
            created_at=current.created_at,
            parked_reason=current.parked_reason,
            origin=current.origin,
            defaults_hash=digest or current.defaults_hash,
            operator_fields=edited,
        )
        if updated.trigger != current.trigger:
            next_run_at = None if current.parked_reason else first_fire(updated, now)
            return self.store.update_job(updated.replace(next_run_at=next_run_at), expected_version=version,
                                         schedule=True, now=now)  # fmt: skip
        if current.paused and not updated.paused:
            plan = fast_forward(current, now, SkipReason.PAUSED)
            return self.store.update_job(updated.replace(next_run_at=plan.next_run_at), expected_version=version,
                                         runs=plan.runs, schedule=True, now=now)  # fmt: skip
        return self.store.update_job(updated, expected_version=version, now=now)

    def pause(self, job_id: str, *, expected_version: int | None = None) -> Job:
        """Stop scheduling a job; its fire times while paused are recorded as skipped (reason paused)."""
        return self.update_job(job_id, {"paused": True}, expected_version=expected_version)

    def resume(self, job_id: str, *, expected_version: int | None = None) -> Job:
        """Schedule a paused job again from its next fire time after now."""
        return self.update_job(job_id, {"paused": False}, expected_version=expected_version)

    def delete(self, job_id: str) -> None:
        """Delete a job with its history."""
        self.store.delete_job(job_id)

    def run_now(self, job_id: str, payload: Mapping[str, Any] | None = None) -> Run:
        """Create a run of ``job_id`` for right now, outside its schedule; ``payload`` replaces its template."""
        job = self.store.get_job(job_id)
        now = self.clock.now()
        self.store.update_job(
            job,
            expected_version=job.version,
            runs=[NewRun(scheduled_at=now, payload=self._payload(job, payload))],
            now=now,
        )
        self.on_change()
        run = self.store.explain(job_id, now)
        assert run is not None, "the run was stored in the same transaction as the job"
        return run

    def backfill(
        self, job_id: str, start: datetime, end: datetime, payload: Mapping[str, Any] | None = None
    ) -> tuple[list[Run], int]:
        """Create runs for the fire times of ``job_id`` in [start, end] that have no record yet.

        Fire times with a run or a skip record are left as they are; return
        the runs created and how many fire times were recorded already.
        """
        job = self.store.get_job(job_id)
        now = self.clock.now()
        if job.type == "event":
            raise ValidationError({"id": ["an event job has no fire times to backfill; publish the event instead"]})
        if end > now:
            raise ValidationError({"end": ["must not be in the future"]})
        if start >= end:
            raise ValidationError({"start": ["must be before end"]})
        fires = schedule_for(job).fire_times(start, end, inclusive=True, limit=MAX_BACKFILL + 1)
        if len(fires) > MAX_BACKFILL:
            raise ValidationError(
                {"end": [f"the range holds more than {MAX_BACKFILL} fire times: backfill it in parts"]}
            )
        coverage = Coverage(self.store.runs_covering(job.id, start, end))
        missing = [fire for fire in fires if coverage.find(fire) is None]
        body = self._payload(job, payload)
        if missing:
            self.store.add_runs(
                job, [NewRun(scheduled_at=f, payload=body, reason="backfill") for f in missing], now=now
            )
            self.on_change()
        wanted = set(missing)
        created = [r for r in self.store.runs_covering(job.id, start, end) if r.scheduled_at in wanted]
        return created, len(fires) - len(missing)

    def _payload(self, job: Job, payload: Mapping[str, Any] | None) -> dict[str, Any]:
        if payload is None:
            return dict(job.payload_template)
        problem = payload_problem(payload, self.max_payload_bytes)
        if problem or not isinstance(payload, Mapping):
            raise ValidationError({"payload": [problem or "must be a JSON object"]})
        return dict(payload)

    def emit(self, event: str, payload: Mapping[str, Any], event_id: str) -> list[Run]:
        """Fire ``event``: one run per job listening to it; a repeated ``event_id`` fires nothing.

        A payload that the event's declared schema rejects raises ``ValidationError``.
        """
        problem = payload_problem(dict(payload), self.max_payload_bytes)
        if problem:
            raise ValidationError({"payload": [problem]})
        schema = self.event_schemas.get(event)
        if schema is not None:
            problems = schema.validate(dict(payload))
            if problems:
                raise ValidationError({"payload": problems})
        runs = self.store.emit(event, dict(payload), event_id, self.clock.now())
        if runs:
            self.on_change()
        return runs

    def unpark(self) -> list[Job]:
        """Resume jobs parked for an unknown handler that is now registered.

        Fire times that passed while parked get one skip record (reason parked).
        """
        resumed: list[Job] = []
        now = self.clock.now()
        for job in self.store.list_jobs(parked=True, limit=100_000):
            if job.handler not in self.handlers or not (job.parked_reason or "").startswith("unknown handler"):
                continue
            if job.next_run_at is not None:
                plan = fast_forward(job, now, SkipReason.PARKED)
                runs, next_run_at = plan.runs, plan.next_run_at
            else:
                runs, next_run_at = [], first_fire(job, now) if job.type != "event" else None
            fixed = job.replace(parked_reason=None, next_run_at=next_run_at)
            try:
                resumed.append(
                    self.store.update_job(fixed, expected_version=job.version, runs=runs, schedule=True, now=now)
                )
            except Conflict:
                continue  # another process resumed it first
        if resumed:
            self.on_change()
        return resumed
