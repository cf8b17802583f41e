"""The command line on the embedded store: the README's quick start, and errors that name the problem."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sundial.cli import main
from sundial.locks.redis import RedisLocks
from sundial.metrics import Metrics
from sundial.run import RunStatus
from sundial.store.rows import Outcome
from sundial.store.sqlalchemy import SQLStore
from support import RedisServer, samples


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # the embedded default: sundial.db in the working directory
    for name in [n for n in os.environ if n.startswith("SUNDIAL_") and not n.startswith("SUNDIAL_TEST_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SUNDIAL_LOG_LEVEL", "WARNING")
    return CliRunner()


def run(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_quick_start_defines_and_inspects_a_job(cli: CliRunner, tmp_path: Path) -> None:
    out = run(cli, "jobs", "add", "--id", "hello", "--name", "Say hello", "--handler", "sundial.log_message",
              "--every", "5", "--payload", '{"message": "hello"}')  # fmt: skip
    assert "hello" in out and "interval" in out
    assert (tmp_path / "sundial.db").exists()
    jobs = json.loads(run(cli, "jobs", "list", "--json"))
    assert {"hello", "sundial.prune_run_history"} <= {j["id"] for j in jobs}
    run(cli, "jobs", "run", "hello")
    runs = json.loads(run(cli, "runs", "list", "--job", "hello", "--json"))
    assert [r["status"] for r in runs] == ["pending"]
    assert run(cli, "jobs", "pause", "hello").strip() == "pause: hello"
    assert [j["state"] for j in json.loads(run(cli, "jobs", "list", "--json")) if j["id"] == "hello"] == ["paused"]


def test_bad_input_exits_non_zero_naming_the_field(cli: CliRunner) -> None:
    result = cli.invoke(
        main, ["jobs", "add", "--name", "x", "--handler", "sundial.log_message", "--cron", "61 * * * *"]
    )
    assert result.exit_code == 1 and "cron_expression" in result.output
    result = cli.invoke(main, ["jobs", "add", "--name", "x", "--handler", "nobody.home", "--every", "5"])
    assert result.exit_code == 1 and "unknown handler 'nobody.home'" in result.output
    result = cli.invoke(main, ["jobs", "pause", "missing"])
    assert result.exit_code == 1 and "no job with id 'missing'" in result.output


def test_a_bad_setting_stops_the_start(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNDIAL_DATABASE_URL", "mysql://nope")
    result = cli.invoke(main, ["jobs", "list"])
    assert result.exit_code == 1 and "database_url" in result.output


def test_events_and_explain(cli: CliRunner) -> None:
    run(cli, "jobs", "add", "--id", "bind", "--name", "bind", "--handler", "sundial.log_message",
        "--on-event", "barcode.activated")  # fmt: skip
    assert "1 runs created" in run(cli, "events", "emit", "barcode.activated", "--id", "e1", "--payload", '{"c": 1}')
    assert "0 runs created" in run(cli, "events", "emit", "barcode.activated", "--id", "e1")
    out = run(cli, "runs", "explain", "bind", "2020-01-01T00:00:00+00:00")
    assert "no fire time" in out


def test_status_reports_the_store(cli: CliRunner) -> None:
    run(cli, "jobs", "add", "--id", "hello", "--name", "hello", "--handler", "sundial.log_message", "--every", "5")
    run(cli, "jobs", "run", "hello")
    report = json.loads(run(cli, "status", "--json"))
    assert report["store"] == "sqlite" and report["broker"] == "embedded"
    assert report["runs"] == {"pending": 1} and report["dead_letters"] == 0
    assert report["outbox_lag_seconds"] >= 0 and "sundial.log_message" in report["handlers"]


def test_dead_letters_from_the_command_line(cli: CliRunner, tmp_path: Path) -> None:
    run(cli, "jobs", "add", "--id", "doomed", "--name", "doomed", "--handler", "sundial.log_message", "--every", "60")
    run(cli, "jobs", "run", "doomed")
    store = SQLStore(f"sqlite:///{tmp_path / 'sundial.db'}")
    held = store.claim("w", 30, statuses=(RunStatus.PENDING,))
    assert held is not None
    store.finish(held, Outcome(ok=False, error="boom"))  # no retry left: dead
    store.close()
    [row] = json.loads(run(cli, "dead", "list", "--json"))
    assert (row["job"], row["attempts"], row["error"]) == ("doomed", 1, "boom")
    result = cli.invoke(main, ["dead", "replay"])
    assert result.exit_code == 1 and "run_ids" in result.output  # asking for nothing is an error
    assert "1 runs replayed" in run(cli, "dead", "replay", "--job", "doomed")
    assert json.loads(run(cli, "dead", "list", "--json")) == []
    assert "0 runs purged" in run(cli, "dead", "purge", "--all")


def test_jobs_list_shows_a_default_jobs_origin_and_the_fields_an_operator_edited(cli: CliRunner) -> None:
    run(cli, "jobs", "pause", "sundial.prune_run_history")
    [job] = [j for j in json.loads(run(cli, "jobs", "list", "--json")) if j["id"] == "sundial.prune_run_history"]
    assert (job["origin"], job["edited"], job["state"]) == ("builtin", "paused", "paused")


def test_status_and_the_metric_say_when_redis_is_away_and_when_it_is_back(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, private_redis: RedisServer
) -> None:
    monkeypatch.setenv("SUNDIAL_REDIS_URL", private_redis.url)
    assert json.loads(run(cli, "status", "--json"))["redis"] == "ok"
    locks = RedisLocks(private_redis.url, "t:", retry_after_seconds=0.2)
    metrics = Metrics()
    metrics.watch_redis(locks)
    try:
        assert samples(metrics, "sundial_redis_up") == [({}, 1.0)]
        private_redis.stop()
        assert json.loads(run(cli, "status", "--json"))["redis"].startswith("unreachable: ")
        assert samples(metrics, "sundial_redis_up") == [({}, 0.0)]  # no lock call needed to see it
        private_redis.start()
        time.sleep(0.3)  # past the pause after a failure
        assert samples(metrics, "sundial_redis_up") == [({}, 1.0)]
        assert json.loads(run(cli, "status", "--json"))["redis"] == "ok"
    finally:
        locks.close()
