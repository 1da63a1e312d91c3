"""Background jobs: named queues, enqueue-after-commit, the worker and the periodic schedule.

No feature logic lives here. Features declare periodic jobs with ``periodic(...)`` in their
``jobs.py``; the worker runs them without any cron setup.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app
from flask_babel import gettext as _
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Retry, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job, JobStatus
from sqlalchemy import event
from sqlalchemy.orm import Session

from crm.errors import ServiceUnavailable
from crm.extensions import redis

logger = logging.getLogger(__name__)

QUEUE_NAMES = ("emails", "billing", "default")
DEFAULT_RETRY = Retry(max=5, interval=[10, 30, 120, 600, 1800])
_PENDING_KEY = "crm_pending_jobs"
# A started job whose worker has not beaten for this many heartbeats is taken for dead (a worker killed, a machine
# lost): its item is enqueued again. RQ itself notices only after the job's timeout plus a minute.
STALE_AFTER_HEARTBEATS = 3
_WAITING_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED})


def get_queue(name: str = "default") -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"Unknown queue {name!r}")
    return Queue(name, connection=redis(), default_timeout=600)


@dataclass
class PendingJob:
    func: Callable[..., Any]
    args: tuple[Any, ...]
    queue: str
    retry: Retry | None
    job_id: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)


def enqueue_after_commit(
    func: Callable[..., Any],
    *args: Any,
    queue: str = "default",
    retry: Retry | None = DEFAULT_RETRY,
    job_id: str | None = None,
    session: Session | None = None,
) -> None:
    """Enqueue ``func(*args)`` once the current transaction commits; a rollback enqueues nothing.

    Pass ids, not objects: the job loads fresh state when it runs.
    """
    from crm.extensions import db

    if queue not in QUEUE_NAMES:
        raise ValueError(f"Unknown queue {queue!r}")
    target = session if session is not None else db.session()
    target.connection()  # begin the transaction now, so that its rollback also drops these jobs
    target.info.setdefault(_PENDING_KEY, []).append(PendingJob(func, args, queue, retry, job_id))


def fetch_job(job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=redis())
    except NoSuchJobError:
        return None


def _heartbeat_seconds() -> int:
    return int(current_app.config["JOB_HEARTBEAT_SECONDS"])


def is_running(job: Job) -> bool:
    """Whether the job is started and its worker still alive: the worker (``AppWorker``) stamps the job's
    ``last_heartbeat`` every ``JOB_HEARTBEAT_SECONDS`` while it runs, so one not stamped for a few beats lost its
    worker."""
    if job.get_status() != JobStatus.STARTED:
        return False
    beat = job.last_heartbeat or job.started_at
    if beat is None:
        return False
    age = datetime.now(UTC) - beat.replace(tzinfo=beat.tzinfo or UTC)
    return age < timedelta(seconds=_heartbeat_seconds() * STALE_AFTER_HEARTBEATS)


def is_pending(job: Job) -> bool:
    """Queued, scheduled for a retry, deferred, or running on a live worker."""
    return job.get_status() in _WAITING_STATUSES or is_running(job)


def has_pending_job(job_id: str) -> bool:
    """Whether RQ holds a job under this id that will still run or is running on a live worker. A job left
    STARTED by a killed worker does not count, so the sweepers enqueue its item again."""
    job = fetch_job(job_id)
    return job is not None and is_pending(job)


def enqueue_once_after_commit(
    func: Callable[..., Any], *ids: Any, job_id: str, queue: str = "default", retry: Retry | None = DEFAULT_RETRY
) -> None:
    """Enqueue ``func(*ids)`` after commit under ``job_id``, unless a job with that id is still pending
    (``has_pending_job``); an ended one (finished, failed, or left started by a dead worker) is removed first, so
    exactly one job carries the id. With Redis down the request still commits its row: the enqueue after commit
    fails as well, and the feature's sweeper enqueues the row later."""
    try:
        job = fetch_job(job_id)
    except RedisError as exc:
        logger.warning("Redis unreachable, %s left for the sweeper: %s", job_id, exc)
        job = None
    if job is not None:
        if is_pending(job):
            return
        job.delete()
    enqueue_after_commit(func, *ids, queue=queue, retry=retry, job_id=job_id)


# Claims (``claim``) held by the job this worker process runs, refreshed with its heartbeat.
_held_claims: set[str] = set()
_held_claims_lock = threading.Lock()
_UNWATCHED_CLAIM_SECONDS = 660  # outside a worker: longer than the slowest job (RQ's 600 s timeout)


@contextmanager
def claim(key: str) -> Iterator[bool]:
    """Hold ``key`` in Redis while the block runs; yields whether this process got it (False: another job holds
    it). Inside a worker the claim lasts a few heartbeats and the worker renews it while the job runs, so a
    killed worker's claim ends with its heartbeat rather than after the job timeout."""
    in_worker = AppWorker.current is not None
    seconds = _heartbeat_seconds() * STALE_AFTER_HEARTBEATS if in_worker else _UNWATCHED_CLAIM_SECONDS
    connection = redis()
    if not connection.set(key, "1", nx=True, ex=seconds):
        yield False
        return
    if in_worker:
        with _held_claims_lock:
            _held_claims.add(key)
    try:
        yield True
    finally:
        with _held_claims_lock:
            _held_claims.discard(key)
        connection.delete(key)


