"""Jobs for tests that run a real ``flask crm worker`` process; importable by the worker."""

from __future__ import annotations

from sqlalchemy import text

from crm.extensions import db, redis


def record_database_answer(key: str) -> int:
    """Proves the worker runs jobs in an app context: it uses the app's database and Redis."""
    answer = db.session.execute(text("SELECT 41 + 1")).scalar_one()
    redis().set(key, answer)
    return answer
