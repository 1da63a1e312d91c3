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
