"""Testing plugins: a real engine on a real store, driven by a clock the test moves.

``PluginHarness`` builds an ``Engine`` with the given plugins (their tables
created, their default jobs stored), and executes runs in the calling thread
through the same path a worker takes: the scheduler creates runs for fire
times the clock has reached, the store claims them, the registered handler
runs with a bound ``RunContext``, and the outcome is recorded::

    harness = PluginHarness("sqlite:///t.db", [("letters", LettersPlugin())], start=datetime(2026, 3, 2, tzinfo=UTC))
    harness.clock.advance(minutes=10)
    [run] = harness.tick()          # the runs that became due, executed
    assert run.status is RunStatus.SUCCEEDED
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine as SQLEngine

from .clock import FakeClock
from .config import Settings
from .engine import Engine, StartReport
from .handlers import RunContext, RunLogger
from .plugins.manager import load_plugins
from .run import Run, RunStatus
from .store.rows import Outcome

WORKER = "harness"
_OPEN = (RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RETRYING)


class PluginHarness:
    """An engine whose runs execute when the test says so, at the time the test sets."""

    def __init__(
        self,
        database_url: str,
        plugins: Sequence[tuple[str, object]],
        *,
        start: datetime,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        **settings: Any,
    ) -> None:
        self.clock = FakeClock(start)
        self.engine = Engine(
            Settings(database_url=database_url, plugins=dict(config or {}), **settings),
            plugins=load_plugins(extra=plugins, entry_points=False),
            clock=self.clock,
        )
        self.report: StartReport = self.engine.prepare()

    @property
    def domain(self) -> SQLEngine:
        """The domain database, where the plugins' tables are."""
        return self.engine.domain

    def tick(self) -> list[Run]:
        """Create the runs due at the clock's time, execute every open run due, and return them finished."""
        self.engine.scheduler.tick(self.clock.now())
        return self.execute()

    def run_now(self, job_id: str) -> Run:
        """Run ``job_id`` now, outside its schedule, and return the finished run."""
        run = self.engine.control.run_now(job_id)
        [finished] = [r for r in self.execute() if r.id == run.id]
        return finished

    def execute(self) -> list[Run]:
        """Execute every open run due at the clock's time (runs they create included), oldest first."""
        done: list[Run] = []
        store = self.engine.store
        while True:
            claim = store.claim(WORKER, 300, queues=self.engine.settings.queues, statuses=_OPEN, now=self.clock.now())
            if claim is None:
                return done
            info = self.engine.registry.get(claim.job.handler)
            ctx = RunContext(
                run_id=claim.run.id,
                job=claim.job,
                payload=claim.run.payload,
                scheduled_at=claim.run.scheduled_at,
                attempt=claim.run.attempt,
                store=store,
                logger=RunLogger(claim.run.id),
            )
            started = time.monotonic()
            ok, error = False, None
            try:
                if info is None:
                    raise LookupError(f"unknown handler {claim.job.handler!r}")
                info.function(ctx)
                ok = True
            except Exception as e:  # the run's failure, recorded like a worker records it
                error = f"{e.__class__.__name__}: {e}"
            status = store.finish(
                claim,
                Outcome(ok=ok, error=error, duration_seconds=time.monotonic() - started, logs=ctx.logger.drain()),
            )
            if status is not None:
                self.engine.observe(claim.job, claim.run, status.value, error)
            done.append(store.get_run(claim.run.id))

    def logs(self, run: Run) -> list[str]:
        """The lines the handler wrote during ``run``."""
        return [line.message for line in self.engine.store.run_logs(run.id)]

    def close(self) -> None:
        """Close the engine's connections."""
        self.engine.stop(grace_seconds=0)
