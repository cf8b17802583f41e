"""Helpers shared by the tests (importable because ``tests/`` holds the root conftest)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sundial.handlers import HandlerRegistry, RunContext
from sundial.plugins import hookimpl


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something true, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout}s: {getattr(condition, '__qualname__', condition)}")


class Handlers:
    """Test handlers that record what happened to them."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def note(self, ctx: RunContext) -> None:
        with self.lock:
            self.calls.append((ctx.run_id, ctx.attempt))

    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        registry.add("t.record", self.record)
        registry.add("t.flaky", self.flaky)
        registry.add("t.hang", self.hang)
        registry.add("t.boom", self.boom)

    def record(self, ctx: RunContext) -> None:
        self.note(ctx)
        ctx.logger.info("payload %s", ctx.payload)

    def flaky(self, ctx: RunContext) -> None:
        """Fails until its attempt number reaches payload.succeed_on."""
        self.note(ctx)
        if ctx.attempt < ctx.payload["succeed_on"]:
            raise RuntimeError(f"attempt {ctx.attempt} fails")

    def hang(self, ctx: RunContext) -> None:
        self.note(ctx)
        ctx.cancelled.wait(30)

    def boom(self, ctx: RunContext) -> None:
        raise KeyboardInterrupt("a handler that raises BaseException")
