"""Named failpoints: crash or pause a process at an exact point of the run path, for fault tests.

They are off unless ``SUNDIAL_FAILPOINTS`` names some, so production code
pays one dictionary lookup per point. The variable holds comma-separated
``name=action`` pairs; an action is ``crash`` (the process kills itself with
SIGKILL, as ``kill -9`` would) or ``sleep(SECONDS)``, optionally with
``@N`` to act on the N-th time the point is reached only::

    SUNDIAL_FAILPOINTS="relay.before_publish=crash"
    SUNDIAL_FAILPOINTS="worker.after_handler=crash@3,worker.after_claim=sleep(2)"

The points, in the order a run meets them (``POINTS``):

- ``scheduler.after_commit``: runs committed to SQL, nothing published yet
- ``relay.before_publish``: pending runs read from the outbox, not yet published
- ``relay.after_publish``: the broker confirmed them, not yet marked queued
- ``worker.after_claim``: the attempt's claim committed, its handler not started
- ``worker.after_handler``: the handler returned, its outcome not yet committed
- ``worker.after_commit``: the outcome committed, the message not yet acknowledged
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from dataclasses import dataclass

ENV = "SUNDIAL_FAILPOINTS"
POINTS = (
    "scheduler.after_commit",
    "relay.before_publish",
    "relay.after_publish",
    "worker.after_claim",
    "worker.after_handler",
    "worker.after_commit",
)
_ACTION = re.compile(r"^(crash|sleep\((\d+(?:\.\d+)?)\))(?:@(\d+))?$")


@dataclass
class _Action:
    crash: bool
    seconds: float
    on_hit: int | None  # act on this hit only; None: every hit
    hits: int = 0


_actions: dict[str, _Action] | None = None
_lock = threading.Lock()


def parse(spec: str) -> dict[str, _Action]:
    """``SUNDIAL_FAILPOINTS``'s value as actions by point; ``ValueError`` naming what is wrong."""
    actions: dict[str, _Action] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, action = part.partition("=")
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown failpoint {name!r}; known: {', '.join(POINTS)}")
        match = _ACTION.match(action)
        if match is None:
            raise ValueError(f"{ENV}: {part!r}: the action is crash or sleep(SECONDS), optionally @N")
        crash, seconds, nth = match.group(1) == "crash", float(match.group(2) or 0), match.group(3)
        actions[name] = _Action(crash, seconds, int(nth) if nth else None)
    return actions


def failpoint(name: str) -> None:
    """Crash or sleep here if ``SUNDIAL_FAILPOINTS`` says so for ``name``; else return at once."""
    global _actions
    if _actions is None:
        with _lock:
            if _actions is None:
                _actions = parse(os.environ.get(ENV, ""))
    action = _actions.get(name)
    if action is None:
        return
    with _lock:
        action.hits += 1
        if action.on_hit is not None and action.hits != action.on_hit:
            return
    if action.crash:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(action.seconds)
