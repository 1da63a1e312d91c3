"""Migrations: one head, and ``upgrade`` from an empty database builds exactly the models' schema."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import create_engine, make_url, text

from crm.config import TestingConfig
from crm.extensions import db
from tests.apps import app_process_env, flask_command, other_app
from tests.live_server import ROOT

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _script_directory() -> ScriptDirectory:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def test_single_head():
    heads = _script_directory().get_heads()
    assert len(heads) == 1, f"Several Alembic heads, merge them: {heads}"


def test_revision_files_are_date_prefixed():
    names = [path.name for path in (MIGRATIONS / "versions").glob("*.py")]
    assert names
    assert all(re.match(r"\d{8}_[0-9a-f]+_\w+\.py$", name) for name in names), names


def _upgrade_and_compare(url: str) -> list:
    with other_app(SQLALCHEMY_DATABASE_URI=url) as app, app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, db.metadata)


def test_upgrade_from_empty_matches_the_models_on_postgresql():
    url = make_url(TestingConfig.SQLALCHEMY_DATABASE_URI)
    if url.get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL only: set TEST_DATABASE_URL to run the upgrade check on PostgreSQL")
    name = f"{url.database}_migr"
    server = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            differences = _upgrade_and_compare(url.set(database=name).render_as_string(hide_password=False))
        finally:
            with server.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        server.dispose()
    assert differences == []


# The lower(name) expression indexes are PostgreSQL's (the check above compares them); on SQLite only the models
# declare them, and autogenerate says it skips them.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_upgrade_from_empty_matches_the_models_on_sqlite(tmp_path):
    differences = _upgrade_and_compare(f"sqlite:///{tmp_path / 'migrated.sqlite'}")
    assert differences == []


def _flask_db_upgrade_output(database_url: str, instance: Path) -> str:
    env = app_process_env(instance, DATABASE_URL=database_url, REDIS_URL="redis://127.0.0.1:9/0")
    result = subprocess.run(
        flask_command("db", "upgrade"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_flask_db_upgrade_on_a_fresh_sqlite_database_prints_no_warning(tmp_path):
    """A newcomer's first ``flask db upgrade`` (``make run``) printed SAWarnings about expression indexes."""
    output = _flask_db_upgrade_output(f"sqlite:///{tmp_path / 'fresh.sqlite'}", tmp_path)
    assert "Running upgrade" in output
    assert "Warning" not in output, output


def test_flask_db_upgrade_on_a_fresh_postgresql_database_prints_no_warning(tmp_path):
    url = make_url(TestingConfig.SQLALCHEMY_DATABASE_URI)
    if url.get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL only: set TEST_DATABASE_URL")
    name = f"{url.database}_upgr"
    server = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            output = _flask_db_upgrade_output(url.set(database=name).render_as_string(hide_password=False), tmp_path)
        finally:
            with server.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        server.dispose()
    assert "Running upgrade" in output
    assert "Warning" not in output, output
