"""Reply templates and absences: an outdated edit form is refused with the current values (409), and a new
one sent twice is saved once."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from crm.advisory import services
from crm.advisory.models import AdviserAbsence, ReplyTemplate
from crm.extensions import db
from tests.advisory.helpers import build_world
from tests.helpers import form_values, login

STALE = "Noen andre lagret dette etter at du åpnet skjemaet"


@pytest.fixture
def world(client):
    world = build_world()
    login(client, world["adviser"])
    return world


def _open(client, url, *, action: str | None = None):
    db.session.commit()  # keep the test's data when a refused request rolls the session back
    response = client.get(url)
    assert response.status_code == 200
    return form_values(response.text, action)


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_reply_template_edit_from_an_outdated_form_is_refused(client, world):
    template = services.save_reply_template(None, name="Møte", body="Hei", actor=world["adviser"])
    url = f"/staff/advisory/templates/{template.id}/edit"
    mine = _open(client, url)
    services.save_reply_template(
        template, name="Møte", body="Hei {contact}", actor=world["backup"], version=template.version
    )
    db.session.commit()
    mine["name"] = "Møteinnkalling"
    response = client.post(url, data=mine)
    assert response.status_code == 409 and STALE in response.text and "Hei {contact}" in response.text
    db.session.refresh(template)
    assert template.name == "Møte" and template.body == "Hei {contact}"


def test_new_reply_template_sent_twice_is_saved_once(client, world):
    form = _open(client, "/staff/advisory/templates/new")
    form["name"], form["body"] = "Møte", "Hei {contact}"
    answers = [client.post("/staff/advisory/templates/new", data=form).status_code for _ in range(2)]
    assert answers == [302, 302] and _count(ReplyTemplate) == 1


def _absence(world) -> AdviserAbsence:
    absence = services.add_absence(
        adviser=world["adviser"],
        starts_on=date(2027, 7, 1),
        ends_on=date(2027, 7, 31),
        backup=world["backup"],
        note=None,
        actor=world["adviser"],
    )
    db.session.commit()
    return absence


def test_absence_edit_from_an_outdated_form_is_refused(client, world):
    absence = _absence(world)
    url = f"/staff/advisory/absences/{absence.id}/edit"
    mine = _open(client, url, action=url)
    services.update_absence(
        absence,
        adviser=world["adviser"],
        starts_on=absence.starts_on,
        ends_on=date(2027, 8, 15),
        backup=world["backup"],
        note=None,
        actor=world["backup"],
        version=absence.version,
    )
    db.session.commit()
    mine["note"] = "Ferie"
    response = client.post(url, data=mine)
    assert response.status_code == 409 and STALE in response.text and 'value="2027-08-15"' in response.text
    db.session.refresh(absence)
    assert absence.ends_on == date(2027, 8, 15) and absence.note is None


def test_new_absence_sent_twice_is_saved_once(client, world):
    form = _open(client, "/staff/advisory/absences", action="/staff/advisory/absences")
    form["adviser_id"], form["backup_id"] = str(world["adviser"].id), str(world["backup"].id)
    form["starts_on"], form["ends_on"] = "2027-07-01", "2027-07-31"
    answers = [client.post("/staff/advisory/absences", data=form).status_code for _ in range(2)]
    assert answers == [302, 302] and _count(AdviserAbsence) == 1


@pytest.fixture
def admin_world(client):
    from crm.auth.models import Role
    from tests.factories import make_staff

    world = build_world()
    world["admin"] = make_staff(Role.ADMIN)
    db.session.commit()
    login(client, world["admin"])
    return world


def test_service_target_from_an_outdated_page_is_refused_and_the_page_shows_the_current_target(client, admin_world):
    from crm.advisory.models import Urgency

    world, admin = admin_world, admin_world["admin"]
    category_id = world["a"].membership.category_id
    action = f"/staff/advisory/targets/{category_id}/high"
    services.set_service_target(category_id, Urgency.HIGH, first_hours=3, resolution_hours=20, actor=admin)
    mine = _open(client, "/staff/advisory/targets", action=action)
    services.set_service_target(category_id, Urgency.HIGH, first_hours=5, resolution_hours=30, actor=admin, version=1)
    db.session.commit()

    mine["first_hours"], mine["resolution_hours"] = "2", "10"
    response = client.post(action, data=mine, follow_redirects=True)

    assert STALE in response.text
    assert f'id="first-{category_id}-high" name="first_hours" value="5"' in response.text
    assert services.targets_for(world["a"], Urgency.HIGH) == (5, 30)


def test_a_default_target_made_by_a_colleague_meanwhile_makes_the_page_outdated(client, admin_world):
    from crm.advisory.models import Urgency

    world, admin = admin_world, admin_world["admin"]
    category_id = world["a"].membership.category_id
    action = f"/staff/advisory/targets/{category_id}/high"
    mine = _open(client, "/staff/advisory/targets", action=action)  # the row shows the defaults: no version
    services.set_service_target(category_id, Urgency.HIGH, first_hours=5, resolution_hours=30, actor=admin)
    db.session.commit()
    mine["first_hours"], mine["resolution_hours"] = "2", "10"
    assert STALE in client.post(action, data=mine, follow_redirects=True).text
    assert services.targets_for(world["a"], Urgency.HIGH) == (5, 30)


# --- cases: new case, replies, notes and time sent twice -----------------------------------------------------


def _case(world):
    from tests.factories import make_case

    case = make_case(world["a"], requester=world["req"], actor=world["req_user"], subject="Leverandørspørsmål")
    db.session.commit()
    return case


def _messages(case, **where) -> int:
    from crm.advisory.models import CaseMessage

    return db.session.scalar(select(func.count()).select_from(CaseMessage).filter_by(case_id=case.id, **where))


def test_a_staff_reply_sent_twice_is_sent_once(client, world):
    case = _case(world)
    url, action = f"/staff/advisory/{case.id}", f"/staff/advisory/{case.id}/reply"
    form = _open(client, url, action=action)
    form["reply-body"] = "Kan dere sende mer?"
    answers = [client.post(action, data=form) for _ in range(2)]
    assert [a.status_code for a in answers] == [302, 302] and answers[0].location == answers[1].location
    assert _messages(case, body="Kan dere sende mer?") == 1


def test_an_internal_note_sent_twice_is_saved_once(client, world):
    case = _case(world)
    url, action = f"/staff/advisory/{case.id}", f"/staff/advisory/{case.id}/note"
    form = _open(client, url, action=action)
    form["note-body"] = "Ringte medlemmet."
    answers = [client.post(action, data=form).status_code for _ in range(2)]
    assert answers == [302, 302] and _messages(case, body="Ringte medlemmet.") == 1


def test_time_sent_twice_is_logged_once(client, world):
    from crm.advisory.models import CaseTimeEntry

    case = _case(world)
    url, action = f"/staff/advisory/{case.id}", f"/staff/advisory/{case.id}/time"
    form = _open(client, url, action=action)
    form["time-minutes"], form["time-note"] = "45", "Telefon"
    answers = [client.post(action, data=form).status_code for _ in range(2)]
    entries = select(func.count()).select_from(CaseTimeEntry).filter_by(case_id=case.id)
    assert answers == [302, 302] and db.session.scalar(entries) == 1


@pytest.fixture
def member_world(client):
    world = build_world()
    login(client, world["req_user"])
    return world


def test_a_member_reply_sent_twice_is_sent_once(client, member_world):
    case = _case(member_world)
    url, action = f"/portal/advisory/{case.id}", f"/portal/advisory/{case.id}/reply"
    form = _open(client, url, action=action)
    form["reply-body"] = "Her er mer informasjon."
    answers = [client.post(action, data=form).status_code for _ in range(2)]
    assert answers == [302, 302] and _messages(case, body="Her er mer informasjon.") == 1


def test_a_new_case_sent_twice_opens_one_case(client, member_world):
    from crm.advisory.models import Case

    form = _open(client, "/portal/advisory/new")
    form["subject"], form["description"] = "Innsynskrav fra journalist", "Vi har fått et krav."
    form["received_on"], form["case_type"], form["urgency"] = "2026-01-05", "transparency_request", "high"
    answers = [client.post("/portal/advisory/new", data=form) for _ in range(2)]
    case = db.session.scalar(select(Case).where(Case.subject == "Innsynskrav fra journalist"))
    assert [a.status_code for a in answers] == [302, 302]
    assert answers[0].location == answers[1].location == f"/portal/advisory/{case.id}"
    assert db.session.scalar(select(func.count()).select_from(Case)) == 1


# --- files uploaded twice ------------------------------------------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _attachments(case) -> int:
    from crm.advisory.models import CaseAttachment

    return db.session.scalar(select(func.count()).select_from(CaseAttachment).filter_by(case_id=case.id))


def _upload_twice(client, page: str, action: str) -> list:
    import io

    form = _open(client, page, action=action)  # with its one-time token, so that a second sending finds the first
    files = [("rapport.pdf", PDF), ("vedlegg.pdf", PDF + b"%2\n")]
    return [
        client.post(
            action,
            data={**form.to_dict(), "upload-files": [(io.BytesIO(data), name) for name, data in files]},
            content_type="multipart/form-data",
        )
        for _ in range(2)
    ]


def test_files_uploaded_twice_by_staff_are_stored_once(client, world):
    case = _case(world)
    answers = _upload_twice(client, f"/staff/advisory/{case.id}", f"/staff/advisory/{case.id}/files")
    assert [a.status_code for a in answers] == [302, 302] and answers[0].location == answers[1].location
    assert _attachments(case) == 2


def test_files_uploaded_twice_by_a_member_are_stored_once(client, member_world):
    case = _case(member_world)
    answers = _upload_twice(client, f"/portal/advisory/{case.id}", f"/portal/advisory/{case.id}/files")
    assert [a.status_code for a in answers] == [302, 302] and answers[0].location == answers[1].location
    assert _attachments(case) == 2


# --- assignee and status changed by a colleague meanwhile ------------------------------------------------------


def _case_page_form(client, case, section: str):
    return _open(client, f"/staff/advisory/{case.id}", action=f"/staff/advisory/{case.id}/{section}")


@pytest.mark.parametrize("opened_assigned", [True, False], ids=["was-assigned", "was-unassigned"])
def test_a_reassignment_from_an_outdated_form_does_not_overwrite_a_colleagues(client, world, opened_assigned):
    case = _case(world)
    adviser, backup = world["adviser"], world["backup"]
    services.reassign_case(case, assignee=adviser if opened_assigned else None, note=None, actor=adviser)
    mine = _case_page_form(client, case, "reassign")
    # Meanwhile a colleague moves the case: unassigns it, or takes it (None and an adviser are both an assignee).
    services.reassign_case(case, assignee=None if opened_assigned else backup, note=None, actor=backup)
    db.session.commit()
    colleagues = case.assignee_id

    mine["reassign-assignee_id"], mine["reassign-note"] = str(backup.id if opened_assigned else adviser.id), "Tar den"
    response = client.post(f"/staff/advisory/{case.id}/reassign", data=mine)

    assert response.status_code == 409 and STALE in response.text
    shown = form_values(response.text, f"/staff/advisory/{case.id}/reassign")  # the current assignee, to go on from
    assert shown["reassign-assignee_id"] == shown["reassign-assigned_was"] == str(colleagues or 0)
    db.session.refresh(case)
    assert case.assignee_id == colleagues and _messages(case, body="Tar den") == 0
    shown["reassign-assignee_id"] = str(adviser.id)  # the re-shown form is current: sending it now works
    assert client.post(f"/staff/advisory/{case.id}/reassign", data=shown).status_code == 302
    db.session.refresh(case)
    assert case.assignee_id == adviser.id


def test_a_reassignment_from_a_page_without_the_opened_assignee_goes_ahead(client, world):
    """A page opened before the form carried its assignee is sent as before."""
    case = _case(world)
    mine = _case_page_form(client, case, "reassign")
    mine.pop("reassign-assigned_was", None)
    mine["reassign-assignee_id"] = str(world["backup"].id)
    assert client.post(f"/staff/advisory/{case.id}/reassign", data=mine).status_code == 302
    db.session.refresh(case)
    assert case.assignee_id == world["backup"].id


def test_a_status_change_from_an_outdated_form_is_refused(client, world):
    from crm.advisory.models import CaseStatus

    case = _case(world)
    mine = _case_page_form(client, case, "status")
    services.change_status(case, CaseStatus.WAITING_FOR_MEMBER, actor=world["backup"])
    db.session.commit()

    mine["status-status"] = CaseStatus.RESOLVED.value  # a next step from the status the form was opened at
    response = client.post(f"/staff/advisory/{case.id}/status", data=mine)

    assert response.status_code == 409 and STALE in response.text
    shown = form_values(response.text, f"/staff/advisory/{case.id}/status")
    assert shown["status-status_was"] == CaseStatus.WAITING_FOR_MEMBER.value
    db.session.refresh(case)
    assert case.status is CaseStatus.WAITING_FOR_MEMBER


def test_a_status_change_from_a_page_without_the_opened_status_goes_ahead(client, world):
    from crm.advisory.models import CaseStatus

    case = _case(world)
    mine = _case_page_form(client, case, "status")
    mine.pop("status-status_was", None)
    mine["status-status"] = CaseStatus.IN_PROGRESS.value
    assert client.post(f"/staff/advisory/{case.id}/status", data=mine).status_code == 302
    db.session.refresh(case)
    assert case.status is CaseStatus.IN_PROGRESS


def test_a_reassignment_that_loses_the_race_to_a_colleagues_is_refused(world):
    """This request read the case (assigned to the adviser) and its form says the same; a concurrent request
    unassigns the case before this one writes. The check reads the row again (under a lock on PostgreSQL), so it
    sees the colleague's change instead of the request's own copy."""
    from crm.advisory.models import Case
    from crm.errors import StaleEdit

    case = _case(world)
    adviser = world["adviser"]
    services.reassign_case(case, assignee=adviser, note=None, actor=adviser)
    db.session.commit()
    assert case.assignee_id == adviser.id  # this request has read the row
    db.session.execute(Case.__table__.update().where(Case.id == case.id).values(assignee_id=None))
    with pytest.raises(StaleEdit):
        services.reassign_case(case, assignee=world["backup"], note=None, actor=adviser, assigned_was=adviser.id)
