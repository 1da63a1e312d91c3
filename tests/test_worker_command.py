"""``flask crm worker`` as a real process: it starts, runs what is queued (and, without ``--burst``, what the
scheduler and the periodic jobs add), and stops."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta

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


def test_the_worker_runs_scheduled_retries_and_periodic_jobs_and_stops_on_sigterm(instance):
    """Without ``--burst``: the RQ scheduler moves a job whose retry time has come back onto its queue,
    the periodic jobs are enqueued and run without cron, and SIGTERM ends the worker cleanly."""
    instance_path, url, connection = instance
    env = app_process_env(instance_path, REDIS_URL=url)
    upgrade = subprocess.run(flask_command("db", "upgrade"), cwd=ROOT, env=env, capture_output=True, text=True)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    later = Queue("default", connection=connection).enqueue_in(
        timedelta(seconds=2), "tests.worker_jobs.record_database_answer", "later"
    )
    assert later.get_status() == JobStatus.SCHEDULED

    worker = subprocess.Popen(
        flask_command("crm", "worker"), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        sweeper_runs: list[Job] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and worker.poll() is None:
            registry = Queue("emails", connection=connection).finished_job_registry
            finished = Job.fetch_many(registry.get_job_ids(), connection=connection)
            sweeper_runs = [job for job in finished if job and job.func_name == "crm.mail.jobs.sweep_outbox"]
            if connection.get("later") == b"42" and sweeper_runs:
                break
            time.sleep(0.5)
        assert connection.get("later") == b"42", "the scheduler did not run the scheduled job"
        assert sweeper_runs, "the periodic outbox sweeper did not run"
        assert connection.exists("crm:periodic:mail.sweep_outbox")  # its slot is claimed for the interval
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            output, _ = worker.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
    assert worker.returncode == 0, output
