"""Helpers for the job documents plugins return from ``sundial_default_jobs``."""

from __future__ import annotations

from typing import Any


def cron_job(handler: str, name: str, cron_expression: str, *, timezone: str = "UTC", **fields: Any) -> dict[str, Any]:
    """A default job running ``handler`` on ``cron_expression``; its id is the handler's name."""
    return {"id": handler, "name": name, "handler": handler, "type": "cron",
            "cron_expression": cron_expression, "timezone": timezone, **fields}  # fmt: skip


def event_job(handler: str, name: str, event: str, **fields: Any) -> dict[str, Any]:
    """A default job running ``handler`` on each ``event``; its id is the handler's name."""
    return {"id": handler, "name": name, "handler": handler, "type": "event", "trigger_event": event, **fields}
