import io
import re
from datetime import date

import pytest
from sqlalchemy import func, select

from crm.advisory import services
from crm.advisory.models import (
    AdviserAbsence,
    Case,
    CaseAccessLog,
    CaseAttachment,
    CaseStatus,
    Theme,
    Urgency,
    Visibility,
)
from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.extensions import db
from tests.advisory.helpers import build_world
from tests.factories import make_case, make_staff
from tests.helpers import login


@pytest.fixture
def world():
    w = build_world(commit=False)
    w["shared"] = make_case(w["a"], requester=w["req"], actor=w["req_user"], subject="Felles sak om lønn")
    w["private"] = make_case(
        w["a"], requester=w["req"], actor=w["req_user"], subject="Privat sak", visibility=Visibility.PRIVATE
    )
    w["b_case"] = make_case(w["b"], requester=w["b_contact"], actor=w["b_user"], subject="Betas sak")
    services.add_internal_note(w["shared"], "HEMMELIG-NOTAT om medlemmet", actor=w["adviser"])
    services.add_staff_reply(w["shared"], "Svar til medlemmet", actor=w["adviser"])
    db.session.commit()
    return w


def token(client, url="/portal/advisory/"):
    page = client.get(url)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    return match.group(1)


# --- access matrix ---------------------------------------------------------------------------------------

MEMBER_MATRIX = [
    # user, case, may see
    ("req_user", "shared", True),
    ("req_user", "private", True),
    ("main_user", "private", True),
    ("other_user", "shared", True),
    ("other_user", "private", False),
    ("b_user", "shared", False),
    ("b_user", "private", False),
    ("b_user", "b_case", True),
    ("req_user", "b_case", False),
]


@pytest.mark.parametrize(("who", "which", "allowed"), MEMBER_MATRIX)
def test_member_access_matrix(client, world, who, which, allowed):
    login(client, world[who])
    case = world[which]
    page = client.get(f"/portal/advisory/{case.id}")
    assert page.status_code == (200 if allowed else 404)
    listing = client.get("/portal/advisory/").text
    assert (case.subject in listing) is allowed
    # Replying follows the same rule.
    response = client.post(
        f"/portal/advisory/{case.id}/reply", data={"reply-body": "Hei", "reply-csrf_token": token(client)}
    )
    assert response.status_code == (302 if allowed else 404)


@pytest.mark.parametrize(
    ("roles", "status"),
    [({Role.ADVISER}, 200), ({Role.ADMIN}, 200), ({Role.COORDINATOR}, 403), ({Role.FINANCE}, 403)],
)
def test_staff_access(client, world, roles, status):
    user = make_staff(*roles)
    db.session.commit()
    login(client, user)
    assert client.get(f"/staff/advisory/{world['shared'].id}").status_code == status
    assert client.get("/staff/advisory/").status_code == status


def test_member_cannot_use_staff_pages(client, world):
    login(client, world["main_user"])
    assert client.get(f"/staff/advisory/{world['shared'].id}").status_code == 403


# --- internal notes ----------------------------------------------------------------------------------------


def test_internal_notes_absent_from_member_pages_emails_and_export(client, world):
    login(client, world["req_user"])
    case = world["shared"]
    for url in ("/portal/advisory/", f"/portal/advisory/{case.id}", f"/portal/advisory/{case.id}/export"):
        response = client.get(url)
        assert response.status_code == 200
        assert "HEMMELIG" not in response.text, url
    assert "Svar til medlemmet" in client.get(f"/portal/advisory/{case.id}/export").text
    from crm.mail.models import OutboxMessage

    for message in db.session.scalars(select(OutboxMessage)):
        if message.to_address != world["adviser"].email:
            assert "HEMMELIG" not in message.body_text + message.body_html + message.subject


def test_staff_case_page_shows_notes_and_logs_access(client, world):
    login(client, world["adviser"])
    case = world["shared"]
    page = client.get(f"/staff/advisory/{case.id}")
    assert "HEMMELIG-NOTAT" in page.text and "Internt notat" in page.text
    export = client.get(f"/staff/advisory/{case.id}/export")
    assert export.headers["Content-Disposition"].startswith("attachment")
    actions = db.session.scalars(
        select(CaseAccessLog.action).where(
            CaseAccessLog.case_id == case.id, CaseAccessLog.user_id == world["adviser"].id
        )
    ).all()
    assert sorted(actions) == ["export", "view"]


