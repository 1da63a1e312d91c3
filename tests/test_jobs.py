from datetime import UTC, datetime, timedelta

from rq.job import Job, JobStatus

from crm.extensions import db, redis
from crm.jobs import (
    DEFAULT_RETRY,
    PERIODIC_JOBS,
    PeriodicJob,
    enqueue_after_commit,
    enqueue_due_periodic_jobs,
    get_queue,
)
from tests.conftest import promote_scheduled_jobs, run_jobs


def _tick():
    return "tick"


def test_periodic_jobs_are_enqueued_once_per_interval_across_workers(app, monkeypatch):
    monkeypatch.setitem(PERIODIC_JOBS, "test.tick", PeriodicJob("test.tick", _tick, timedelta(hours=1), "default"))
    queue = get_queue("default")

    first = enqueue_due_periodic_jobs()
    second = enqueue_due_periodic_jobs()  # another worker, or the next loop of the same one

    assert "test.tick" in first
    assert "test.tick" not in second
    assert [job.func_name for job in queue.jobs].count(f"{__name__}._tick") == 1


def test_a_periodic_job_is_due_again_when_its_interval_has_passed(app, monkeypatch):
    monkeypatch.setitem(PERIODIC_JOBS, "test.tick", PeriodicJob("test.tick", _tick, timedelta(hours=1), "default"))
    enqueue_due_periodic_jobs()
    redis().delete("crm:periodic:test.tick")  # what the key's expiry does after an hour

    assert "test.tick" in enqueue_due_periodic_jobs()
    assert [job.func_name for job in get_queue("default").jobs].count(f"{__name__}._tick") == 2


_attempts: list[int] = []


def _flaky(number):
    """Fails twice, then succeeds (runs in this process: ``run_jobs`` uses a SimpleWorker)."""
    _attempts.append(number)
    if len(_attempts) < 3:
        raise ConnectionError("temporarily down")
    return number


def test_a_failing_job_is_retried_with_backoff_until_it_succeeds(app):
    _attempts.clear()
    enqueue_after_commit(_flaky, 7)
    db.session.commit()
    queue = get_queue("default")
    job_id = queue.job_ids[0]

    waits = []
    for _ in range(2):
        before = datetime.now(UTC)
        run_jobs(app, ("default",))
        job = Job.fetch(job_id, connection=redis())
        assert job.get_status() == JobStatus.SCHEDULED  # not failed: waiting for its next attempt
        scheduled_at = queue.scheduled_job_registry.get_scheduled_time(job_id)
        waits.append(round((scheduled_at - before).total_seconds()))
        assert promote_scheduled_jobs(("default",)) == 1
    run_jobs(app, ("default",))

    assert _attempts == [7, 7, 7]
    assert Job.fetch(job_id, connection=redis()).get_status() == JobStatus.FINISHED
    # The waits grow as DEFAULT_RETRY says (10 s, then 30 s), give or take the test's own run time.
    expected = DEFAULT_RETRY.intervals[:2]
    assert all(abs(wait - interval) <= 2 for wait, interval in zip(waits, expected, strict=True)), (waits, expected)
    assert DEFAULT_RETRY.intervals == sorted(DEFAULT_RETRY.intervals) and DEFAULT_RETRY.max >= 3


def test_the_web_connection_gives_up_on_a_silent_redis_and_the_workers_leaves_rq_its_blocking_wait(app, monkeypatch):
    from crm.extensions import redis
    from crm.jobs import make_worker, use_worker_redis
    from crm.redis_setup import CONNECT_TIMEOUT_SECONDS, WEB_COMMAND_TIMEOUT_SECONDS, connect_redis

    web, _url = connect_redis(redis.url, app.config["EMBEDDED_REDIS_PATH"])
    assert web.connection_pool.connection_kwargs["socket_timeout"] == WEB_COMMAND_TIMEOUT_SECONDS
    assert app.config["RATELIMIT_STORAGE_OPTIONS"]["socket_timeout"] == WEB_COMMAND_TIMEOUT_SECONDS
    web.close()
    monkeypatch.setattr(redis, "connection", connect_redis(redis.url, app.config["EMBEDDED_REDIS_PATH"])[0])

    use_worker_redis(app)

    options = redis().connection_pool.connection_kwargs
    assert options["socket_connect_timeout"] == CONNECT_TIMEOUT_SECONDS and options["health_check_interval"] > 0
    assert options.get("socket_timeout") is None, "no command timeout of ours under RQ's BLPOP"
    worker = make_worker(app)
    assert options["socket_timeout"] > worker.dequeue_timeout, "RQ's own, longer than its blocking wait"
    assert redis().ping()
    redis().close()
