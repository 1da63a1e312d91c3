"""Two processes writing to one SQLite file database at once (development: the web server and the worker)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from crm.extensions import redis
from tests.apps import ROOT, app_process_env

ROUNDS = 40

# Each round reads the tally and writes it back one higher, in one transaction, like a login (read the user,
# then record the login) racing a billing job. Without WAL, a busy timeout and BEGIN IMMEDIATE, one of the
# processes fails with "database is locked" (or, worse, the two overwrite each other's count).
WRITER = f"""
import os, sys, time
from sqlalchemy import text
from crm import create_app
from crm.extensions import db

app = create_app()
with app.app_context():
    db.session.execute(text("SELECT 1")).all()
    db.session.rollback()
    print("ready", flush=True)
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.01)
    for _ in range({ROUNDS}):
        value = db.session.execute(text("SELECT value FROM tally")).scalar_one()
        time.sleep(0.005)
        db.session.execute(text("UPDATE tally SET value = :value"), {{"value": value + 1}})
        db.session.commit()
    print(db.session.execute(text("PRAGMA journal_mode")).scalar_one(), flush=True)
"""


def test_two_processes_write_to_one_file_database_at_once(tmp_path):
    database = tmp_path / "shared.sqlite"
    with sqlite3.connect(database) as setup:
        setup.execute("CREATE TABLE tally (value INTEGER NOT NULL)")
        setup.execute("INSERT INTO tally VALUES (0)")
    setup.close()
    go = tmp_path / "go"
    env = app_process_env(tmp_path, DATABASE_URL=f"sqlite:///{database}", REDIS_URL=redis.url)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(go)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for writer in writers:
            assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
        go.touch()
        results = [writer.communicate(timeout=120) for writer in writers]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()

    for writer, (out, err) in zip(writers, results, strict=True):
        assert "database is locked" not in err
        assert writer.returncode == 0, err
        assert out.split() == ["wal"]
    with sqlite3.connect(database) as check:
        assert check.execute("SELECT value FROM tally").fetchone()[0] == 2 * ROUNDS  # no write was lost
    check.close()
