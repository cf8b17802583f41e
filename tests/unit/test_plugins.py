"""Plugin discovery through the ``sundial.plugins`` entry points, and isolation of broken plugins."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sundial.config import Settings
from sundial.engine import Engine
from sundial.handlers import HandlerRegistry
from sundial.plugins.manager import load_plugins
from support import samples

GOOD = '''
from sundial.plugins import hookimpl

def greet(ctx):
    """Say hello."""
    ctx.logger.info("hello")

class GoodPlugin:
    @hookimpl
    def sundial_register_handlers(self, registry):
        registry.add("good.greet", greet)

    @hookimpl
    def sundial_default_jobs(self):
        return [{"id": "good.daily", "name": "daily", "handler": "good.greet", "type": "cron",
                 "cron_expression": "0 8 * * *"},
                {"id": "good.broken", "name": "broken", "handler": "good.greet", "type": "cron",
                 "cron_expression": "99 * * * *"}]
'''

FAILING_REGISTER = """
from sundial.plugins import hookimpl

class Plugin:
    @hookimpl
    def sundial_register_handlers(self, registry):
        raise RuntimeError("cannot register")


def noop(ctx):
    \"\"\"Does nothing.\"\"\"


class NoTables:
    @hookimpl
    def sundial_register_handlers(self, registry):
        registry.add("notables.noop", noop)

    @hookimpl
    def sundial_tables(self):
        raise RuntimeError("cannot declare tables")

    @hookimpl
    def sundial_default_jobs(self):
        raise RuntimeError("cannot declare jobs")
"""


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Path]:
    """Plugins installed as distributions with entry points: good, unimportable, failing to register, without tables."""
    (tmp_path / "good_plugin.py").write_text(GOOD)
    (tmp_path / "failing_plugin.py").write_text(FAILING_REGISTER)
    dist = tmp_path / "sundial_test_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sundial-test-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[sundial.plugins]\n"
        "broken = no_such_module_anywhere:Plugin\n"
        "good = good_plugin:GoodPlugin\n"
        "failing = failing_plugin:Plugin\n"
        "notables = failing_plugin:NoTables\n"
    )
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in ("good_plugin", "failing_plugin"):
        sys.modules.pop(name, None)


def test_entry_points_are_loaded_and_a_broken_one_is_reported(installed: Path) -> None:
    plugins = load_plugins()
    assert {"builtin", "good", "failing"} <= set(plugins.names())
    assert [(f.name, f.error.split(":")[0]) for f in plugins.failures] == [("broken", "ModuleNotFoundError")]


def test_disabled_plugins_are_not_loaded(installed: Path) -> None:
    plugins = load_plugins(disabled=["good", "broken", "builtin"])
    assert "good" not in plugins.names() and "builtin" not in plugins.names()
    assert plugins.failures == []


def test_the_engine_runs_with_the_good_plugins_and_reports_the_bad(installed: Path, tmp_path: Path) -> None:
    engine = Engine(Settings(database_url=f"sqlite:///{tmp_path / 's.db'}"))
    report = engine.prepare()
    assert "good.greet" in engine.registry and "sundial.prune_run_history" in engine.registry
    failures = {(f.name, f.error.split(":")[0]) for f in report.plugin_failures}
    assert failures == {("broken", "ModuleNotFoundError"), ("failing", "register_handlers"), ("notables", "tables")}
    assert "notables.noop" not in engine.registry and "notables" not in engine.plugins.names()
    assert engine.plugins.status()["notables"].startswith("tables: RuntimeError: cannot declare tables")
    assert engine.plugins.status()["good"] == "ok"
    assert {"good.daily", "sundial.prune_run_history"} <= set(report.default_jobs_added)
    assert "good.broken" not in report.default_jobs_added
    assert "cron_expression" in report.default_jobs_invalid["good.broken"]
    reported = {labels["plugin"] for labels, value in samples(engine.metrics, "sundial_plugin_failures") if value == 1}
    assert reported == {"broken", "failing", "notables"}
    engine.store.close()


def test_a_handler_name_registered_twice_is_refused() -> None:
    registry = HandlerRegistry()
    registry.add("a.b", print)
    registry.add("a.b", print)  # the same function again is harmless
    with pytest.raises(Exception, match="registered twice"):
        registry.add("a.b", len)
    with pytest.raises(ValueError, match="plugin.verb_phrase"):
        registry.add("NoDots", print)
