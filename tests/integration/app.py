"""A Sundial process with test handlers, for tests that start real processes.

``python tests/integration/app.py [server.py arguments]`` runs exactly what
``python server.py`` runs, plus the ``test.*`` handlers below. Handlers
append what they do to ``$SUNDIAL_TEST_TRACE`` (one line per event, written
with O_APPEND so lines from many threads never interleave).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "core"))

from sundial import cli  # noqa: E402
from sundial.handlers import HandlerRegistry, RunContext  # noqa: E402
from sundial.plugins import hookimpl  # noqa: E402


def trace(event: str, ctx: RunContext, **fields: str) -> None:
    """Append one line: wall time, event, run, attempt, pid, job, then ``fields`` as key=value."""
    path = os.environ.get("SUNDIAL_TEST_TRACE")
    if path:
        extra = "".join(f" {key}={value}" for key, value in fields.items())
        line = f"{time.time():.6f} {event} run={ctx.run_id} attempt={ctx.attempt} pid={os.getpid()} job={ctx.job.id}"
        line += f"{extra}\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def sleep(ctx: RunContext) -> None:
    """Sleep ``payload.seconds``, tracing start and end."""
    trace("start", ctx)
    time.sleep(float(ctx.payload.get("seconds", 1)))
    trace("end", ctx)


def record(ctx: RunContext) -> None:
    """Trace one execution."""
    trace("ran", ctx)


def tick(ctx: RunContext) -> None:
    """Trace start and end around ``payload.seconds`` (default 0.02) of work, for the fault suite's history.

    With ``payload.redis`` it first counts a use in the rate limiter, so the
    run needs Redis when ``redis_url`` is set: while Redis is down the
    attempt fails (traced ``outcome=redis-down``) and is retried.
    """
    trace("start", ctx)
    if ctx.payload.get("redis"):
        try:
            ctx.rate_limit(f"tick:{ctx.job.id}", 1_000_000, 60)
        except Exception:
            trace("end", ctx, outcome="redis-down")
            raise
    time.sleep(float(ctx.payload.get("seconds", 0.02)))
    trace("end", ctx, outcome="ok")


class TestPlugin:
    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        registry.add("test.sleep", sleep)
        registry.add("test.record", record)
        registry.add("test.tick", tick)


if __name__ == "__main__":
    cli.run([("test", TestPlugin())], prog_name="app.py")
