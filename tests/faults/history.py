"""The fault suite's history: what every process did (the trace), what the store says, and the checks.

Handlers of ``tests/integration/app.py`` append ``start`` and ``end`` lines
to one trace file shared by every process (wall time, run id, attempt, pid,
job). The test notes the faults it caused (``Faults``: a process killed,
crashed at a failpoint, or frozen with SIGSTOP). ``History.load`` adds the
store's view (jobs, runs and skip records, the attempt rows), and ``check``
holds the history against Sundial's guarantees:

- every fire time of every job in the window has exactly one row covering it
  (a run, or a skip record covering a range with ``fire_count``), none off
  the job's grid: no fire time lost or doubled;
- every run reached a final state;
- no two executions of a job with ``max_instances`` 1 overlapped in time
  (a frozen process's execution counts only while it was not frozen);
- no stale result was accepted: a run's outcome is the attempt with its
  highest fence, and at most one attempt succeeded;
- every execution left an attempt row, and every execution of a run again
  that is not a retry of a recorded failure (a duplicate) is explained by a
  fault of the process that ran an earlier one (at-least-once delivery
  allows those, and only those).

A fence is raised exactly when the attempt number is (each claim raises
both), so a trace line's attempt names its fence; the check asserts that
the attempt rows keep this so.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from sundial.job import Job
from sundial.run import OPEN_STATUSES, Attempt, Run, RunStatus
from sundial.scheduler import schedule_for
from sundial.store import tables as t
from sundial.store.sqlalchemy import SQLStore

# attempt rows the sweeper or a shutdown wrote for an attempt whose worker did not finish it
_UNFINISHED = ("lost", "released")


@dataclass
class Execution:
    """One handler execution, from its trace lines; ``end`` is None when no end line was written."""

    run_id: int
    attempt: int
    pid: int
    job_id: str
    start: float
    end: float | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class Fault:
    """Something a test did to a process: ``kill`` or ``crash`` at ``at``, or ``freeze`` from ``at`` to ``until``."""

    kind: str
    pid: int
    at: float
    until: float | None = None


@dataclass
class Faults:
    """The faults a test caused, by process."""

    events: list[Fault] = field(default_factory=list)

    def killed(self, pid: int, at: float) -> None:
        """``pid`` got SIGKILL at ``at``."""
        self.events.append(Fault("kill", pid, at))

    def crashed(self, pid: int, at: float) -> None:
        """``pid`` killed itself at a failpoint, noticed at ``at`` (no later than it died)."""
        self.events.append(Fault("crash", pid, at))

    def froze(self, pid: int, at: float, until: float) -> None:
        """``pid`` was stopped (SIGSTOP) at ``at`` and continued (SIGCONT) at ``until``."""
        self.events.append(Fault("freeze", pid, at, until))

    @property
    def pids(self) -> set[int]:
        return {f.pid for f in self.events}

    def death(self, pid: int) -> float | None:
        """When ``pid`` died, if a fault killed it."""
        return next((f.at for f in self.events if f.pid == pid and f.kind in ("kill", "crash")), None)

    def frozen(self, pid: int) -> list[tuple[float, float]]:
        return [(f.at, f.until or f.at) for f in self.events if f.pid == pid and f.kind == "freeze"]


def read_trace(path: Path) -> list[Execution]:
    """The executions in a trace file, in start order; an ``end`` is matched to its (run, attempt, pid)."""
    executions: dict[tuple[int, int, int], Execution] = {}
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[1] not in ("start", "end"):
            continue
        at, event = float(parts[0]), parts[1]
        fields = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
        key = (int(fields["run"]), int(fields["attempt"]), int(fields["pid"]))
        if event == "start":
            executions[key] = Execution(key[0], key[1], key[2], fields.get("job", ""), at)
        elif key in executions:
            executions[key].end, executions[key].outcome = at, fields.get("outcome")
    return sorted(executions.values(), key=lambda e: e.start)


@dataclass
class History:
    """Everything the checks read: jobs, runs, attempt rows, traced executions, and the faults caused."""

    jobs: dict[str, Job]
    runs: list[Run]
    attempts: dict[int, list[Attempt]]
    executions: list[Execution]
    faults: Faults
    #: the end of the window whose fire times must all be covered (the store's time when jobs were paused)
    until: datetime | None = None

    @classmethod
    def load(
        cls, store: SQLStore, trace: Path, faults: Faults, *, until: datetime | None = None,
        job_ids: Iterable[str] | None = None,
    ) -> History:  # fmt: skip
        """Read the store and the trace (all jobs, or ``job_ids`` only)."""
        wanted = set(job_ids) if job_ids is not None else None
        jobs = {j.id: j for j in store.list_jobs(limit=1_000_000) if wanted is None or j.id in wanted}
        runs = [r for r in store.list_runs(limit=10_000_000, newest_first=False) if r.job_id in jobs]
        ids = {r.id for r in runs}
        attempts: dict[int, list[Attempt]] = defaultdict(list)
        a = t.run_attempts.c
        with store.engine.connect() as conn:
            for row in conn.execute(select(t.run_attempts).order_by(a.id)).mappings():
                if row["run_id"] in ids:
                    attempts[row["run_id"]].append(
                        Attempt(row["run_id"], row["attempt"], row["fence"], row["worker"], row["status"],
                                row["started_at"], row["error"], row["finished_at"], row["duration_seconds"])
                    )  # fmt: skip
        executions = [e for e in read_trace(trace) if e.job_id in jobs]
        return cls(jobs, runs, dict(attempts), executions, faults, until)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values``, None when there are none."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


@dataclass
class Report:
    """What ``check`` found: the figures, and the problems (each a broken guarantee)."""

    runs_checked: int = 0
    fires_expected: int = 0
    fires_covered: int = 0
    lost_fires: list[tuple[str, datetime]] = field(default_factory=list)
    doubled_fires: list[tuple[str, datetime, int]] = field(default_factory=list)
    off_grid: list[tuple[str, datetime]] = field(default_factory=list)
    bad_fire_counts: list[tuple[int, int, int]] = field(default_factory=list)  # run, fire_count, fires covered
    statuses: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    open_runs: list[int] = field(default_factory=list)
    dead_runs: list[int] = field(default_factory=list)
    executions: int = 0
    duplicate_executions: int = 0  # a run executed again although no failure of it was recorded
    retries: int = 0  # a run executed again after a recorded failure
    unexplained_duplicates: list[int] = field(default_factory=list)
    orphan_executions: list[int] = field(default_factory=list)  # traced runs the store does not have
    unrecorded_executions: list[tuple[int, int]] = field(default_factory=list)  # (run, attempt) without a row
    unfinished_executions: list[tuple[int, int]] = field(default_factory=list)  # no end, and no fault ended it
    overlaps: list[tuple[str, int, int, float]] = field(default_factory=list)  # job, run, run, seconds
    stale_results: list[str] = field(default_factory=list)
    redeliveries: int = 0  # attempt rows with status lost: a lease expired and the run went back to the queue
    # executions that ended but whose attempt the store says was lost: the worker died before recording the
    # outcome, or (a paused worker) its late result was refused by the fence
    ended_but_lost: int = 0
    lags: list[float] = field(default_factory=list)  # first execution's start minus fire time, seconds

    @property
    def max_overlap(self) -> float:
        return max((o[3] for o in self.overlaps), default=0.0)

    def problems(self, *, allow_dead: bool = False) -> list[str]:
        """Every broken guarantee, in a line each (a few examples of each)."""
        found: list[str] = []

        def add(what: str, items: Sequence[object]) -> None:
            if items:
                found.append(f"{len(items)} {what}: {list(items)[:5]}")

        add("fire times lost (no run or skip record)", self.lost_fires)
        add("fire times with more than one row", self.doubled_fires)
        add("rows off the job's fire-time grid", self.off_grid)
        add("skip records whose fire_count is not the fire times they cover", self.bad_fire_counts)
        add("runs not in a final state", self.open_runs)
        if not allow_dead:
            add("dead runs", self.dead_runs)
        add("duplicate executions no fault explains (runs)", self.unexplained_duplicates)
        add("executions of runs the store does not have", self.orphan_executions)
        add("executions with no attempt row", self.unrecorded_executions)
        add("executions that never ended with no fault to end them", self.unfinished_executions)
        add("overlapping executions of a no-overlap job", self.overlaps)
        add("stale or doubled results accepted", self.stale_results)
        return found

    def assert_ok(self, *, allow_dead: bool = False) -> None:
        """Fail with every problem found."""
        problems = self.problems(allow_dead=allow_dead)
        assert not problems, "history check failed:\n" + "\n".join(problems) + f"\n{self.summary()}"

    def summary(self) -> str:
        """The figures in one line."""
        p50, p99 = percentile(self.lags, 50), percentile(self.lags, 99)
        lag = f"lag_p50={p50:.3f}s lag_p99={p99:.3f}s" if p50 is not None and p99 is not None else "lag=n/a"
        skipped = ",".join(f"{k}:{v}" for k, v in sorted(self.skipped.items())) or "0"
        return (
            f"runs={self.runs_checked} fires={self.fires_covered}/{self.fires_expected}"
            f" lost={len(self.lost_fires)} doubled={len(self.doubled_fires)} open={len(self.open_runs)}"
            f" dead={len(self.dead_runs)} skipped={skipped} executions={self.executions}"
            f" retries={self.retries} duplicates={self.duplicate_executions}"
            f" unexplained={len(self.unexplained_duplicates)}"
            f" redeliveries={self.redeliveries} ended_but_lost={self.ended_but_lost}"
            f" overlaps={len(self.overlaps)} max_overlap={self.max_overlap:.3f}s"
            f" stale={len(self.stale_results)} {lag}"
        )


def check(history: History) -> Report:
    """Hold ``history`` against the guarantees; see the module's docstring."""
    report = Report(runs_checked=len(history.runs))
    _check_fire_times(history, report)
    _check_states(history, report)
    _check_executions(history, report)
    _check_results(history, report)
    return report


