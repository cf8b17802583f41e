"""The loop every background role runs: a step, a sleep that a wake-up cuts short, backoff on failure."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 30.0


def run_loop(step: Callable[[], float], stop: threading.Event, wake: threading.Event, what: str) -> None:
    """Call ``step`` until ``stop`` is set, sleeping the seconds it returns (0: at once) or until ``wake``.

    A step that raises is logged and retried with a doubling backoff: a
    background role must outlive a database or broker outage.
    """
    backoff = 0.5
    while not stop.is_set():
        try:
            delay = step()
            backoff = 0.5
        except Exception:
            log.exception("%s failed; retrying in %.1fs", what, backoff)
            delay, backoff = backoff, min(backoff * 2, MAX_BACKOFF_SECONDS)
        if delay > 0:
            wake.wait(delay)
            wake.clear()
