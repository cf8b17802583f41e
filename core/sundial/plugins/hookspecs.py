"""The hook specifications: Sundial's public plugin API.

A plugin is any object (usually a module or a class instance) with methods
marked ``@sundial.plugins.hookimpl`` whose names match the hooks below. It is
found through the ``sundial.plugins`` entry point group::

    [options.entry_points]
    sundial.plugins =
        letters = sundial_letters.plugin:LettersPlugin

Every hook is prefixed ``sundial_`` and typed; a plugin implements only the
hooks it needs, and an implementation may take only the arguments it uses.
Each plugin's hooks are called separately: one that raises is reported (in
the start report, the log and ``Plugins.failures``) and the others carry on.

At start the engine calls, in this order: ``sundial_config_schema`` (an
invalid section disables the plugin), ``sundial_register_handlers`` (a
failure disables it), ``sundial_event_types``, ``sundial_tables`` (tables
created or upgraded; a failure disables it), ``sundial_default_jobs``; then
``sundial_run_finished`` after every attempt. ``sundial_demo_data`` is only
called by ``python server.py demo``. A disabled plugin's handlers are
unregistered, so its jobs park until it is fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from datetime import datetime

    from marshmallow import Schema
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from ..control import Control
    from ..handlers import HandlerRegistry
    from ..job import Job
    from ..run import Run
    from .domain import PluginTables

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
def sundial_config_schema() -> Schema:  # type: ignore[empty-body]
    """Return a marshmallow schema for the plugin's settings section, ``[plugins.<name>]``.

    The section is loaded with it at start; the loaded values are what
    ``sundial_default_jobs(config)`` and ``RunContext.config`` see. A section
    that fails validation disables the plugin (reported like a failed import).
    Without this hook a plugin's section must be empty.
    """


@hookspec
def sundial_default_jobs(config: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:  # type: ignore[empty-body]
    """Return the jobs the plugin needs, as job documents (validated like any input).

    Each needs a stable ``id``. A missing job is created. When the document
    changes (a new plugin version, a new setting), the stored job is updated
    to it, except for the fields an operator has changed since (schedule,
    pause, payload, ...): those stay as the operator left them. A job with
    that id made by an operator is never touched.
    """


@hookspec
def sundial_event_types() -> Mapping[str, Schema]:  # type: ignore[empty-body]
    """Return the events the plugin defines, each with a marshmallow schema of its payload.

    ``Control.emit`` (and ``RunContext.emit``) refuse a payload the schema
    rejects with ``ValidationError``. An event name belongs to one plugin.
    """


@hookspec
def sundial_tables() -> PluginTables:  # type: ignore[empty-body]
    """Return the plugin's own tables: a ``sundial.plugins.domain.PluginTables``.

    They are created in the domain database at start (``metadata.create_all``)
    and their version is recorded in the job store; when the declared version
    is newer than the recorded one, the plugin's ``upgrade`` runs first.
    """


@hookspec
def sundial_run_finished(job: Job, run: Run, status: str, error: str | None, domain: Engine) -> None:
    """Observe the outcome of an attempt (``status``: succeeded, retrying or dead).

    Called after the outcome is stored; an exception here is logged and ignored.
    Use it for alerts on failures and dead runs; ``domain`` is the domain
    database, for a plugin that records its alerts in its tables.
    """


@hookspec
def sundial_demo_data(session: Session, now: datetime, control: Control) -> None:
    """Put sample rows in the plugin's tables for ``python server.py demo``, due at ``now``.

    The demo then runs every default job once, so the rows should give each
    of them something to do. ``session`` is on the domain database and is
    committed after the hook returns; ``control`` may add jobs or emit events.
    """