def _check_fire_times(history: History, report: Report) -> None:
    by_job: dict[str, list[Run]] = defaultdict(list)
    for run in history.runs:
        by_job[run.job_id].append(run)
    for job_id, job in history.jobs.items():
        rows = by_job.get(job_id, [])
        if job.type == "date" and job.trigger.run_at is not None:
            grid = [job.trigger.run_at]
        elif job.type in ("interval", "cron") and job.created_at is not None:
            last = max((r.last_fire_at or r.scheduled_at for r in rows), default=job.created_at)
            end = max(last, history.until) if history.until else last
            grid = schedule_for(job).fire_times(job.created_at, end, limit=10_000_000)
        else:
            continue  # event jobs fire when told: no fire time is expected of them
        on_grid = set(grid)
        cover: Counter[datetime] = Counter()
        for run in rows:
            if run.scheduled_at not in on_grid:
                report.off_grid.append((job_id, run.scheduled_at))
                continue
            if run.last_fire_at is None or run.last_fire_at == run.scheduled_at:
                covered = [run.scheduled_at]
            else:
                covered = [f for f in grid if run.scheduled_at <= f <= run.last_fire_at]
            if len(covered) != run.fire_count:
                report.bad_fire_counts.append((run.id, run.fire_count, len(covered)))
            cover.update(covered)
        expected = [f for f in grid if history.until is None or f <= history.until]
        report.fires_expected += len(expected)
        for fire in expected:
            n = cover.get(fire, 0)
            if n == 0:
                report.lost_fires.append((job_id, fire))
            elif n > 1:
                report.doubled_fires.append((job_id, fire, n))
            else:
                report.fires_covered += 1


