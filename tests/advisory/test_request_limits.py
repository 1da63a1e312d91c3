"""Request size: a body over ``MAX_CONTENT_LENGTH`` is refused (413, a clear page in bokmål or English) before
anything is read or saved, and a message takes at most ``ATTACHMENT_MAX_FILES`` files."""

import io
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from crm.advisory.models import Case, CaseAttachment, CaseMessage
from crm.extensions import db
from tests.advisory.helpers import build_world
from tests.factories import make_case
from tests.helpers import login

MB = 1024 * 1024
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def world():
    w = build_world(commit=False)
    w["case"] = make_case(w["a"], requester=w["req"], actor=w["req_user"], subject="Sak med vedlegg")
    db.session.commit()
    return w


def _token(client, url: str, prefix: str = "") -> str:
    page = client.get(url).text
    return re.search(rf'name="{prefix}csrf_token"[^>]*value="([^"]+)"', page).group(1)


def _counts(app) -> tuple[int, int, int]:
    db.session.expire_all()
    stored = (
        [p for p in Path(app.config["ATTACHMENTS_DIR"]).glob("*")]
        if Path(app.config["ATTACHMENTS_DIR"]).exists()
        else []
    )
    return (
        db.session.scalar(select(func.count(CaseMessage.id))),
        db.session.scalar(select(func.count(CaseAttachment.id))),
        len(stored),
    )


def test_the_request_cap_fits_a_message_with_every_file_at_its_largest(app):
    config = app.config
    assert config["ATTACHMENT_MAX_FILES"] == 5
    assert config["MAX_CONTENT_LENGTH"] == config["ATTACHMENT_MAX_BYTES"] * config["ATTACHMENT_MAX_FILES"] + MB


def _reply_with_a_file(client, case, size: int):
    token = _token(client, f"/portal/advisory/{case.id}", "reply-")
    # Encoded in memory: the test client would spool a large body to a temporary file it never closes.
    boundary, body = encode_multipart(
        {
            "reply-csrf_token": token,
            "reply-body": "Her er rapporten.",
            "reply-files": FileStorage(io.BytesIO(PDF + b"0" * size), filename="stor.pdf"),
        }
    )
    return client.post(
        f"/portal/advisory/{case.id}/reply", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def test_a_body_over_the_cap_gets_413_with_the_norwegian_page_and_changes_nothing(app, client, world, monkeypatch):
    # A real body just over a lowered cap (sending 51 MB in a test would only cost memory).
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1 * MB)
    login(client, world["req_user"])
    before = _counts(app)
    response = _reply_with_a_file(client, world["case"], 2 * MB)
    assert response.status_code == 413
    page = response.text
    assert '<html lang="nb">' in page
    assert "Opplastingen er for stor" in page
    assert "Det du sendte er større enn 1 MB til sammen, så det ble ikke tatt imot og ingenting ble lagret." in page
    assert "En melding kan ha høyst 5 vedlegg på opptil 10 MB hvert." in page
    assert _counts(app) == before


def test_the_default_cap_refuses_a_body_from_its_content_length_before_reading_it(app, client, world):
    login(client, world["req_user"])
    case = world["case"]
    token = _token(client, f"/portal/advisory/{case.id}", "reply-")
    before = _counts(app)
    response = client.post(
        f"/portal/advisory/{case.id}/reply",
        data={"reply-csrf_token": token, "reply-body": "Hei"},
        environ_overrides={"CONTENT_LENGTH": str(app.config["MAX_CONTENT_LENGTH"] + 1)},
    )
    assert response.status_code == 413
    assert "større enn 51 MB til sammen" in response.text
    assert _counts(app) == before


def test_the_413_page_is_in_english_for_english_users(app, client, world, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1 * MB)
    login(client, world["req_user"])
    with client.session_transaction() as session:
        session["locale"] = "en"
    response = _reply_with_a_file(client, world["case"], 2 * MB)
    assert response.status_code == 413
    assert "The upload is too large" in response.text
    assert "What you sent is larger than 1 MB in all, so it was not received and nothing was saved." in response.text


def _pdfs(count: int, field: str):
    return {field: [(io.BytesIO(PDF), f"vedlegg-{n}.pdf") for n in range(count)]}


def _post_portal_reply(client, w, count):
    case = w["case"]
    token = _token(client, f"/portal/advisory/{case.id}", "reply-")
    return client.post(
        f"/portal/advisory/{case.id}/reply",
        data={"reply-csrf_token": token, "reply-body": "Seks filer", **_pdfs(count, "reply-files")},
        content_type="multipart/form-data",
    )


def _post_portal_upload(client, w, count):
    case = w["case"]
    token = _token(client, f"/portal/advisory/{case.id}", "upload-")
    return client.post(
        f"/portal/advisory/{case.id}/files",
        data={"upload-csrf_token": token, **_pdfs(count, "upload-files")},
        content_type="multipart/form-data",
    )


def _post_portal_new_case(client, w, count):
    token = _token(client, "/portal/advisory/new")
    form = {
        "case_type": "ordinary",
        "subject": "Mange vedlegg",
        "description": "Se filene.",
        "urgency": "normal",
        "visibility": "organisation",
    }
    return client.post(
        "/portal/advisory/new",
        data={**form, "csrf_token": token, **_pdfs(count, "files")},
        content_type="multipart/form-data",
    )


def _post_staff_upload(client, w, count):
    case = w["case"]
    token = _token(client, f"/staff/advisory/{case.id}", "upload-")
    return client.post(
        f"/staff/advisory/{case.id}/files",
        data={"upload-csrf_token": token, **_pdfs(count, "upload-files")},
        content_type="multipart/form-data",
    )


@pytest.mark.parametrize(
    ("who", "post"),
    [
        ("req_user", _post_portal_reply),
        ("req_user", _post_portal_upload),
        ("req_user", _post_portal_new_case),
        ("adviser", _post_staff_upload),
    ],
)
def test_too_many_files_are_refused_with_a_message_and_nothing_stored(app, client, world, who, post):
    login(client, world[who])
    before = _counts(app)
    cases_before = db.session.scalar(select(func.count(Case.id)))
    response = post(client, world, 6)
    assert response.status_code in (200, 400)  # the form again, with the message on its files field
    assert "Du valgte 6 filer; legg ved høyst 5 filer i én melding." in response.text
    assert _counts(app) == before
    assert db.session.scalar(select(func.count(Case.id))) == cases_before


def test_the_file_fields_say_how_many_files_fit(client, world):
    login(client, world["req_user"])
    assert "Høyst 10 MB per fil. Høyst 5 filer per melding." in client.get("/portal/advisory/new").text


def test_as_many_files_as_the_cap_are_accepted(app, client, world):
    login(client, world["req_user"])
    before = _counts(app)
    response = _post_portal_reply(client, world, 5)
    assert response.status_code == 302
    messages, attachments, _files = _counts(app)
    assert (messages, attachments) == (before[0] + 1, before[1] + 5)
