"""Building the plugin manager: built-ins first, then entry points, one by one."""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from .builtin import BuiltinPlugin

ENTRY_POINT_GROUP = "sundial.plugins"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    error: str


@dataclass
class Plugins:
    """The loaded plugin manager and the report of what failed to load."""

    manager: pluggy.PluginManager
    failures: list[PluginFailure]

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.manager.hook

    def names(self) -> list[str]:
        """The names of the registered plugins."""
        return sorted(name for name, _ in self.manager.list_name_plugin() if name)

    def status(self) -> dict[str, str]:
        """Every plugin known, loaded or not: ``"ok"`` or the reason it failed (for status and metrics)."""
        report = {name: "ok" for name in self.names()}
        for failure in self.failures:
            report[failure.name] = failure.error
        return report

    def fail(self, name: str, stage: str, error: BaseException | str, *, disable: bool = False) -> None:
        """Report that plugin ``name`` failed at ``stage``; ``disable`` unregisters it."""
        text = error if isinstance(error, str) else f"{error.__class__.__name__}: {error}"
        log.error("plugin %r failed (%s): %s%s", name, stage, text, "; it is disabled" if disable else "")
        self.failures.append(PluginFailure(name, f"{stage}: {text}"))
        if disable and self.manager.has_plugin(name):
            self.manager.unregister(name=name)

    def each(
        self,
        hook: str,
        arguments: Callable[[str], Mapping[str, Any]] = lambda _: {},
        on_error: Callable[[str, str, BaseException], None] | None = None,
    ) -> Iterator[tuple[str, Any]]:
        """Call ``hook`` on each plugin separately, yielding (plugin, result).

        ``arguments(plugin)`` gives the hook's arguments for that plugin; each
        implementation gets only those it names. One that raises is skipped
        and handed to ``on_error(plugin, stage, error)`` (by default reported
        with ``fail``); the others are still called.
        """
        for impl in getattr(self.manager.hook, hook).get_hookimpls():
            kwargs = arguments(impl.plugin_name)
            try:
                result = call_impl(impl, kwargs)
            except Exception as e:  # a plugin may fail in any way; none may stop the engine
                (on_error or self.fail)(impl.plugin_name, hook.removeprefix("sundial_"), e)
                continue
            yield impl.plugin_name, result


def call_impl(impl: pluggy.HookImpl, arguments: Mapping[str, Any]) -> Any:
    """Call one plugin's hook implementation with the arguments it names (pluggy lets it take fewer)."""
    return impl.function(*(arguments[arg] for arg in impl.argnames))


def load_plugins(
    disabled: Iterable[str] = (), extra: Iterable[tuple[str, object]] = (), entry_points: bool = True
) -> Plugins:
    """Register the built-in plugin, ``extra`` plugins, then every entry point not ``disabled``.

    pluggy's ``load_setuptools_entrypoints`` stops at the first plugin that
    fails to import, so entry points are loaded one at a time: a broken plugin
    is reported (log and ``failures``) and the others still load.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    skip = set(disabled)
    failures: list[PluginFailure] = []
    if "builtin" not in skip:
        manager.register(BuiltinPlugin(), name="builtin")
    for name, plugin in extra:
        if name not in skip:
            manager.register(plugin, name=name)
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points else ()
    for ep in found:
        if ep.name in skip or manager.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
            manager.register(plugin() if isinstance(plugin, type) else plugin, name=ep.name)
        except Exception as e:  # a plugin may fail in any way; none may stop the engine
            log.error("plugin %r failed to load: %s: %s", ep.name, e.__class__.__name__, e)
            failures.append(PluginFailure(ep.name, f"{e.__class__.__name__}: {e}"))
    manager.check_pending()
    return Plugins(manager, failures)
