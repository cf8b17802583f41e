"""``python server.py api`` in its own process, and ``sundialctl`` run as a subprocess against it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from apisupport import ADMIN_TOKEN, READ_TOKEN, SECRET
from support import Process, wait_for

CTL = Path(sys.executable).with_name("sundialctl")
pytestmark = pytest.mark.slow


def serve(tmp: Path, *roles: str) -> tuple[Process, str]:
    """Start ``app.py ROLES`` with the test tokens; the process and the address its API bound."""
    process = Process(tmp, *roles, SUNDIAL_API_TOKENS=READ_TOKEN, SUNDIAL_API_ADMIN_TOKENS=ADMIN_TOKEN,
                      SUNDIAL_EVENT_SIGNING_SECRET=SECRET)  # fmt: skip
    process.start()
    log = tmp / f"process-{'-'.join(roles) or 'all'}-1.log"

    def port() -> str | None:
        found = re.search(r"api listening on port (\d+)", log.read_text()) if log.exists() else None
        return found.group(1) if found else None

    try:
        return process, f"127.0.0.1:{wait_for(port, timeout=30)}"
    except BaseException:
        process.stop()
        raise


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Process, str]]:
    process, address = serve(tmp_path, "api")
    yield process, address
    process.stop()


def test_every_role_in_one_process_includes_the_api(tmp_path: Path) -> None:
    process, address = serve(tmp_path)
    try:
        ctl(address, "jobs", "create", "--id", "tick", "--name", "tick", "--handler", "test.record", "--every", "0.5")

        def status() -> dict | None:
            found = json.loads(ctl(address, "--json", "scheduler", "status").stdout)
            return found if found["state"] == "running" else None

        assert len(wait_for(status, timeout=30)["schedulers"]) == 1  # its scheduler's heartbeat
        wait_for(lambda: json.loads(ctl(address, "--json", "metrics", "--job", "tick").stdout)["tasks"][0]
                 .get("success_count", "0") != "0", timeout=30)  # fmt: skip
    finally:
        process.stop()


def ctl(
    address: str, *args: str, token: str | None = ADMIN_TOKEN, check: bool = True
) -> subprocess.CompletedProcess[str]:  # noqa: E501
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNDIALCTL_")}
    env.update({"SUNDIALCTL_ADDR": address, "TZ": "UTC"})
    if token:
        env["SUNDIALCTL_TOKEN"] = token
    done = subprocess.run([str(CTL), *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_server_py_api_serves_alone_and_stops_on_sigterm(server: tuple[Process, str]) -> None:
    process, address = server
    with grpc.insecure_channel(address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    plugins = json.loads(ctl(address, "--json", "plugins", "list", token=READ_TOKEN).stdout)
    assert "builtin" in {p["name"] for p in plugins["plugins"]}
    status = json.loads(ctl(address, "--json", "scheduler", "status").stdout)
    assert status["state"] == "stopped" and status["coordination"] == "cooperative"  # the api role schedules nothing
    process.signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_sundialctl_drives_every_service(server: tuple[Process, str]) -> None:
    _, address = server
    out = ctl(address, "jobs", "create", "--id", "hello", "--name", "Say hello", "--handler", "test.record",
              "--every", "60", "--payload", '{"n": 1}').stdout  # fmt: skip
    assert "hello" in out and "every 60s" in out
    spec = '{"timeout_seconds": 60, "retry_policy": {"max_retries": 5}, "name": "overridden"}'
    full = json.loads(ctl(address, "--json", "jobs", "create", "--id", "full", "--name", "Full", "--handler",
                          "test.record", "--every", "30", "--spec", spec).stdout)  # fmt: skip
    assert (full["spec"]["name"], full["spec"]["timeout_seconds"], full["spec"]["retry_policy"]["max_retries"]) == (
        "Full", 60, 5)  # fmt: skip
    bad_spec = ctl(address, "jobs", "create", "--name", "x", "--handler", "test.record", "--spec", '{"nope": 1}',
                   check=False)  # fmt: skip
    assert bad_spec.returncode == 2 and "--spec" in bad_spec.stderr
    ctl(address, "jobs", "delete", "full")
    [job] = json.loads(ctl(address, "--json", "jobs", "list", "--plugin", "test").stdout)
    assert (job["spec"]["id"], job["state"], job["version"]) == ("hello", "enabled", "1")
    updated = json.loads(ctl(address, "--json", "jobs", "update", "hello", "--version", "1", "--name", "Hi").stdout)
    assert updated["spec"]["name"] == "Hi"
    stale = ctl(address, "jobs", "update", "hello", "--version", "1", "--name", "Again", check=False)
    assert stale.returncode == 1 and "FAILED_PRECONDITION" in stale.stderr and "version 2" in stale.stderr
    run = json.loads(ctl(address, "--json", "jobs", "trigger", "hello", "--payload", '{"n": 2}').stdout)
    assert json.loads(run["payload_json"]) == {"n": 2}
    runs = ctl(address, "runs", "list", "--job", "hello").stdout
    assert run["id"] in runs and "pending" in runs
    assert json.loads(ctl(address, "--json", "runs", "get", run["id"]).stdout)["run"]["status"] == "pending"
    assert json.loads(ctl(address, "--json", "runs", "logs", run["id"]).stdout) == {"lines": []}
    preview = ctl(address, "--tz", "Asia/Tokyo", "jobs", "preview", "--cron", "0 8 * * *", "--timezone",
                  "Europe/London", "--count", "2").stdout  # fmt: skip
    assert "T08:00:00+0" in preview and "+09:00" in preview
    ctl(
        address,
        "jobs",
        "create",
        "--id",
        "hourly",
        "--name",
        "hourly",
        "--handler",
        "test.record",
        "--cron",
        "0 * * * *",
    )
    history = json.loads(ctl(address, "--json", "jobs", "history", "hourly").stdout)
    assert any(f.get("why_none") == "before the job was created" for f in history["fires"])
    backfill = ctl(address, "jobs", "backfill", "hello", "--start", "2020-01-01T00:00:00+00:00",
                   "--end", "2020-01-01T00:10:00+00:00").stdout  # fmt: skip
    assert "0 runs created" in backfill  # an interval counts from its creation: nothing fired in 2020
    paused = json.loads(ctl(address, "--json", "scheduler", "pause", "--queue", "default", "--reason", "deploy").stdout)
    assert paused["pauses"][0]["queue"] == "default"
    assert json.loads(ctl(address, "--json", "scheduler", "resume", "--queue", "default").stdout)["pauses"] == []
    assert "(none)" in ctl(address, "dead", "list").stdout
    assert "0 runs replayed" in ctl(address, "dead", "replay", "--all").stdout
    metrics = json.loads(ctl(address, "--json", "metrics", "--job", "hello").stdout)
    assert metrics["tasks"][0]["job_id"] == "hello" and metrics["queues"][0]["pending"] == "1"
    ctl(address, "jobs", "create", "--id", "bind", "--name", "bind", "--handler", "test.record",
        "--on-event", "code.activated")  # fmt: skip
    published = ctl(address, "events", "publish", "code.activated", "--id", "e1", "--secret", SECRET).stdout
    assert "event e1: 1 runs created" in published
    forged = ctl(address, "events", "publish", "code.activated", "--secret", "wrong-secret-0123456789", check=False)
    assert forged.returncode == 1 and "UNAUTHENTICATED" in forged.stderr
    assert "deleted hello" in ctl(address, "jobs", "delete", "hello").stdout
    missing = ctl(address, "jobs", "get", "hello", check=False)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr and "no job with id 'hello'" in missing.stderr


def test_sundialctl_watches_runs_as_they_change(server: tuple[Process, str]) -> None:
    _, address = server
    ctl(address, "jobs", "create", "--id", "seen", "--name", "seen", "--handler", "test.record", "--every", "600")
    env = {**os.environ, "SUNDIALCTL_ADDR": address, "SUNDIALCTL_TOKEN": READ_TOKEN}
    watcher = subprocess.Popen([str(CTL), "--json", "runs", "watch", "--job", "seen"], env=env,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watcher.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        # the watch starts from "now": trigger until its first poll has begun and a change shows
        run_ids = set()

        def seen() -> bool:
            run_ids.add(json.loads(ctl(address, "--json", "jobs", "trigger", "seen").stdout)["id"])
            return any(json.loads(line)["id"] in run_ids for line in list(lines))

        wait_for(seen, timeout=30, interval=0.5)
        assert {json.loads(line)["status"] for line in list(lines)} == {"pending"}
    finally:
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(10) == 0  # an interrupted watch ends cleanly


def test_sundialctl_reports_auth_errors_and_exits_non_zero(server: tuple[Process, str]) -> None:
    _, address = server
    anonymous = ctl(address, "jobs", "list", token=None, check=False)
    assert anonymous.returncode == 1 and "UNAUTHENTICATED" in anonymous.stderr
    reader = ctl(address, "jobs", "create", "--name", "x", "--handler", "test.record", "--every", "5",
                 token=READ_TOKEN, check=False)  # fmt: skip
    assert reader.returncode == 1 and "PERMISSION_DENIED" in reader.stderr
    bad = ctl(address, "jobs", "create", "--name", "x", "--handler", "test.record", "--cron", "61 * * * *", check=False)
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "cron_expression" in bad.stderr