def _check_states(history: History, report: Report) -> None:
    for run in history.runs:
        report.statuses[run.status.value] += 1
        if run.status in OPEN_STATUSES:
            report.open_runs.append(run.id)
        elif run.status is RunStatus.DEAD:
            report.dead_runs.append(run.id)
        elif run.status is RunStatus.SKIPPED:
            report.skipped[run.reason or "?"] += run.fire_count


def _active(execution: Execution, faults: Faults) -> list[tuple[float, float]]:
    """When ``execution`` really ran: start to end (or its process's death), minus the process's frozen spans."""
    end = execution.end if execution.end is not None else faults.death(execution.pid)
    if end is None:
        return []
    spans = [(execution.start, end)]
    for frozen_from, frozen_to in faults.frozen(execution.pid):
        cut: list[tuple[float, float]] = []
        for a, b in spans:
            if frozen_to <= a or frozen_from >= b:
                cut.append((a, b))
                continue
            if a < frozen_from:
                cut.append((a, frozen_from))
            if frozen_to < b:
                cut.append((frozen_to, b))
        spans = cut
    return spans


def _check_executions(history: History, report: Report) -> None:
    faults = history.faults
    runs = {r.id: r for r in history.runs}
    report.executions = len(history.executions)
    report.orphan_executions = [e.run_id for e in history.executions if e.run_id not in runs]
    by_run: dict[int, list[Execution]] = defaultdict(list)
    for execution in (e for e in history.executions if e.run_id in runs):
        by_run[execution.run_id].append(execution)
        rows = {a.attempt: a for a in history.attempts.get(execution.run_id, [])}
        row = rows.get(execution.attempt)
        if row is None:
            report.unrecorded_executions.append((execution.run_id, execution.attempt))
        elif execution.end is not None and row.status in _UNFINISHED:
            report.ended_but_lost += 1
        if execution.end is None and faults.death(execution.pid) is None:
            report.unfinished_executions.append((execution.run_id, execution.attempt))
    for run_id, executions in by_run.items():
        rows = {a.attempt: a for a in history.attempts.get(run_id, [])}
        for n in range(1, len(executions)):
            before = rows.get(executions[n - 1].attempt)
            if before is not None and before.status == RunStatus.FAILED.value:
                report.retries += 1  # the retry policy at work, after a failure that was recorded
                continue
            report.duplicate_executions += 1
            # at-least-once allows running again only after a fault took an earlier execution's process
            if not any(earlier.pid in faults.pids for earlier in executions[:n]):
                report.unexplained_duplicates.append(run_id)
        first = executions[0]
        run = runs[run_id]
        if first.attempt == 1:
            report.lags.append(first.start - run.scheduled_at.timestamp())
    report.lags.sort()
    # spans of one execution (split by a freeze) never overlap each other; any two others must not
    by_job: dict[str, list[tuple[float, float, int, int]]] = defaultdict(list)
    for n, execution in enumerate(history.executions):
        job = history.jobs.get(execution.job_id)
        if job is not None and job.max_instances == 1:
            by_job[job.id].extend((a, b, n, execution.run_id) for a, b in _active(execution, faults))
    for job_id, spans in by_job.items():
        spans.sort()
        latest_end, latest, latest_run = float("-inf"), -1, 0
        for start, end, n, run_id in spans:
            if start < latest_end and n != latest:
                report.overlaps.append((job_id, latest_run, run_id, round(min(end, latest_end) - start, 6)))
            if end > latest_end:
                latest_end, latest, latest_run = end, n, run_id


