import io
import zipfile

import pytest

from crm.advisory.attachments import check_file, clean_filename
from crm.errors import DomainError
from crm.storage import LocalStorage

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def office(*entries: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        for entry in entries:
            archive.writestr(entry, "<x/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("rapport.PDF", b"%PDF-1.7\n", "application/pdf"),
        ("bilde.png", b"\x89PNG\r\n\x1a\n....", "image/png"),
        ("foto.jpg", b"\xff\xd8\xff\xe0....", "image/jpeg"),
        (
            "notat.docx",
            office("word/document.xml"),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        ("ark.xlsx", office("xl/workbook.xml"), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (
            "lysark.pptx",
            office("ppt/presentation.xml"),
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
        ("gammel.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1....", "application/msword"),
    ],
)
def test_allowed_files(app, name, data, content_type):
    assert check_file(name, data) == content_type


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("rapport.pdf", b"<html><script>alert(1)</script></html>"),  # renamed HTML
        ("notat.docx", office("xl/workbook.xml")),  # a spreadsheet called a document
        ("notat.docx", b"PK\x03\x04garbage"),
        ("ark.xlsx", office()),
        ("side.html", b"<html></html>"),
        ("script.svg", b"<svg onload='alert(1)'/>"),
        ("uten-endelse", b"%PDF-1.7"),
        ("tom.pdf", b""),
    ],
)
def test_refused_files(app, name, data):
    with pytest.raises(DomainError):
        check_file(name, data)


@pytest.mark.parametrize("name", ["../secret.pdf", "a/b.pdf", "C:\\temp\\x.pdf", ".htaccess", "", "  "])
def test_names_with_paths_are_refused(name):
    with pytest.raises(DomainError):
        clean_filename(name)


def test_control_characters_are_dropped():
    assert clean_filename("rap\u200bport\x07.pdf") == "rapport.pdf"


def test_a_rolled_back_upload_leaves_no_file(app, app_storage):
    from crm.advisory.attachments import store_attachment
    from crm.extensions import db
    from tests.advisory.helpers import build_world
    from tests.factories import make_case

    world = build_world(commit=False)
    case = make_case(world["a"], requester=world["req"], actor=world["req_user"])
    db.session.commit()
    attachment = store_attachment(case, filename="a.pdf", stream=io.BytesIO(b"%PDF-1.4"), actor=world["req_user"])
    assert app_storage.exists(attachment.stored_name)
    db.session.rollback()
    assert not app_storage.exists(attachment.stored_name)


def test_orphan_files_older_than_an_hour_are_swept(app):
    import os
    import time
    from pathlib import Path

    from crm.advisory.attachments import store_attachment
    from crm.advisory.jobs import sweep_orphan_files
    from crm.extensions import db
    from crm.jobs import PERIODIC_JOBS
    from tests.advisory.helpers import build_world
    from tests.factories import make_case

    world = build_world(commit=False)
    case = make_case(world["a"], requester=world["req"], actor=world["req_user"])
    folder = Path(app.config["ATTACHMENTS_DIR"])  # the default storage: the local attachments folder
    kept = (
        folder
        / (
            store_attachment(case, filename="a.pdf", stream=io.BytesIO(b"%PDF-1.4"), actor=world["req_user"])
        ).stored_name
    )
    db.session.commit()
    orphan, young, foreign = folder / ("ab" * 16), folder / ("cd" * 16), folder / "README.txt"
    for path in (orphan, young, foreign):
        path.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    for path in (kept, orphan, foreign):
        os.utime(path, (two_hours_ago, two_hours_ago))

    assert sweep_orphan_files() == 1
    assert not orphan.exists()
    assert kept.is_file() and young.is_file() and foreign.is_file()
    assert "advisory.sweep_orphan_files" in PERIODIC_JOBS
    young.unlink()
    foreign.unlink()


def test_orphan_files_are_swept_from_either_storage(app, app_storage):
    from datetime import timedelta

    from crm.advisory.attachments import store_attachment
    from crm.advisory.jobs import sweep_orphan_files
    from crm.extensions import db
    from crm.models import utcnow
    from tests.advisory.helpers import build_world
    from tests.factories import make_case

    world = build_world(commit=False)
    case = make_case(world["a"], requester=world["req"], actor=world["req_user"])
    kept = store_attachment(case, filename="a.pdf", stream=io.BytesIO(b"%PDF-1.4"), actor=world["req_user"])
    db.session.commit()
    orphan = "ef" * 16
    app_storage.put(orphan, io.BytesIO(b"x"))
    assert sweep_orphan_files() == 0  # both are younger than an hour
    assert sweep_orphan_files(now=utcnow() + timedelta(hours=2)) == 1
    assert app_storage.exists(kept.stored_name) and not app_storage.exists(orphan)
    app_storage.delete(kept.stored_name)


def test_copy_attachments_moves_existing_files_into_the_configured_storage(app, s3_storage, monkeypatch, tmp_path):
    from crm.advisory.attachments import store_attachment
    from crm.extensions import db
    from crm.storage import EXTENSION_KEY
    from tests.advisory.helpers import build_world
    from tests.factories import make_case

    world = build_world(commit=False)
    case = make_case(world["a"], requester=world["req"], actor=world["req_user"])
    old_folder = tmp_path / "attachments"
    monkeypatch.setitem(app.extensions, EXTENSION_KEY, LocalStorage(old_folder))  # today's installation
    pdf = store_attachment(case, filename="a.pdf", stream=io.BytesIO(b"%PDF-1.4 a"), actor=world["req_user"])
    png = store_attachment(case, filename="b.png", stream=io.BytesIO(PNG), actor=world["req_user"])
    gone = store_attachment(case, filename="c.pdf", stream=io.BytesIO(b"%PDF-1.4 c"), actor=world["req_user"])
    db.session.commit()
    (old_folder / gone.stored_name).unlink()
    monkeypatch.setitem(app.extensions, EXTENSION_KEY, s3_storage)  # CRM_STORAGE_URL=s3://... configured
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["crm", "storage", "copy-attachments", "--from", str(old_folder), "--dry-run"])
    assert dry.exit_code == 1 and dry.output.startswith("would copy 2, already in")
    assert gone.stored_name in dry.output and not s3_storage.exists(pdf.stored_name)

    first = runner.invoke(args=["crm", "storage", "copy-attachments", "--from", str(old_folder)])
    assert first.output.startswith("copied 2,") and ": 0, missing: 1" in first.output
    with s3_storage.open(png.stored_name) as stream:
        assert stream.read() == PNG
    again = runner.invoke(args=["crm", "storage", "copy-attachments", "--from", str(old_folder)])
    assert again.output.startswith("copied 0,") and ": 2, missing: 1" in again.output
