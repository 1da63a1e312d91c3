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
