"""The README's backup and restore, done for real: the database and the attachments folder, restored into a new
database and folder, and a case attachment downloaded from the restored system."""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from crm.auth.models import Role
from crm.config import TestingConfig
from crm.extensions import db
from tests.apps import other_app
from tests.factories import make_organisation, make_staff
from tests.helpers import sign_in

PDF = b"%PDF-1.7\nbackup test\n"


class Database:
    """A throw-away database of the suite's kind: a PostgreSQL database on the test server, or a SQLite file."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.server_url = make_url(TestingConfig.SQLALCHEMY_DATABASE_URI)
        self.postgresql = self.server_url.get_backend_name() == "postgresql"
        if self.postgresql:
            self.url = self.server_url.set(database=f"{self.server_url.database}_{name}")
            self._admin(f'DROP DATABASE IF EXISTS "{self.url.database}" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{self.url.database}"')
        else:
            self.path = tmp_path / f"{name}.sqlite"
            self.url = make_url(f"sqlite:///{self.path}")

    @property
    def uri(self) -> str:
        return self.url.render_as_string(hide_password=False)

    def _admin(self, statement: str) -> None:
        server = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        with server.connect() as connection:
            connection.execute(text(statement))
        server.dispose()

    def libpq_url(self) -> str:
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def drop(self) -> None:
        if self.postgresql:
            self._admin(f'DROP DATABASE IF EXISTS "{self.url.database}" WITH (FORCE)')
        else:
            self.path.unlink(missing_ok=True)


def back_up(database: Database, attachments: Path, backup: Path) -> None:
    """What the README says to back up: a dump of the database, and a copy of the attachments folder."""
    backup.mkdir()
    if database.postgresql:
        subprocess.run(
            ["pg_dump", "--format=custom", "--no-owner", f"--file={backup / 'crm.dump'}", database.libpq_url()],
            check=True,
        )
    else:  # SQLite's online backup API: a consistent copy while the app may be writing
        source, target = sqlite3.connect(database.path), sqlite3.connect(backup / "crm.sqlite")
        with target:
            source.backup(target)
        source.close()
        target.close()
    shutil.copytree(attachments, backup / "attachments")


def restore(backup: Path, database: Database, attachments: Path | None) -> None:
    """The README's restore: the dump into an empty database, the attachments folder back in place."""
    if database.postgresql:
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={database.libpq_url()}", backup / "crm.dump"],
            check=True,
        )
    else:
        shutil.copyfile(backup / "crm.sqlite", database.path)
    if attachments is not None:
        shutil.copytree(backup / "attachments", attachments)


@pytest.fixture
def databases(tmp_path):
    made: list[Database] = []

    def make(name: str) -> Database:
        made.append(Database(tmp_path, name))
        return made[-1]

    yield make
    for database in made:
        database.drop()


def test_a_restored_backup_serves_its_case_attachments(tmp_path, databases):
    from crm.advisory.attachments import store_attachment
    from tests.factories import make_case

    live, live_files = databases("live"), tmp_path / "live-attachments"
    with other_app(SQLALCHEMY_DATABASE_URI=live.uri, ATTACHMENTS_DIR=str(live_files)) as app, app.app_context():
        db.create_all()
        admin = make_staff(Role.ADMIN, email="admin@backup.example")
        case = make_case(make_organisation(name="Alfa AS"), actor=admin)
        attachment = store_attachment(case, filename="rapport.pdf", stream=io.BytesIO(PDF), actor=admin)
        db.session.commit()
        download = f"/staff/advisory/{case.id}/files/{attachment.id}"
        admin_id = admin.id
        db.session.remove()
        db.engine.dispose()

    back_up(live, live_files, tmp_path / "backup")
    live.drop()  # the disaster: the server and its disk are gone
    shutil.rmtree(live_files)

    for restored_files, expected in ((tmp_path / "restored-attachments", 200), (None, 404)):
        restored = databases("restored" if restored_files else "db_only")
        restore(tmp_path / "backup", restored, restored_files)
        files = restored_files or tmp_path / "empty-attachments"
        with other_app(SQLALCHEMY_DATABASE_URI=restored.uri, ATTACHMENTS_DIR=str(files)) as app, app.app_context():
            from crm.auth.models import User

            with app.test_client() as client:
                sign_in(client, db.session.get(User, admin_id))
                with client.get(download) as response:
                    assert response.status_code == expected  # without the attachments folder: every file is gone
                    if expected == 200:
                        assert response.data == PDF
            db.session.remove()
            db.engine.dispose()


def test_the_readme_says_to_back_up_the_attachments_folder_with_the_database():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Backup and restore") :]
    section = section[: section.index("\n## ")]
    for needed in ("CRM_ATTACHMENTS_DIR", "pg_dump", "pg_restore", "Redis needs no backup", "404"):
        assert needed in section
