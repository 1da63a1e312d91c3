"""Stored files behind one interface: a local folder (one host, ``make run``'s default) or an S3-compatible
bucket that every web and worker host shares, chosen by ``CRM_STORAGE_URL``.

Keys are made by the feature that stores a file, from random names only (never a user's file name), so
a key can never climb out of the folder or the bucket's prefix. A file put during a transaction is
deleted again when that transaction rolls back (``put_until_rollback``), as the row naming it is gone.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from crm.config import ConfigError
from crm.extensions import db

KEY = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*")
EXTENSION_KEY = "crm.storage"
CHUNK = 64 * 1024


class StoredFileMissing(LookupError):
    """No file is stored under the key."""


class Storage(Protocol):
    def put(self, key: str, stream: IO[bytes]) -> None:
        """Store the stream's bytes under ``key``, replacing what was there; readers never see half a file."""

    def open(self, key: str) -> IO[bytes]:
        """The stored bytes as a binary stream for the caller to read and close; raises ``StoredFileMissing``."""

    def delete(self, key: str) -> None:
        """Remove the file; a missing one is no error."""

    def exists(self, key: str) -> bool: ...

    def list_keys(self) -> Iterator[tuple[str, datetime]]:
        """Every stored key with when it was last written (UTC)."""


def check_key(key: str) -> str:
    if not KEY.fullmatch(key):
        raise ValueError(f"not a storage key: {key!r}")
    return key


class LocalStorage:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.folder)!r})"

    def path(self, key: str) -> Path:
        return self.folder / check_key(key)

    def put(self, key: str, stream: IO[bytes]) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target and renamed over it, so a reader sees the old file or the whole new one.
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            with partial.open("wb") as out:
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    def open(self, key: str) -> IO[bytes]:
        try:
            return self.path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise StoredFileMissing(key) from None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list_keys(self) -> Iterator[tuple[str, datetime]]:
        if not self.folder.is_dir():
            return
        for path in self.folder.rglob("*"):
            key = path.relative_to(self.folder).as_posix()
            if KEY.fullmatch(key) and path.is_file():
                yield key, datetime.fromtimestamp(path.stat().st_mtime, UTC)


class S3Storage:
    def __init__(self, bucket: str, *, prefix: str = "", client) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client

    def __repr__(self) -> str:
        return f"S3Storage({self.bucket!r}, prefix={self.prefix!r})"

    @classmethod
    def from_config(cls, bucket: str, prefix: str, config) -> S3Storage:
        import boto3
        from botocore.config import Config as BotoConfig

        client = boto3.client(
            "s3",
            endpoint_url=config["S3_ENDPOINT_URL"],
            region_name=config["S3_REGION"],
            aws_access_key_id=config["S3_ACCESS_KEY_ID"],
            aws_secret_access_key=config["S3_SECRET_ACCESS_KEY"],
            # Self-hosted S3 servers (MinIO, SeaweedFS) want the bucket in the path, not in the host name.
            config=BotoConfig(s3={"addressing_style": "path" if config["S3_ENDPOINT_URL"] else "auto"}),
        )
        return cls(bucket, prefix=prefix, client=client)

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, stream: IO[bytes]) -> None:
        # Streams in parts; S3 makes an object visible only once it is complete.
        self.client.upload_fileobj(stream, self.bucket, self._name(key))

    def open(self, key: str) -> IO[bytes]:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]
        except self.client.exceptions.NoSuchKey:
            raise StoredFileMissing(key) from None

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def list_keys(self) -> Iterator[tuple[str, datetime]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                if KEY.fullmatch(key):
                    yield key, item["LastModified"].astimezone(UTC)


def storage_from_config(config) -> Storage:
    url = config["STORAGE_URL"]
    if not url:
        return LocalStorage(config["ATTACHMENTS_DIR"])
    if url.startswith("file://"):
        return LocalStorage(url.removeprefix("file://"))
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError("CRM_STORAGE_URL=s3://... needs a bucket name, like s3://crm-files")
        return S3Storage.from_config(bucket, prefix, config)
    raise ConfigError("CRM_STORAGE_URL must be empty, file:///a/folder or s3://bucket[/prefix]")


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION_KEY] = storage_from_config(app.config)


def storage() -> Storage:
    return current_app.extensions[EXTENSION_KEY]


_WRITTEN_KEY = "crm_storage_written"


def put_until_rollback(key: str, stream: IO[bytes]) -> None:
    """Store a file whose row is added in the current transaction: a rollback of that transaction deletes the
    file again, a commit keeps it."""
    db.session.connection()  # begins the transaction whose rollback must see this file
    store = storage()
    store.put(key, stream)
    db.session.info.setdefault(_WRITTEN_KEY, []).append((store, key))


@event.listens_for(Session, "after_commit")
def _keep_files_on_commit(session: Session) -> None:
    session.info.pop(_WRITTEN_KEY, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_files_on_rollback(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        for store, key in session.info.pop(_WRITTEN_KEY, []):
            store.delete(key)
