"""crm/storage.py: the same behaviour from the local folder and from a real S3-compatible server."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from crm.config import ConfigError
from crm.storage import LocalStorage, S3Storage, StoredFileMissing, put_until_rollback, storage_from_config


def read_all(store, key: str) -> bytes:
    with store.open(key) as stream:
        return stream.read()


def test_put_open_exists_delete(any_storage):
    key = "advisory/" + "ab" * 16
    assert not any_storage.exists(key)
    any_storage.put(key, io.BytesIO(b"first"))
    assert any_storage.exists(key)
    assert read_all(any_storage, key) == b"first"
    any_storage.put(key, io.BytesIO(b"second"))  # replaces
    assert read_all(any_storage, key) == b"second"
    any_storage.delete(key)
    assert not any_storage.exists(key)
    any_storage.delete(key)  # a missing file is no error
    with pytest.raises(StoredFileMissing):
        any_storage.open(key)


def test_a_large_file_streams_in_and_out_unchanged(any_storage):
    data = bytes(range(256)) * (40 * 1024)  # 10 MB: several upload parts on S3, many chunks locally
    any_storage.put("big", io.BytesIO(data))
    with any_storage.open("big") as stream:
        first = stream.read(64 * 1024)
        rest = stream.read()
    assert first + rest == data


def test_list_keys_names_what_is_stored_with_its_time(any_storage):
    before = datetime.now(UTC) - timedelta(minutes=1)
    any_storage.put("one", io.BytesIO(b"1"))
    any_storage.put("team/two", io.BytesIO(b"2"))
    listed = dict(any_storage.list_keys())
    assert set(listed) == {"one", "team/two"}
    assert all(before < written_at < datetime.now(UTC) + timedelta(minutes=1) for written_at in listed.values())


@pytest.mark.parametrize("key", ["../secret", "/etc/passwd", "a/../b", "", "a//b", "rapport.pdf", "a b"])
def test_keys_cannot_leave_the_folder_or_prefix(any_storage, key):
    with pytest.raises(ValueError):
        any_storage.put(key, io.BytesIO(b"x"))


def test_a_rollback_deletes_what_was_put_and_a_commit_keeps_it(app, app_storage):
    from crm.extensions import db

    put_until_rollback("kept", io.BytesIO(b"k"))
    db.session.commit()
    put_until_rollback("dropped", io.BytesIO(b"d"))
    assert app_storage.exists("dropped")
    db.session.rollback()
    assert app_storage.exists("kept") and not app_storage.exists("dropped")
    app_storage.delete("kept")


def test_the_storage_is_chosen_by_configuration(app, tmp_path):
    config = {**app.config, "STORAGE_URL": ""}
    default = storage_from_config(config)
    assert isinstance(default, LocalStorage) and str(default.folder) == app.config["ATTACHMENTS_DIR"]
    folder = storage_from_config({**config, "STORAGE_URL": f"file://{tmp_path}"})
    assert isinstance(folder, LocalStorage) and folder.folder == tmp_path
    bucket = storage_from_config({**config, "STORAGE_URL": "s3://crm-files/prod", "S3_ENDPOINT_URL": None})
    assert isinstance(bucket, S3Storage) and (bucket.bucket, bucket.prefix) == ("crm-files", "prod/")
    bucket.client.close()
    for wrong in ("s3://", "ftp://host/files", "/just/a/path"):
        with pytest.raises(ConfigError):
            storage_from_config({**config, "STORAGE_URL": wrong})