def require_jobs_available() -> None:
    """Raise ``ServiceUnavailable`` unless Redis answers. For actions that are nothing without their jobs (a
    billing run): refused before anything is written, rather than committed rows waiting for the sweeper."""
    try:
        redis().ping()
    except RedisError as exc:
        logger.warning("Background jobs unavailable, Redis does not answer: %s", exc)
        raise ServiceUnavailable(
            _(
                "Background jobs are unavailable at the moment, so this cannot start. Nothing was changed."
                " Try again in a few minutes."
            )
        ) from None


@event.listens_for(Session, "after_commit")
def _enqueue_pending(session: Session) -> None:
    pending: list[PendingJob] = session.info.pop(_PENDING_KEY, [])
    for index, job in enumerate(pending):
        try:
            get_queue(job.queue).enqueue(job.func, *job.args, retry=job.retry, job_id=job.job_id)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # Redis is down: the rows are committed and the request stands; each feature's sweeper enqueues
            # them again once Redis answers. One line for the lot, rather than a wait and a traceback per job.
            logger.error("Redis unreachable (%s): %s job(s) left for the sweepers", exc, len(pending) - index)
            return
        except Exception:
            # The row is committed; the feature's sweeper re-enqueues what was lost here.
            logger.exception("Could not enqueue %s%r on %s", job.func.__name__, job.args, job.queue)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction) -> None:
    # Only the session's outermost transaction decides; a rolled-back savepoint inside it does not.
    if previous_transaction.parent is None:
        session.info.pop(_PENDING_KEY, None)


# --- periodic jobs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    func: Callable[[], Any]
    every: timedelta
    queue: str = "default"


PERIODIC_JOBS: dict[str, PeriodicJob] = {}


def periodic(every: timedelta, *, queue: str = "default", name: str | None = None):
    """Declare a function as a periodic job run by the worker's scheduler."""

    def decorator(func: Callable[[], Any]) -> Callable[[], Any]:
        key = name or f"{func.__module__}.{func.__qualname__}"
        PERIODIC_JOBS[key] = PeriodicJob(key, func, every, queue)
        return func

    return decorator


def enqueue_due_periodic_jobs(connection=None) -> list[str]:
    """Enqueue each periodic job whose interval has passed. Safe with several workers:
    a Redis ``SET NX`` with the interval as expiry lets exactly one process claim each slot."""
    conn = connection or redis()
    enqueued = []
    for job in PERIODIC_JOBS.values():
        claimed = conn.set(f"crm:periodic:{job.name}", "1", nx=True, ex=max(1, int(job.every.total_seconds())))
        if claimed:
            get_queue(job.queue).enqueue(job.func, job_id=None, retry=None)
            enqueued.append(job.name)
    return enqueued


# --- worker ------------------------------------------------------------------------------------


class AppWorker(SimpleWorker):
    """Runs each job inside a fresh application context (and so a fresh database session), and beats while it
    runs: RQ's SimpleWorker stamps a job only when it starts, so a long job and a dead worker would look alike."""

    current: AppWorker | None = None  # the worker of this process, while it runs a job

    def __init__(self, *args: Any, app: Flask, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = app
        self.heartbeat_seconds = int(app.config["JOB_HEARTBEAT_SECONDS"])

    def perform_job(self, job: Job, queue: Queue, execution: Execution, *args: Any, **kwargs: Any) -> bool:
        stop = threading.Event()
        beating = threading.Thread(target=self._beat, args=(job, execution, stop), daemon=True, name="job-heartbeat")
        AppWorker.current = self
        beating.start()
        try:
            with self.app.app_context():
                return super().perform_job(job, queue, execution, *args, **kwargs)
        finally:
            stop.set()
            beating.join()
            AppWorker.current = None

    def _beat(self, job: Job, execution: Execution, stop: threading.Event) -> None:
        claim_seconds = self.heartbeat_seconds * STALE_AFTER_HEARTBEATS
        while not stop.wait(self.heartbeat_seconds):
            try:
                self.maintain_heartbeats(job, execution)
                with _held_claims_lock:
                    claims = list(_held_claims)
                for key in claims:
                    self.connection.expire(key, claim_seconds, xx=False)
            except RedisError as exc:  # the job itself notices an outage; the next beat tries again
                logger.warning("job %s: heartbeat failed: %s", job.id, exc)


def use_worker_redis(app: Flask) -> None:
    """Give this process (a worker) the worker's Redis connection: without the web's command timeout, which would
    cut RQ's blocking dequeue short (``redis_options``)."""
    from crm.redis_setup import connect_redis

    web_connection = redis.connection
    redis.connection, redis.url = connect_redis(redis.url, app.config["EMBEDDED_REDIS_PATH"], worker=True)
    if web_connection is not None:
        web_connection.close()


def make_worker(app: Flask | None = None, queues: tuple[str, ...] = QUEUE_NAMES) -> AppWorker:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return AppWorker([get_queue(name) for name in queues], connection=redis(), app=app)
