"""Helpers shared by the tests (importable because ``tests/`` holds the root conftest)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from sundial.handlers import HandlerRegistry, RunContext
from sundial.metrics import Metrics
from sundial.plugins import hookimpl

REDIS_URL = os.environ.get("SUNDIAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class RedisServer:
    """A ``redis-server`` of a test's own on a free loopback port, stopped and started at will (empty each time)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._answers, timeout=10)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something true, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout}s: {getattr(condition, '__qualname__', condition)}")


def samples(source: Metrics | str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples called ``name`` (with their labels) in a process's metrics or in a scraped page."""
    families = text_string_to_metric_families(source) if isinstance(source, str) else source.registry.collect()
    return [(dict(s.labels), s.value) for family in families for s in family.samples if s.name == name]


class Handlers:
    """Test handlers that record what happened to them."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.spans: list[tuple[str, float, float]] = []  # (job, start, end) of each t.span execution
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
        registry.add("t.sleep", self.sleep)
        registry.add("t.span", self.span)

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

    def sleep(self, ctx: RunContext) -> None:
        """Takes payload.seconds."""
        self.note(ctx)
        time.sleep(ctx.payload["seconds"])

    def span(self, ctx: RunContext) -> None:
        """Takes payload.seconds and records when it ran, to check overlaps."""
        self.note(ctx)
        start = time.monotonic()
        time.sleep(ctx.payload["seconds"])
        with self.lock:
            self.spans.append((ctx.job.id, start, time.monotonic()))

    def boom(self, ctx: RunContext) -> None:
        raise KeyboardInterrupt("a handler that raises BaseException")


APP = Path(__file__).with_name("integration") / "app.py"


class Process:
    """``tests/integration/app.py`` (server.py with the test handlers) in a child process."""

    def __init__(self, tmp: Path, *args: str, **env: str) -> None:
        self.tmp = tmp
        self.trace = tmp / "trace.log"
        self.env = {
            **os.environ,
            "SUNDIAL_DATABASE_URL": f"sqlite:///{tmp / 'sundial.db'}",
            "SUNDIAL_LEASE_SECONDS": "2",
            "SUNDIAL_SWEEP_INTERVAL_SECONDS": "0.2",
            "SUNDIAL_MAX_IDLE_SECONDS": "0.2",
            "SUNDIAL_LOG_LEVEL": "INFO",
            "SUNDIAL_TEST_TRACE": str(self.trace),
            # every role includes the API: on an ephemeral port, so processes never collide on one
            "SUNDIAL_API_ADDR": "127.0.0.1:0",
            **env,
        }
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.label = "-".join(args) or "all"  # names its log file; tests with several alike processes set it

    def start(self) -> None:
        self.starts += 1
        self.log_path = self.tmp / f"process-{self.label}-{self.starts}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(APP), *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def lines(self, event: str) -> list[str]:
        if not self.trace.exists():
            return []
        return [line for line in self.trace.read_text().splitlines() if f" {event} " in line]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
