"""Plugins: the hook specifications, the manager that loads them, and the built-in plugin."""

from .hookspecs import hookimpl, hookspec

__all__ = ["hookimpl", "hookspec"]
