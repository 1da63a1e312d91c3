from crm.extensions import db
from crm.jobs import enqueue_after_commit, get_queue


def test_healthz_reports_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "redis": "ok"}


def test_front_page_renders_in_norwegian_by_default(client):
    response = client.get("/")
    assert response.status_code == 200
    assert 'lang="nb"' in response.text
    assert "Logg inn" in response.text


def _noop(*args):
    return args


def test_enqueue_after_commit_waits_for_commit(app):
    queue = get_queue("default")
    enqueue_after_commit(_noop, 1)
    assert queue.count == 0
    db.session.commit()
    assert queue.count == 1


def test_rollback_enqueues_nothing(app):
    queue = get_queue("default")
    enqueue_after_commit(_noop, 2)
    db.session.rollback()
    db.session.commit()
    assert queue.count == 0
