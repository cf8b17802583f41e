"""The history checker catches each fault it is for: histories written by hand, one broken guarantee each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from history import Execution, Faults, History, check, largest_gap, read_trace

from sundial.job import Job
from sundial.run import Attempt, Run, RunStatus
from sundial.triggers import TriggerSpec

T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
JOB = Job("tick", "tick", "test.tick", TriggerSpec("interval", interval_seconds=1.0), created_at=T0)


def fire(n: int) -> datetime:
    return T0 + timedelta(seconds=n)


def good_history(fires: int = 5) -> History:
    """A clean history: ``fires`` fire times, each a run that succeeded in one 0.1 s execution."""
    runs, attempts, executions = [], {}, []
    for n in range(1, fires + 1):
        runs.append(Run(n, "tick", fire(n), RunStatus.SUCCEEDED, attempt=1, fence=1))
        attempts[n] = [Attempt(n, 1, 1, "w:1", "succeeded", fire(n))]
        start = fire(n).timestamp() + 0.01
        executions.append(Execution(n, 1, 100, "tick", start, start + 0.1, "ok"))
    return History({"tick": JOB}, runs, attempts, executions, Faults(), until=fire(fires))


def second_attempt(history: History, index: int, first: str, second: str = "succeeded") -> Run:
    """Make run ``index`` a run of two attempts whose rows say ``first`` then ``second``; return it as it was."""
    run = history.runs[index]
    history.runs[index] = Run(run.id, "tick", run.scheduled_at, RunStatus.SUCCEEDED, attempt=2, fence=2)
    history.attempts[run.id] = [Attempt(run.id, 1, 1, "w:1", first, run.scheduled_at),
                                Attempt(run.id, 2, 2, "w:2", second, run.scheduled_at)]  # fmt: skip
    return run


def problems(history: History) -> str:
    return "\n".join(check(history).problems())


def test_a_clean_history_passes_with_its_figures() -> None:
    report = check(good_history())
    report.assert_ok()
    assert (report.fires_expected, report.fires_covered, report.executions, report.duplicate_executions) == (5, 5, 5, 0)
    assert 0.009 < report.lags[0] < 0.011
    assert "fires=5/5" in report.summary()


def test_a_lost_fire_time_is_caught_and_a_skip_record_covers_its_range() -> None:
    history = good_history()
    history.runs = [r for r in history.runs if r.id != 3]
    assert "1 fire times lost" in problems(history)
    assert "runs the store does not have: [3]" in problems(history)  # and its execution is unaccounted for
    history.executions = [e for e in history.executions if e.run_id not in (2, 3)]
    # a coalesced record standing for fire times 2 and 3 covers the gap, if its fire_count says so
    history.runs.append(Run(99, "tick", fire(2), RunStatus.SKIPPED, reason="coalesced", last_fire_at=fire(3),
                            fire_count=2))  # fmt: skip
    history.runs = [r for r in history.runs if r.id != 2]
    check(history).assert_ok()
    history.runs[-1] = Run(99, "tick", fire(2), RunStatus.SKIPPED, reason="coalesced", last_fire_at=fire(3))
    assert "fire_count" in problems(history)


def test_a_doubled_or_off_grid_fire_time_is_caught() -> None:
    history = good_history()
    history.runs.append(Run(98, "tick", fire(3), RunStatus.SKIPPED, reason="busy"))
    assert "more than one row" in problems(history)
    history = good_history()
    history.runs.append(Run(98, "tick", fire(3) + timedelta(milliseconds=1), RunStatus.SKIPPED, reason="busy"))
    assert "off the job's fire-time grid" in problems(history)


def test_an_open_or_dead_run_is_caught() -> None:
    history = good_history()
    history.runs[0] = Run(1, "tick", fire(1), RunStatus.QUEUED)
    assert "not in a final state" in problems(history)
    history.runs[0] = Run(1, "tick", fire(1), RunStatus.DEAD, attempt=1, fence=1)
    history.attempts[1] = [Attempt(1, 1, 1, "w:1", "failed", fire(1))]
    assert "dead runs" in problems(history)
    assert not check(history).problems(allow_dead=True)


def test_overlapping_executions_are_caught_but_not_a_frozen_process_that_waited() -> None:
    history = good_history()
    second = history.executions[1]
    history.executions[0].end = second.start + 0.05  # still running when the next fire time started
    assert "overlapping executions" in problems(history)
    assert check(history).max_overlap == pytest.approx(0.05)
    # the same spans, but the first execution's process was frozen from before the second until after it
    history.faults.froze(100, second.start - 0.01, second.end + 0.01)  # type: ignore[operator]
    history.executions[1].pid = 200
    assert "overlapping" not in problems(history)


def test_a_duplicate_execution_is_allowed_only_after_a_fault() -> None:
    history = good_history()
    run = second_attempt(history, 2, "lost")
    first = history.executions[2]
    assert first.end is not None
    history.executions.insert(3, Execution(run.id, 2, 200, "tick", first.end + 1, first.end + 1.1, "ok"))
    assert "no fault explains" in problems(history)
    history.faults.crashed(100, first.end + 0.01)
    report = check(history)
    report.assert_ok()
    assert (report.duplicate_executions, report.redeliveries, report.ended_but_lost) == (1, 1, 1)


def test_a_retry_after_a_recorded_failure_is_no_duplicate() -> None:
    history = good_history()
    run = second_attempt(history, 0, "failed")
    start = fire(1).timestamp() + 0.5
    history.executions.insert(1, Execution(run.id, 2, 100, "tick", start, start + 0.1, "ok"))
    report = check(history)
    report.assert_ok()
    assert (report.retries, report.duplicate_executions) == (1, 0)


def test_a_stale_result_accepted_is_caught() -> None:
    history = good_history()
    # the first (paused) attempt's late result was written over the second's: two successes
    run = second_attempt(history, 0, "succeeded")
    history.faults.froze(100, 0, 0)
    history.executions.append(Execution(run.id, 2, 200, "tick", fire(9).timestamp(), fire(9).timestamp() + 0.1))
    assert "2 attempts succeeded" in problems(history)
    # only the stale one succeeded, the newer attempt is lost: the outcome is not the last fence's
    history.attempts[run.id][1] = Attempt(run.id, 2, 2, "w:2", "lost", run.scheduled_at)
    assert "but fence 2 came after it" in problems(history)


def test_an_execution_without_an_attempt_row_or_an_end_is_caught() -> None:
    history = good_history()
    del history.attempts[2]
    history.runs[1] = Run(2, "tick", fire(2), RunStatus.SKIPPED, reason="busy")
    assert "no attempt row" in problems(history)
    history = good_history()
    history.executions[0].end = None
    assert "never ended" in problems(history)
    history.faults.killed(100, history.executions[0].start + 0.5)
    assert "never ended" not in problems(history)


def test_the_trace_is_read_back_as_executions(tmp_path: Path) -> None:
    trace = tmp_path / "trace.log"
    trace.write_text(
        "10.5 start run=1 attempt=1 pid=7 job=a\n"
        "10.6 start run=2 attempt=1 pid=7 job=b\n"
        "10.7 end run=1 attempt=1 pid=7 job=a outcome=ok\n"
        "11.0 ran run=3 attempt=1 pid=7 job=c\n"
    )
    first, second = read_trace(trace)
    assert (first.run_id, first.end, first.outcome, second.end) == (1, 10.7, "ok", None)


def test_the_largest_gap_is_measured_within_the_window() -> None:
    assert largest_gap([1.0, 2.0, 5.0, 5.5], 0.0, 6.0) == (3.0, 2.0)
    assert largest_gap([], 0.0, 2.0) == (2.0, 0.0)