# --- portal flows ------------------------------------------------------------------------------------------


def test_member_opens_a_transparency_act_request(client, world):
    login(client, world["req_user"])
    response = client.post(
        "/portal/advisory/new",
        data={
            "csrf_token": token(client, "/portal/advisory/new"),
            "case_type": "transparency_request",
            "received_on": "2026-01-05",
            "subject": "Innsynskrav fra journalist",
            "description": "Vi har fått et krav om informasjon.",
            "themes": ["transparency_act", "child_labour"],
            "oecd_step": "5",
            "urgency": "high",
            "visibility": "private",
        },
    )
    assert response.status_code == 302
    case = db.session.scalar(select(Case).where(Case.subject == "Innsynskrav fra journalist"))
    assert case.legal_deadline_on == date(2026, 1, 26)
    assert case.themes == [Theme.CHILD_LABOUR, Theme.TRANSPARENCY_ACT]
    assert case.visibility is Visibility.PRIVATE and case.oecd_step == 5
    page = client.get(response.headers["Location"])
    assert "26.01.2026" in page.text and "Lovpålagt svarfrist" in page.text


def test_transparency_request_needs_the_date_received(client, world):
    login(client, world["req_user"])
    before = db.session.scalar(select(func.count(Case.id)))
    response = client.post(
        "/portal/advisory/new",
        data={
            "csrf_token": token(client, "/portal/advisory/new"),
            "case_type": "transparency_request",
            "subject": "Innsynskrav",
            "description": "Tekst",
            "urgency": "normal",
            "visibility": "organisation",
        },
    )
    assert response.status_code == 400
    assert "Oppgi datoen" in response.text
    assert db.session.scalar(select(func.count(Case.id))) == before


def test_member_closes_and_reopens(client, world):
    login(client, world["req_user"])
    case = world["shared"]
    client.post(f"/portal/advisory/{case.id}/close", data={"csrf_token": token(client)})
    db.session.refresh(case)
    assert case.status is CaseStatus.CLOSED
    client.post(f"/portal/advisory/{case.id}/reopen", data={"csrf_token": token(client)})
    db.session.refresh(case)
    assert case.status is CaseStatus.REOPENED


# --- staff flows -------------------------------------------------------------------------------------------


def test_adviser_replies_and_waits_for_member(client, world):
    login(client, world["adviser"])
    case = world["private"]
    page = client.get(f"/staff/advisory/{case.id}")
    csrf = re.search(r'name="reply-csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    response = client.post(
        f"/staff/advisory/{case.id}/reply",
        data={"reply-csrf_token": csrf, "reply-body": "Kan dere sende mer?", "reply-then": "waiting_for_member"},
    )
    assert response.status_code == 302
    db.session.refresh(case)
    assert case.status is CaseStatus.WAITING_FOR_MEMBER and case.first_responded_at is not None


def test_reply_template_prefills_the_reply(client, world):
    template = services.save_reply_template(
        None, name="Hilsen", body="Hei {contact}, {adviser}", actor=world["adviser"]
    )
    db.session.commit()
    login(client, world["adviser"])
    page = client.get(f"/staff/advisory/{world['shared'].id}?template={template.id}")
    assert "Hei Per Spør, Kari Rådgiver" in page.text


def test_choosing_a_template_without_javascript_keeps_the_draft_and_sends_nothing(client, world):
    """The template buttons post the draft; the page comes back with the draft, then the filled-in template."""
    template = services.save_reply_template(None, name="Hilsen", body="Hilsen {adviser}", actor=world["adviser"])
    db.session.commit()
    login(client, world["adviser"])
    case = world["shared"]
    page = client.get(f"/staff/advisory/{case.id}")
    assert 'data-insert-text="Hilsen Kari Rådgiver" data-insert-into="reply-body"' in page.text
    replies = len(case.messages)
    response = client.post(
        f"/staff/advisory/{case.id}/reply/template",
        data={"reply-csrf_token": _csrf(page, "reply"), "reply-body": "Takk for spørsmålet.", "template": template.id},
    )
    assert response.status_code == 200
    assert "Takk for spørsmålet.\n\nHilsen Kari Rådgiver</textarea>" in response.text
    db.session.expire_all()
    assert len(db.session.get(Case, case.id).messages) == replies
    response = client.post(
        f"/staff/advisory/{case.id}/reply/template",
        data={"reply-csrf_token": _csrf(page, "reply"), "reply-body": "", "template": 2**40},
    )
    assert response.status_code == 404


