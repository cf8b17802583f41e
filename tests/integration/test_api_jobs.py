"""JobService over a real gRPC channel, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from apisupport import READ_TOKEN, Api, code_of
from sundial.store.sqlalchemy import SQLStore
from sundial.v1 import jobs_pb2 as pb


@pytest.fixture
def api(store: SQLStore, tmp_path: Path) -> Iterator[Api]:
    server = Api(store, tmp_path)
    yield server
    server.close()


def stamp(value: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(value)
    return result


def create(api: Api, job_id: str, **fields: object) -> pb.Job:
    spec = {"id": job_id, "name": job_id, "handler": "t.record", "type": "interval", "interval_seconds": 60, **fields}
    return api.call("JobService/CreateJob", pb.CreateJobRequest(job=pb.JobSpec(**spec)))


def test_create_get_and_list_with_filters_and_page_tokens(api: Api) -> None:
    for i in range(5):
        create(api, f"job-{i}", queue="mail" if i % 2 else "default", payload_json=json.dumps({"n": i}))
    create(api, "logger", handler="sundial.log_message")
    job = api.call("JobService/GetJob", pb.GetJobRequest(id="job-1"), token=READ_TOKEN)
    assert (job.spec.queue, job.state, job.version) == ("mail", "enabled", 1)
    assert json.loads(job.spec.payload_json) == {"n": 1}
    assert job.HasField("next_run_at") and job.spec.interval_seconds == 60

    seen, token = [], ""
    while True:
        page = api.call("JobService/ListJobs", pb.ListJobsRequest(plugin="t", page_size=2, page_token=token))
        assert len(page.jobs) <= 2
        seen += [j.spec.id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"job-{i}" for i in range(5)]
    mail = api.call("JobService/ListJobs", pb.ListJobsRequest(queue="mail"))
    assert [j.spec.id for j in mail.jobs] == ["job-1", "job-3"]
    logged = api.call("JobService/ListJobs", pb.ListJobsRequest(handler="sundial.log_message"))
    assert [j.spec.id for j in logged.jobs] == ["logger"]
    api.call("JobService/PauseJob", pb.JobVersionRequest(id="job-2"))
    paused = api.call("JobService/ListJobs", pb.ListJobsRequest(state="paused"))
    assert [j.spec.id for j in paused.jobs] == ["job-2"]
    builtin = api.call("JobService/ListJobs", pb.ListJobsRequest(plugin="builtin"))
    assert [j.origin for j in builtin.jobs] == ["builtin"]


def test_errors_name_the_field_and_map_to_statuses(api: Api) -> None:
    create(api, "taken")
    code, message = code_of(lambda: create(api, "taken"))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "taken" in message
    code, message = code_of(lambda: create(api, "bad", type="cron", cron_expression="61 * * * *"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "cron_expression" in message
    code, message = code_of(lambda: create(api, "bad2", payload_json="[1, 2]"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "job.payload_json" in message
    nul = '{"a": "\\u0000"}'  # JSON for a NUL character, which PostgreSQL's JSONB refuses
    code, message = code_of(lambda: create(api, "nul", payload_json=nul))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "NUL" in message
    code, message = code_of(api.call, "JobService/TriggerJob", pb.TriggerJobRequest(id="taken", payload_json=nul))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "NUL" in message
    code, message = code_of(lambda: api.call("JobService/GetJob", pb.GetJobRequest(id="missing")))
    assert code == grpc.StatusCode.NOT_FOUND and "missing" in message
    code, message = code_of(lambda: api.call("JobService/GetJob", pb.GetJobRequest(id="bad id!")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("id:")
    code, message = code_of(lambda: api.call("JobService/ListJobs", pb.ListJobsRequest(page_size=5000)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "page_size" in message
    code, message = code_of(lambda: api.call("JobService/ListJobs", pb.ListJobsRequest(page_token="garbage")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in message


def test_update_with_version_refuses_a_stale_one_and_clears_fields(api: Api) -> None:
    job = create(api, "edit", misfire_grace_seconds=30)
    changed = api.call(
        "JobService/UpdateJob",
        pb.UpdateJobRequest(id="edit", version=job.version, changes=pb.JobSpec(name="renamed"),
                            clear_fields=["misfire_grace_seconds"]),
    )  # fmt: skip
    assert (changed.spec.name, changed.version, changed.spec.HasField("misfire_grace_seconds")) == ("renamed", 2, False)
    stale = pb.UpdateJobRequest(id="edit", version=job.version, changes=pb.JobSpec(name="again"))
    code, message = code_of(lambda: api.call("JobService/UpdateJob", stale))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "version 2" in message
    code, _ = code_of(lambda: api.call("JobService/PauseJob", pb.JobVersionRequest(id="edit", version=1)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    paused = api.call("JobService/PauseJob", pb.JobVersionRequest(id="edit", version=2))
    assert paused.state == "paused"
    assert api.call("JobService/ResumeJob", pb.JobVersionRequest(id="edit")).state == "enabled"
    api.call("JobService/DeleteJob", pb.DeleteJobRequest(id="edit"))
    code, _ = code_of(lambda: api.call("JobService/GetJob", pb.GetJobRequest(id="edit")))
    assert code == grpc.StatusCode.NOT_FOUND


def test_trigger_now_with_a_payload_override(api: Api) -> None:
    create(api, "fire", payload_json='{"a": 1}')
    run = api.call("JobService/TriggerJob", pb.TriggerJobRequest(id="fire"))
    assert (run.job_id, run.status, json.loads(run.payload_json)) == ("fire", "pending", {"a": 1})
    other = api.call("JobService/TriggerJob", pb.TriggerJobRequest(id="fire", payload_json='{"b": 2}'))
    assert json.loads(other.payload_json) == {"b": 2} and other.id != run.id
    not_json = pb.TriggerJobRequest(id="fire", payload_json="x")
    code, message = code_of(lambda: api.call("JobService/TriggerJob", not_json))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "payload_json" in message


def test_preview_in_utc_and_the_jobs_zone_across_a_dst_change(api: Api) -> None:
    trigger = pb.JobSpec(type="cron", cron_expression="0 8 * * *", timezone="Europe/London")
    after = stamp(datetime(2026, 3, 27, 12, tzinfo=UTC))
    answer = api.call("JobService/PreviewFireTimes", pb.PreviewFireTimesRequest(trigger=trigger, count=3, after=after))
    assert answer.timezone == "Europe/London"
    assert [f.local for f in answer.fire_times] == [
        "2026-03-28T08:00:00+00:00", "2026-03-29T08:00:00+01:00", "2026-03-30T08:00:00+01:00"]  # fmt: skip
    assert [f.at.ToDatetime(tzinfo=UTC).hour for f in answer.fire_times] == [8, 7, 7]
    create(api, "hourly", type="cron", cron_expression="0 * * * *", interval_seconds=None)
    saved = api.call("JobService/PreviewFireTimes", pb.PreviewFireTimesRequest(job_id="hourly", count=2))
    assert len(saved.fire_times) == 2 and all(f.at.ToDatetime().minute == 0 for f in saved.fire_times)
    bad = pb.PreviewFireTimesRequest(trigger=pb.JobSpec(type="cron", cron_expression="0 8 * * *", timezone="Mars/Base"))
    code, message = code_of(lambda: api.call("JobService/PreviewFireTimes", bad))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "timezone" in message
    code, message = code_of(lambda: api.call("JobService/PreviewFireTimes", pb.PreviewFireTimesRequest()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "job_id" in message


def test_backfill_creates_runs_once_and_history_explains_each_fire_time(api: Api) -> None:
    create(api, "hourly", type="cron", cron_expression="0 * * * *", interval_seconds=None)
    now = api.store.now()
    start, end = now - timedelta(hours=5), now
    request = pb.BackfillJobRequest(id="hourly", start=stamp(start), end=stamp(end))
    first = api.call("JobService/BackfillJob", request)
    assert len(first.created) == 5 and first.already_recorded == 0
    assert {r.reason for r in first.created} == {"backfill"}
    again = api.call("JobService/BackfillJob", request)
    assert (len(again.created), again.already_recorded) == (0, 5)
    future = pb.BackfillJobRequest(id="hourly", start=stamp(start), end=stamp(now + timedelta(hours=1)))
    code, message = code_of(lambda: api.call("JobService/BackfillJob", future))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("end:")

    history = api.call(
        "JobService/GetFireHistory",
        pb.GetFireHistoryRequest(id="hourly", start=stamp(now - timedelta(hours=7)), end=stamp(now)),
    )
    covered = [f for f in history.fires if f.HasField("run")]
    missing = [f for f in history.fires if not f.HasField("run")]
    assert len(covered) == 5 and {f.run.reason for f in covered} == {"backfill"}
    assert len(missing) in (1, 2) and {f.why_none for f in missing} == {"before the job was created"}
    assert [f.fire_time.ToDatetime() for f in history.fires] == sorted(
        (f.fire_time.ToDatetime() for f in history.fires), reverse=True
    )


def test_history_refuses_a_range_with_too_many_fire_times_and_says_when_it_is_cut(api: Api) -> None:
    create(api, "fast", interval_seconds=1)
    now = api.store.now()
    week = pb.GetFireHistoryRequest(id="fast", start=stamp(now), end=stamp(now + timedelta(days=1)))
    code, message = code_of(api.call, "JobService/GetFireHistory", week)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("start:")
    ahead = pb.GetFireHistoryRequest(id="fast", start=stamp(now), end=stamp(now + timedelta(seconds=30)), page_size=5)
    answer = api.call("JobService/GetFireHistory", ahead)
    assert len(answer.fires) == 5 and answer.truncated
    assert {f.why_none for f in answer.fires} == {"not due yet"}
