from datetime import timedelta

from crm.extensions import redis
from crm.jobs import PERIODIC_JOBS, PeriodicJob, enqueue_due_periodic_jobs, get_queue


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