def test_queue_filters_and_constant_query_count(client, world, count_queries):
    login(client, world["adviser"])
    client.get("/staff/advisory/")  # warm up (session, user)
    db.session.commit()  # as after the cases below: the identity map starts empty both times
    with count_queries() as few:
        page = client.get("/staff/advisory/")
    assert page.status_code == 200 and "Felles sak om lønn" in page.text
    assert "arbeidstimer igjen" in page.text or "Overskredet med" in page.text
    for n in range(12):
        make_case(
            world["b"],
            requester=world["b_contact"],
            actor=world["b_user"],
            subject=f"Ekstra {n}",
            themes=[Theme.LIVING_WAGE],
        )
    db.session.commit()
    with count_queries() as many:
        page = client.get("/staff/advisory/")
    assert many.count == few.count, (
        "\n\n".join(s[:150] for s in many.statements) + "\n=====\n" + "\n\n".join(s[:150] for s in few.statements)
    )
    mine = client.get("/staff/advisory/?view=mine").text
    assert "Felles sak om lønn" in mine and "Ekstra 1" not in mine
    themed = client.get("/staff/advisory/?theme=living_wage").text
    assert "Ekstra 1" in themed and "Felles sak om lønn" not in themed


def test_dashboard_portfolio_and_organisation_tab(client, world):
    login(client, world["adviser"])
    dashboard = client.get("/staff/advisory/dashboard").text
    # Every table (quarter, theme, OECD step, sector) has its bar chart, drawn without inline style.
    for heading in ("Per kvartal", "Per tema", "Per OECD-trinn", "Per bransje"):
        assert heading in dashboard
    assert dashboard.count('<meter class="case-meter"') >= 4 + len(Theme) + 7
    assert "style=" not in dashboard
    portfolio = client.get("/staff/advisory/portfolio").text
    assert "Alfa AS" in portfolio and "Beta AS" not in portfolio
    tab = client.get(f"/staff/members/{world['a'].id}?tab=cases").text
    assert "Felles sak om lønn" in tab and "Betas sak" not in tab


def test_organisation_tab_hides_cases_from_coordinators(client, world):
    coordinator = make_staff(Role.COORDINATOR)
    db.session.commit()
    login(client, coordinator)
    tab = client.get(f"/staff/members/{world['a'].id}?tab=cases")
    assert tab.status_code == 200 and "Felles sak om lønn" not in tab.text


# --- attachments -------------------------------------------------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def upload(client, case, name, data):
    return client.post(
        f"/portal/advisory/{case.id}/files",
        data={"upload-csrf_token": token(client), "upload-files": [(io.BytesIO(data), name)]},
        content_type="multipart/form-data",
    )


def test_upload_and_download_with_safe_headers(app, client, world, app_storage):
    login(client, world["req_user"])
    case = world["shared"]
    assert upload(client, case, "rapport.pdf", PDF).status_code == 302
    attachment = db.session.scalar(select(CaseAttachment).where(CaseAttachment.case_id == case.id))
    assert attachment.original_name == "rapport.pdf" and attachment.stored_name != "rapport.pdf"
    assert app_storage.exists(attachment.stored_name)  # on the local folder, then on the S3 server
    with client.get(f"/portal/advisory/{case.id}/files/{attachment.id}") as response:
        assert response.is_streamed and response.data == PDF
        assert response.headers["Content-Length"] == str(len(PDF))
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response.headers["Content-Security-Policy"]
    # Another organisation's user cannot fetch it.
    with app.test_client() as other:
        login(other, world["b_user"])
        assert other.get(f"/portal/advisory/{case.id}/files/{attachment.id}").status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("rapport.pdf", b"<!doctype html><script>alert(1)</script>", "ikke den typen fil"),
        ("../../etc/passwd.pdf", PDF, "mapper"),
        ("side.html", b"<html></html>", "Bare PDF"),
        ("stor.pdf", PDF + b"0" * (200 * 1024), "større enn"),
        ("falsk.docx", b"PK\x03\x04 not really a zip", "ikke den typen fil"),
    ],
)
def test_upload_refusals(client, world, app, monkeypatch, name, data, message):
    monkeypatch.setitem(app.config, "ATTACHMENT_MAX_BYTES", 100 * 1024)
    login(client, world["req_user"])
    response = upload(client, world["shared"], name, data)
    assert response.status_code == 400
    assert message in response.text
    assert db.session.scalar(select(func.count(CaseAttachment.id))) == 0