def _check_results(history: History, report: Report) -> None:
    executions = {(e.run_id, e.attempt) for e in history.executions if e.end is not None}
    traced = {e.run_id for e in history.executions}
    for run in history.runs:
        rows = sorted(history.attempts.get(run.id, []), key=lambda a: a.fence)
        report.redeliveries += sum(1 for a in rows if a.status == "lost")
        for a in rows:
            if a.fence != a.attempt:
                report.stale_results.append(f"run {run.id}: attempt {a.attempt} has fence {a.fence}")
        succeeded = [a for a in rows if a.status == RunStatus.SUCCEEDED.value]
        if len(succeeded) > 1:
            report.stale_results.append(f"run {run.id}: {len(succeeded)} attempts succeeded")
        if not rows:
            if run.status is RunStatus.SUCCEEDED:
                report.stale_results.append(f"run {run.id}: succeeded with no attempt row")
            continue
        last = rows[-1]
        if succeeded and succeeded[-1] is not last:
            report.stale_results.append(
                f"run {run.id}: attempt {succeeded[-1].attempt} succeeded under fence {succeeded[-1].fence},"
                f" but fence {last.fence} came after it"
            )
        if run.status is RunStatus.SUCCEEDED and (not succeeded or run.fence != succeeded[-1].fence):
            report.stale_results.append(f"run {run.id}: succeeded, but not by its current fence {run.fence}")
        if succeeded and run.id in traced and (run.id, succeeded[-1].attempt) not in executions:
            report.stale_results.append(f"run {run.id}: attempt {succeeded[-1].attempt} succeeded but never ran")


# -- figures for scenarios ---------------------------------------------------------------------


def largest_gap(instants: Iterable[float], start: float, end: float) -> tuple[float, float]:
    """The longest stretch in [start, end] with none of ``instants``: (its length, when it began)."""
    points = sorted(i for i in instants if start <= i <= end)
    best, began, previous = 0.0, start, start
    for point in [*points, end]:
        if point - previous > best:
            best, began = point - previous, previous
        previous = point
    return best, began


def first_after(executions: Iterable[Execution], at: float, outcome: str = "ok") -> float | None:
    """How long after ``at`` the first execution that started then ended with ``outcome``."""
    ends = [e.end for e in executions if e.start >= at and e.end is not None and e.outcome == outcome]
    return min(ends) - at if ends else None
