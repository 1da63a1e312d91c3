"""Case attachments: checked by extension AND content, stored outside static/ under random names.

Allowed: PDF, Office documents (docx/xlsx/pptx, which are zip files with known entries, and the old
doc/xls/ppt OLE files) and images (PNG, JPEG, GIF, WebP). A file whose bytes do not match its
extension is refused, so an HTML page renamed ``report.pdf`` never gets in. Files are always served
as downloads (see ``views``), never rendered inline.
"""

from __future__ import annotations

import hashlib
import io
import logging
import secrets
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select

from crm.advisory.models import Case, CaseAttachment, CaseMessage
from crm.auth.models import User
from crm.errors import DomainError
from crm.extensions import db
from crm.storage import put_until_rollback, storage

logger = logging.getLogger(__name__)

OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _zip_with(*entries: str) -> Callable[[bytes], bool]:
    def check(data: bytes) -> bool:
        if not data.startswith(b"PK\x03\x04"):
            return False
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError):
            return False
        return "[Content_Types].xml" in names and all(entry in names for entry in entries)

    return check


def _prefix(*prefixes: bytes) -> Callable[[bytes], bool]:
    return lambda data: data.startswith(prefixes)


ALLOWED_TYPES: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    "pdf": ("application/pdf", _prefix(b"%PDF-")),
    "png": ("image/png", _prefix(b"\x89PNG\r\n\x1a\n")),
    "jpg": ("image/jpeg", _prefix(b"\xff\xd8\xff")),
    "jpeg": ("image/jpeg", _prefix(b"\xff\xd8\xff")),
    "gif": ("image/gif", _prefix(b"GIF87a", b"GIF89a")),
    "webp": ("image/webp", lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP"),
    "docx": (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _zip_with("word/document.xml"),
    ),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _zip_with("xl/workbook.xml")),
    "pptx": (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _zip_with("ppt/presentation.xml"),
    ),
    "doc": ("application/msword", _prefix(OLE)),
    "xls": ("application/vnd.ms-excel", _prefix(OLE)),
    "ppt": ("application/vnd.ms-powerpoint", _prefix(OLE)),
}
ACCEPT = ",".join(f".{ext}" for ext in ALLOWED_TYPES)


def clean_filename(name: str | None) -> str:
    """The file's name as the user gave it, without control characters; a name with a path (``/``,
    ``\\``, ``..``) or no name is refused."""
    raw = unicodedata.normalize("NFC", (name or "").strip())
    if not raw:
        raise DomainError(_("The file has no name."), field="files")
    if "/" in raw or "\\" in raw or raw.startswith(".") or ".." in raw or "\x00" in raw:
        raise DomainError(_("“%(name)s”: file names cannot contain folders.", name=raw[:80]), field="files")
    cleaned = "".join(ch for ch in raw if unicodedata.category(ch)[0] != "C")
    return cleaned[:200]


def check_file(name: str, data: bytes) -> str:
    """The content type of an allowed file; raises ``DomainError`` naming the reason otherwise."""
    limit = current_app.config["ATTACHMENT_MAX_BYTES"]
    if len(data) > limit:
        raise DomainError(
            _("“%(name)s” is larger than %(mb)s MB.", name=name, mb=limit // (1024 * 1024)), field="files"
        )
    if not data:
        raise DomainError(_("“%(name)s” is empty.", name=name), field="files")
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    allowed = ALLOWED_TYPES.get(extension)
    if allowed is None:
        raise DomainError(
            _("“%(name)s”: only PDF, Office documents and images (PNG, JPEG, GIF, WebP) can be attached.", name=name),
            field="files",
        )
    content_type, matches = allowed
    if not matches(data):
        raise DomainError(_("“%(name)s” is not the kind of file its name says.", name=name), field="files")
    return content_type


def read_limited(stream: IO[bytes]) -> bytes:
    """At most one byte over the limit, so an oversized upload is refused without reading it all."""
    return stream.read(current_app.config["ATTACHMENT_MAX_BYTES"] + 1)


def store_attachment(
    case: Case, *, filename: str | None, stream: IO[bytes], actor: User, message: CaseMessage | None = None
) -> CaseAttachment:
    """Check and store one upload for ``case``; raises ``DomainError`` and stores nothing when refused."""
    name = clean_filename(filename)
    data = read_limited(stream)
    content_type = check_file(name, data)
    stored_name = secrets.token_hex(16)
    # The stored name is the storage key; a rollback of this transaction removes the file again.
    put_until_rollback(stored_name, io.BytesIO(data))
    attachment = CaseAttachment(
        case=case,
        message=message,
        stored_name=stored_name,
        original_name=name,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        uploaded_by=actor,
    )
    db.session.add(attachment)
    db.session.flush()
    logger.info("case %s attachment %s stored actor=%s size=%s", case.id, attachment.id, actor.id, len(data))
    return attachment


def check_uploads(files: Sequence) -> None:
    """Check every upload before any is stored (one refused file, or one file too many, refuses the lot)."""
    most = current_app.config["ATTACHMENT_MAX_FILES"]
    if len(files) > most:
        raise DomainError(
            ngettext(
                "You chose %(chosen)s files; attach at most %(num)s file to one message.",
                "You chose %(chosen)s files; attach at most %(num)s files to one message.",
                most,
                chosen=len(files),
            ),
            field="files",
        )
    for upload in files:
        name = clean_filename(upload.filename)
        data = read_limited(upload.stream)
        upload.stream.seek(0)
        check_file(name, data)


def open_attachment(attachment: CaseAttachment) -> IO[bytes]:
    """The stored file's bytes, to read and close; raises ``StoredFileMissing`` when the file is gone."""
    return storage().open(attachment.stored_name)


@dataclass
class CopyCount:
    copied: int = 0
    present: int = 0
    missing: list[str] = field(default_factory=list)


def copy_attachments_to_storage(folder: Path, *, dry_run: bool = False) -> CopyCount:
    """Copy every case attachment's file from ``folder`` (the old ``CRM_ATTACHMENTS_DIR``) into the configured
    storage, skipping those already there, so it is safe to run again; with ``dry_run`` only count. An
    attachment whose file is in neither place is listed in ``missing``."""
    store, count = storage(), CopyCount()
    for stored_name in db.session.scalars(select(CaseAttachment.stored_name).order_by(CaseAttachment.id)):
        if store.exists(stored_name):
            count.present += 1
        elif not (folder / stored_name).is_file():
            count.missing.append(stored_name)
        else:
            if not dry_run:
                with (folder / stored_name).open("rb") as source:
                    store.put(stored_name, source)
            count.copied += 1
    logger.info(
        "advisory attachments copied=%s present=%s missing=%s dry_run=%s",
        count.copied,
        count.present,
        len(count.missing),
        dry_run,
    )
    return count
