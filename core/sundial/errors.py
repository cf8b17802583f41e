"""Sundial's errors: one root, a few meaningful branches.

Driver errors (SQLAlchemy, pika, redis) are translated at the boundary with
``raise ... from e`` so callers only ever need to know these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SundialError(Exception):
    """Root of every error Sundial raises on purpose."""


class ConfigError(SundialError):
    """The configuration cannot be used; the message names the key."""


class ValidationError(SundialError):
    """Input from outside failed validation.

    ``errors`` maps each offending field (dotted for nested ones) to its
    messages, as marshmallow reports them.
    """

    def __init__(self, errors: Mapping[str, Any]) -> None:
        self.errors = dict(errors)
        super().__init__(_describe(self.errors))


class NotFound(SundialError):
    """The job, run or handler asked for does not exist."""


class Conflict(SundialError):
    """An optimistic-concurrency check failed (stale version) or an id is taken."""


class AlreadyExists(Conflict):
    """The id of a new job (or other record) is taken."""


class Refused(SundialError):
    """A signed request was refused: ``kind`` is ``forged``, ``expired`` or ``replayed``."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class StoreError(SundialError):
    """The job store failed; the original driver error is the ``__cause__``."""


def _describe(errors: Mapping[str, Any], prefix: str = "") -> str:
    parts: list[str] = []
    for field, value in sorted(errors.items(), key=lambda kv: str(kv[0])):
        name = f"{prefix}{field}"
        if isinstance(value, Mapping):
            parts.append(_describe(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            parts.append(f"{name}: {'; '.join(str(v) for v in value)}")
        else:
            parts.append(f"{name}: {value}")
    return "; ".join(parts)