def test_files_on_an_internal_note_stay_with_the_adviser_team(app, client, world):
    case = world["shared"]
    login(client, world["adviser"])
    page = client.get(f"/staff/advisory/{case.id}")
    response = client.post(
        f"/staff/advisory/{case.id}/note",
        data={
            "note-csrf_token": _csrf(page, "note"),
            "note-body": "Revisjonsrapporten, bare for oss",
            "note-files": [(io.BytesIO(PDF), "intern-revisjon.pdf")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    internal = db.session.scalar(select(CaseAttachment).where(CaseAttachment.original_name == "intern-revisjon.pdf"))
    assert internal.message.is_internal
    staff_page = client.get(f"/staff/advisory/{case.id}").text
    files_panel = staff_page.split('id="files-heading"', 1)[1]
    assert re.search(r"intern-revisjon\.pdf</a>[^<]*<span[^>]*>\([^)]*\)</span> <span[^>]*>Internt</span>", files_panel)
    with client.get(f"/staff/advisory/{case.id}/files/{internal.id}") as download:
        assert download.status_code == 200 and download.data == PDF
    # A refused file saves neither the note nor the file.
    response = client.post(
        f"/staff/advisory/{case.id}/note",
        data={
            "note-csrf_token": _csrf(page, "note"),
            "note-body": "Et notat med feil fil",
            "note-files": [(io.BytesIO(b"<html></html>"), "side.pdf")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 400 and "ikke den typen fil" in response.text
    assert "Et notat med feil fil" not in client.get(f"/staff/advisory/{case.id}").text

    with app.test_client() as member:
        login(member, world["req_user"])
        for url in (f"/portal/advisory/{case.id}", f"/portal/advisory/{case.id}/export"):
            assert "intern-revisjon" not in member.get(url).text, url
        assert member.get(f"/portal/advisory/{case.id}/files/{internal.id}").status_code == 404


def _csrf(page, prefix=""):
    name = f"{prefix}-csrf_token" if prefix else "csrf_token"
    return re.search(rf'name="{name}"[^>]*value="([^"]+)"', page.text).group(1)


def test_staff_status_change_reassign_and_time(client, world):
    login(client, world["adviser"])
    case = world["shared"]
    page = client.get(f"/staff/advisory/{case.id}")
    response = client.post(
        f"/staff/advisory/{case.id}/status",
        data={"status-csrf_token": _csrf(page, "status"), "status-status": "resolved"},
    )
    assert response.status_code == 302
    # A transition the table refuses is a clear error and changes nothing.
    page = client.get(f"/staff/advisory/{case.id}")
    response = client.post(
        f"/staff/advisory/{case.id}/status", data={"status-csrf_token": _csrf(page, "status"), "status-status": "new"}
    )
    assert response.status_code == 400
    db.session.refresh(case)
    assert case.status is CaseStatus.RESOLVED
    response = client.post(
        f"/staff/advisory/{case.id}/reassign",
        data={
            "reassign-csrf_token": _csrf(page, "reassign"),
            "reassign-assignee_id": str(world["backup"].id),
            "reassign-note": "Ferie",
        },
    )
    assert response.status_code == 302
    response = client.post(
        f"/staff/advisory/{case.id}/time",
        data={
            "time-csrf_token": _csrf(page, "time"),
            "time-minutes": "30",
            "time-spent_on": "2026-01-05",
            "time-note": "Møte",
        },
    )
    assert response.status_code == 302
    db.session.refresh(case)
    assert case.assignee == world["backup"] and case.time_entries[0].minutes == 30


def test_templates_and_absences_pages(client, world):
    login(client, world["adviser"])
    page = client.get("/staff/advisory/templates/new")
    response = client.post(
        "/staff/advisory/templates/new", data={"csrf_token": _csrf(page), "name": "Møte", "body": "Hei {contact}"}
    )
    assert response.status_code == 302
    assert "Møte" in client.get("/staff/advisory/templates").text
    page = client.get("/staff/advisory/absences")
    response = client.post(
        "/staff/advisory/absences",
        data={
            "csrf_token": _csrf(page),
            "adviser_id": str(world["adviser"].id),
            "backup_id": str(world["backup"].id),
            "starts_on": "2027-07-01",
            "ends_on": "2027-07-31",
        },
    )
    assert response.status_code == 302
    assert "31.07.2027" in client.get("/staff/advisory/absences").text

    absence = db.session.scalars(select(AdviserAbsence)).one()
    page = client.get(f"/staff/advisory/absences/{absence.id}/edit")
    assert "Endre fraværet" in page.text and 'value="2027-07-31"' in page.text
    bad = client.post(
        f"/staff/advisory/absences/{absence.id}/edit",
        data={
            "csrf_token": _csrf(page),
            "adviser_id": str(world["adviser"].id),
            "backup_id": str(world["adviser"].id),
            "starts_on": "2027-07-01",
            "ends_on": "2027-07-31",
        },
    )
    assert bad.status_code == 200 and "Stedfortrederen må være en annen" in bad.text
    response = client.post(
        f"/staff/advisory/absences/{absence.id}/edit",
        data={
            "csrf_token": _csrf(page),
            "adviser_id": str(world["adviser"].id),
            "backup_id": "0",
            "starts_on": "2027-07-01",
            "ends_on": "2027-08-15",
            "note": "Ferie",
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert absence.ends_on == date(2027, 8, 15) and absence.backup_id is None and absence.note == "Ferie"
    assert "15.08.2027" in client.get("/staff/advisory/absences").text
    response = client.post(f"/staff/advisory/absences/{absence.id}/delete", data={"csrf_token": _csrf(page)})
    assert response.status_code == 302
    assert db.session.scalars(select(AdviserAbsence)).all() == []
    actions = set(db.session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("advisory.absence.%"))))
    assert actions == {"advisory.absence.added", "advisory.absence.changed", "advisory.absence.deleted"}


def test_admin_sets_a_service_target_and_new_cases_use_it(client, world):
    admin = make_staff(Role.ADMIN)
    db.session.commit()
    login(client, admin)
    page = client.get("/staff/advisory/targets")
    assert page.status_code == 200
    category_id = world["a"].membership.category_id
    response = client.post(
        f"/staff/advisory/targets/{category_id}/high",
        data={"csrf_token": _csrf(page), "first_hours": "2", "resolution_hours": "1"},
    )
    assert response.status_code == 302
    assert services.targets_for(world["a"], Urgency.HIGH) == services.DEFAULT_TARGETS[Urgency.HIGH]
    client.post(
        f"/staff/advisory/targets/{category_id}/high",
        data={"csrf_token": _csrf(page), "first_hours": "2", "resolution_hours": "12"},
    )
    assert services.targets_for(world["a"], Urgency.HIGH) == (2, 12)


def test_advisers_cannot_change_targets(client, world):
    login(client, world["adviser"])
    assert client.get("/staff/advisory/targets").status_code == 403


def test_text_is_escaped_on_every_page_and_in_email(app, client, world):
    from crm.mail.models import OutboxMessage

    raw = '<script>alert("x")</script>'
    case = make_case(
        world["a"], requester=world["req"], actor=world["req_user"], subject=f"Emne {raw}", description=raw
    )
    services.add_staff_reply(case, f"Svar {raw}", actor=world["adviser"])
    services.add_internal_note(case, f"Notat {raw}", actor=world["adviser"])
    db.session.commit()
    login(client, world["adviser"])
    for url in ("/staff/advisory/", f"/staff/advisory/{case.id}", f"/staff/members/{world['a'].id}?tab=cases"):
        page = client.get(url).text
        assert raw not in page and "&lt;script&gt;" in page, url
    with app.test_client() as member:
        login(member, world["req_user"])
        for url in ("/portal/advisory/", f"/portal/advisory/{case.id}"):
            page = member.get(url).text
            assert raw not in page and "&lt;script&gt;" in page, url
    html = [m.body_html for m in db.session.scalars(select(OutboxMessage)) if m.body_html]
    assert html and all(raw not in body for body in html)
    assert any("&lt;script&gt;" in body for body in html)


def test_member_attaches_files_to_a_new_request_and_a_refused_file_opens_nothing(client, world):
    login(client, world["req_user"])
    form = {
        "case_type": "ordinary",
        "subject": "Spørsmål med vedlegg",
        "description": "Se revisjonsrapporten.",
        "urgency": "normal",
        "visibility": "organisation",
    }
    before = db.session.scalar(select(func.count(Case.id)))
    refused = client.post(
        "/portal/advisory/new",
        data={**form, "csrf_token": token(client, "/portal/advisory/new"), "files": [(io.BytesIO(b"<html>"), "x.pdf")]},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 400 and "ikke den typen fil" in refused.text
    assert db.session.scalar(select(func.count(Case.id))) == before
    response = client.post(
        "/portal/advisory/new",
        data={
            **form,
            "csrf_token": token(client, "/portal/advisory/new"),
            "files": [(io.BytesIO(PDF), "revisjon.pdf")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    case = db.session.scalar(select(Case).where(Case.subject == "Spørsmål med vedlegg"))
    assert [a.original_name for a in case.attachments] == ["revisjon.pdf"]
    page = client.get(response.headers["Location"]).text
    assert "revisjon.pdf" in page and "(1 kB" in page and "(0 kB" not in page  # a small file is not "0 kB"


def test_member_is_told_the_adviser_waits_for_them_and_the_file_size_limit(client, world):
    services.change_status(world["shared"], CaseStatus.WAITING_FOR_MEMBER, actor=world["adviser"])
    db.session.commit()
    login(client, world["req_user"])
    assert "Venter på svar fra dere" in client.get("/portal/advisory/").text
    page = client.get(f"/portal/advisory/{world['shared'].id}").text
    assert "Rådgiveren venter på svar fra dere." in page
    assert "Høyst 10 MB per fil." in page
    assert "Høyst 10 MB per fil." in client.get("/portal/advisory/new").text


def test_dashboard_shows_other_years(client, world):
    login(client, world["adviser"])
    page = client.get("/staff/advisory/dashboard?year=2025")
    assert page.status_code == 200 and "Saker opprettet i 2025" in page.text and "Vis 2024" in page.text
    from crm.members.services import today

    this_year = today().year
    for bad in ("99999", "0", "1066"):
        page = client.get(f"/staff/advisory/dashboard?year={bad}")
        assert page.status_code == 200 and f"Saker opprettet i {this_year}" in page.text


def test_the_staff_page_keeps_the_teams_uploads_out_of_the_members_request_and_names_every_uploader(app, client, world):
    case = world["shared"]
    login(client, world["req_user"])
    assert upload(client, case, "fra-medlemmet.pdf", PDF).status_code == 302
    with app.test_client() as staff:
        login(staff, world["adviser"])
        page = staff.get(f"/staff/advisory/{case.id}")
        response = staff.post(
            f"/staff/advisory/{case.id}/files",
            data={"upload-csrf_token": _csrf(page, "upload"), "upload-files": [(io.BytesIO(PDF), "veileder.pdf")]},
            content_type="multipart/form-data",
        )
        assert response.status_code == 302
        page = staff.get(f"/staff/advisory/{case.id}").text
    request_section = page[page.index('id="request-heading"') : page.index('id="files-heading"')]
    request_section = request_section[: request_section.index("</section>")]
    assert "fra-medlemmet.pdf" in request_section and "veileder.pdf" not in request_section
    files_section = page[page.index('id="files-heading"') :].split("</section>")[0]
    assert f"{world['req_user'].full_name}, " in files_section
    assert f"{world['adviser'].full_name}, " in files_section


def test_an_upload_without_a_file_says_so_and_adds_nothing(app, client, world):
    case = world["shared"]
    login(client, world["req_user"])
    response = client.post(
        f"/portal/advisory/{case.id}/files",
        data={"upload-csrf_token": token(client)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400 and "Velg én eller flere filer." in response.text
    with app.test_client() as staff:
        login(staff, world["adviser"])
        page = staff.get(f"/staff/advisory/{case.id}")
        response = staff.post(
            f"/staff/advisory/{case.id}/files",
            data={"upload-csrf_token": _csrf(page, "upload")},
            content_type="multipart/form-data",
        )
        assert response.status_code == 400 and "Velg én eller flere filer." in response.text
    assert db.session.scalar(select(func.count(CaseAttachment.id))) == 0
