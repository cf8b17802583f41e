"""``server.py`` with a no-op handler, ``bench.noop``, for the benchmarks."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from sundial import cli  # noqa: E402
from sundial.handlers import HandlerRegistry, RunContext  # noqa: E402
from sundial.plugins import hookimpl  # noqa: E402


def noop(ctx: RunContext) -> None:
    """Do nothing: what is measured is Sundial's own cost per run."""


class BenchPlugin:
    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        registry.add("bench.noop", noop)


if __name__ == "__main__":
    cli.run([("bench", BenchPlugin())], prog_name="bench_app.py")
