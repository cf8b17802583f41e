"""The letter platform's letters: tables, the notifications outbox, and the lifecycle jobs."""

from .tables import letters, metadata, notifications, notify

__all__ = ["letters", "metadata", "notifications", "notify"]
