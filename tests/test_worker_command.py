"""``flask crm worker --burst`` as a real process: it starts, runs what is queued, and stops."""

from __future__ import annotations

import subprocess

import pytest
import redis as redis_lib
from rq import Queue
from rq.job import Job, JobStatus

from crm.redis_setup import start_embedded_redis, stop_embedded_redis
from tests.apps import ROOT, app_process_env, flask_command


@pytest.fixture
def instance(tmp_path):
    """An instance folder with its own embedded Redis, owned by the test."""
    path = str(tmp_path / "redis.db")
    url = start_embedded_redis(path)
    connection = redis_lib.Redis.from_url(url)
    yield tmp_path, url, connection
    connection.close()
    stop_embedded_redis(path, wait=False)


def run_worker(instance_path, url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        flask_command("crm", "worker", *args),
        cwd=ROOT,
        env=app_process_env(instance_path, REDIS_URL=url),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_burst_worker_runs_a_queued_job_in_an_app_context_and_exits(instance):
    instance_path, url, connection = instance
    job = Queue("default", connection=connection).enqueue("tests.worker_jobs.record_database_answer", "answer")
    emails_job = Queue("emails", connection=connection).enqueue("tests.worker_jobs.record_database_answer", "mail")

    result = run_worker(instance_path, url, "--burst")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Worker listening on emails, billing, default" in result.stdout
    assert connection.get("answer") == b"42"
    assert connection.get("mail") == b"42"
    assert Job.fetch(job.id, connection=connection).get_status() == JobStatus.FINISHED
    assert Job.fetch(emails_job.id, connection=connection).return_value() == 42
    assert Queue("default", connection=connection).count == 0


def test_worker_listens_only_on_the_queues_it_is_given(instance):
    instance_path, url, connection = instance
    Queue("billing", connection=connection).enqueue("tests.worker_jobs.record_database_answer", "billing")

    result = run_worker(instance_path, url, "--burst", "--queues", "emails")

    assert result.returncode == 0, result.stdout + result.stderr
    assert connection.get("billing") is None
    assert Queue("billing", connection=connection).count == 1


def test_worker_refuses_an_unknown_queue(instance):
    instance_path, url, _ = instance
    result = run_worker(instance_path, url, "--burst", "--queues", "emails,nonsense")
    assert result.returncode == 2
    assert "Unknown queue(s): nonsense" in result.stderr
