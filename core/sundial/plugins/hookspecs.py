"""The hook specifications: Sundial's public plugin API.

A plugin is any object (usually a module or a class instance) with methods
marked ``@sundial.plugins.hookimpl`` whose names match the hooks below. It is
found through the ``sundial.plugins`` entry point group::

    [options.entry_points]
    sundial.plugins =
        letters = sundial_letters.plugin:LettersPlugin

Every hook is prefixed ``sundial_`` and typed; a plugin implements only the
hooks it needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ..handlers import HandlerRegistry
    from ..job import Job
    from ..run import Run

PROJECT = "sundial"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def sundial_register_handlers(registry: HandlerRegistry) -> None:
    """Register the plugin's handlers with ``registry.add(name, function)``.

    Handler names are ``<plugin>.<verb_phrase>`` (``letters.release_future_letters``).
    A handler is called with a ``sundial.handlers.RunContext`` and its return
    value is ignored; raising marks the attempt failed (and retried by the
    job's retry policy).
    """


@hookspec
def sundial_default_jobs() -> Sequence[Mapping[str, Any]]:  # type: ignore[empty-body]
    """Return the jobs the plugin needs, as job documents (validated like any input).

    Each needs a stable ``id``; a job that exists already is left as it is.
    """


@hookspec
def sundial_run_finished(job: Job, run: Run, status: str, error: str | None) -> None:
    """Observe the outcome of an attempt (``status``: succeeded, retrying or dead).

    Called after the outcome is stored; an exception here is logged and ignored.
    Use it for alerts on failures and dead runs.
    """
