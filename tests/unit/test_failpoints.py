"""Failpoints: parsed strictly, off by default, acting on the hit they name."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from sundial import failpoints


def test_the_spec_names_points_and_actions() -> None:
    actions = failpoints.parse("worker.after_handler=crash@3, relay.before_publish=sleep(0.5)")
    assert (actions["worker.after_handler"].crash, actions["worker.after_handler"].on_hit) == (True, 3)
    assert (actions["relay.before_publish"].seconds, actions["relay.before_publish"].on_hit) == (0.5, None)
    assert failpoints.parse("") == {}


@pytest.mark.parametrize(
    ("spec", "named"),
    [("worker.after_lunch=crash", "unknown failpoint 'worker.after_lunch'"), ("relay.after_publish=explode", "action")],
)
def test_a_bad_spec_is_refused_naming_the_problem(spec: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        failpoints.parse(spec)


def run_points(spec: str, hits: int) -> subprocess.CompletedProcess[str]:
    code = (
        "from sundial.failpoints import failpoint\n"
        f"for n in range({hits}):\n"
        "    print(n, flush=True)\n"
        "    failpoint('worker.after_commit')\n"
    )
    return subprocess.run([sys.executable, "-c", code], env={"SUNDIAL_FAILPOINTS": spec, "PATH": ""},
                          capture_output=True, text=True, timeout=30)  # fmt: skip


def test_crash_kills_the_process_on_the_hit_it_names() -> None:
    done = run_points("worker.after_commit=crash@3", 5)
    assert done.returncode == -9 and done.stdout.split() == ["0", "1", "2"]


def test_without_the_variable_nothing_happens() -> None:
    done = run_points("", 5)
    assert done.returncode == 0 and done.stdout.split() == ["0", "1", "2", "3", "4"]


def test_sleep_pauses_on_every_hit() -> None:
    started = time.monotonic()
    done = run_points("worker.after_commit=sleep(0.2)", 3)
    assert done.returncode == 0 and time.monotonic() - started >= 0.6
