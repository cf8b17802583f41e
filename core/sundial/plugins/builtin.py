"""The built-in plugin: Sundial's own housekeeping jobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from ..handlers import HandlerRegistry, RunContext
from .hookspecs import hookimpl

DEFAULT_KEEP_DAYS = 30


def prune_run_history(ctx: RunContext) -> int:
    """Delete finished runs, their attempts and logs, older than ``keep_days`` (payload)."""
    keep_days = ctx.payload.get("keep_days", DEFAULT_KEEP_DAYS)
    if not isinstance(keep_days, (int, float)) or isinstance(keep_days, bool) or keep_days < 1:
        raise ValueError(f"payload.keep_days must be a number >= 1, not {keep_days!r}")
    cutoff = ctx.store.now() - timedelta(days=keep_days)
    deleted = ctx.store.prune_history(cutoff)
    ctx.logger.info("deleted %d runs finished before %s", deleted, cutoff.isoformat())
    return deleted


def log_message(ctx: RunContext) -> None:
    """Write the payload's ``message`` to the run log: the smallest useful job, for trying Sundial out."""
    ctx.logger.info("%s", ctx.payload.get("message", f"{ctx.job.name} ran"))


class BuiltinPlugin:
    """Registers Sundial's own handlers and its housekeeping job."""

    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        registry.add("sundial.prune_run_history", prune_run_history)
        registry.add("sundial.log_message", log_message)

    @hookimpl
    def sundial_default_jobs(self) -> Sequence[Mapping[str, Any]]:
        return [
            {
                "id": "sundial.prune_run_history",
                "name": "Prune run history",
                "handler": "sundial.prune_run_history",
                "type": "cron",
                "cron_expression": "15 3 * * *",
                "timezone": "UTC",
                "payload_template": {"keep_days": DEFAULT_KEEP_DAYS},
                "timeout_seconds": 1200,
            }
        ]
