"""Nothing lost, nothing silently overwritten: edit forms opened before a colleague's save are refused with the
current values, and create forms sent twice make one record."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crm.auth.models import Role
from crm.errors import StaleEdit
from crm.extensions import db
from crm.members import services
from crm.members.models import Contact, ContactRole, MembershipStatus, Organisation
from tests.factories import make_contact, make_organisation, make_staff, make_user
from tests.helpers import form_values, login

STALE = "Noen andre lagret dette etter at du åpnet skjemaet"


@pytest.fixture
def staff(client):
    user = make_staff(Role.COORDINATOR, full_name="Kari Koordinator")
    login(client, user)
    return user


def _fill(form, values: dict) -> None:
    for name, value in values.items():
        form[name] = value  # replaces the form's (empty) value


def _open(client, url):
    db.session.commit()  # keep the test's data when a refused request rolls the session back
    response = client.get(url)
    assert response.status_code == 200
    return form_values(response.text)


# --- stale edits ----------------------------------------------------------------------------------------


def test_staff_organisation_edit_from_an_outdated_form_is_refused_with_the_current_values(client, staff):
    org = make_organisation(name="Alfa AS", employees=10)
    url = f"/staff/members/{org.id}/edit"
    mine = _open(client, url)
    colleague = make_staff(Role.ADVISER)
    services.update_organisation(org, {"name": "Alfa Gruppen AS"}, actor=colleague, version=org.version)
    db.session.commit()

    mine["employees"] = "99"
    response = client.post(url, data=mine)

    assert response.status_code == 409
    assert STALE in response.text
    assert 'value="Alfa Gruppen AS"' in response.text  # the colleague's name, to make the change again on
    assert 'name="employees" type="text" value="10"' in response.text or 'value="10"' in response.text
    db.session.refresh(org)
    assert org.name == "Alfa Gruppen AS" and org.employees == 10  # nothing of the outdated form was saved

    again = form_values(response.text)  # the re-shown form carries the new version: saving it now works
    again["employees"] = "99"
    assert client.post(url, data=again).status_code == 302
    db.session.refresh(org)
    assert org.name == "Alfa Gruppen AS" and org.employees == 99


def test_a_sector_only_change_makes_older_organisation_forms_stale(client, staff):
    org = make_organisation(name="Alfa AS")
    url = f"/staff/members/{org.id}/edit"
    mine = _open(client, url)
    services.update_organisation(org, {}, actor=staff, sectors=["Tekstil"], version=org.version)
    db.session.commit()
    mine["name"] = "Beta AS"
    assert client.post(url, data=mine).status_code == 409
    db.session.refresh(org)
    assert [s.name for s in org.sectors] == ["Tekstil"] and org.name == "Alfa AS"


def test_staff_contact_edit_from_an_outdated_form_is_refused(client, staff):
    org = make_organisation()
    contact = make_contact(org, name="Kari Nordmann", title="Leder")
    url = f"/staff/members/contacts/{contact.id}/edit"
    mine = _open(client, url)
    services.update_contact(contact, {"title": "Daglig leder"}, actor=staff, version=contact.version)
    db.session.commit()
    mine["name"] = "Kari Nordkvinne"
    response = client.post(url, data=mine)
    assert response.status_code == 409 and STALE in response.text and 'value="Daglig leder"' in response.text
    db.session.refresh(contact)
    assert contact.name == "Kari Nordmann" and contact.title == "Daglig leder"


def _portal_main_contact(client):
    org = make_organisation(name="Alfa AS", website="https://gammel.no", status=MembershipStatus.ACTIVE)
    user = make_user(roles={Role.MEMBER})
    me = make_contact(org, name="Mia Medlem", roles=[ContactRole.MAIN_CONTACT], user_id=user.id)
    db.session.commit()
    login(client, user)
    return org, me


def test_portal_organisation_edit_from_an_outdated_form_is_refused(client):
    org, _me = _portal_main_contact(client)
    mine = _open(client, "/portal/organisation/edit")
    services.update_organisation(org, {"website": "https://ny.no"}, actor=None, version=org.version)
    db.session.commit()
    mine["visiting_city"] = "Bergen"
    response = client.post("/portal/organisation/edit", data=mine)
    assert response.status_code == 409 and STALE in response.text and "https://ny.no" in response.text
    db.session.refresh(org)
    assert org.website == "https://ny.no" and org.visiting_city != "Bergen"


def test_portal_contact_edit_from_an_outdated_form_is_refused(client):
    _org, me = _portal_main_contact(client)
    url = f"/portal/organisation/contacts/{me.id}/edit"
    mine = _open(client, url)
    services.update_contact(me, {"title": "Innkjøpssjef"}, actor=None, version=me.version)
    db.session.commit()
    mine["name"] = "Mia Medlemsen"
    response = client.post(url, data=mine)
    assert response.status_code == 409 and STALE in response.text
    db.session.refresh(me)
    assert me.name == "Mia Medlem" and me.title == "Innkjøpssjef"


def test_a_save_that_loses_the_race_after_its_check_is_refused_too(client, staff):
    """Both requests read version 1 and pass the form check; the database's ``WHERE version = 1`` refuses the
    second UPDATE (SQLAlchemy's StaleDataError), which the views show like an outdated form."""
    from crm.errors import commit_action

    org = make_organisation(name="Alfa AS")
    db.session.commit()
    assert org.version == 1  # this request has read the row
    # A concurrent request saves the same row before this one writes.
    db.session.execute(
        Organisation.__table__.update().where(Organisation.id == org.id).values(name="Annen AS", version=2)
    )
    with pytest.raises(StaleEdit):
        commit_action(lambda: services.update_organisation(org, {"name": "Først AS"}, actor=staff, version=1))


# --- double submits -------------------------------------------------------------------------------------


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_new_organisation_sent_twice_registers_one(client, staff):
    form = _open(client, "/staff/members/new")
    _fill(form, {"name": "Dobbel AS", "orgnr": "974760673", "kind": "company", "country": "NO"})
    first = client.post("/staff/members/new", data=form)
    second = client.post("/staff/members/new", data=form)
    created = db.session.scalar(select(Organisation).where(Organisation.orgnr == "974760673"))
    assert first.status_code == second.status_code == 302
    assert first.location == second.location == f"/staff/members/{created.id}"
    assert _count(Organisation, Organisation.orgnr == "974760673") == 1


def test_new_contact_sent_twice_adds_one(client, staff):
    org = make_organisation()
    url = f"/staff/members/{org.id}/contacts/new"
    form = _open(client, url)
    _fill(form, {"name": "Ola Dobbel", "email": "ola@dobbel.no"})
    responses = [client.post(url, data=form) for _ in range(2)]
    assert [r.status_code for r in responses] == [302, 302]
    assert _count(Contact, Contact.email == "ola@dobbel.no") == 1


def test_portal_invitation_sent_twice_invites_one(client):
    _portal_main_contact(client)
    form = _open(client, "/portal/organisation/contacts/new")
    _fill(form, {"name": "Per Kollega", "email": "per@alfa.no"})
    responses = [client.post("/portal/organisation/contacts/new", data=form) for _ in range(2)]
    assert [r.status_code for r in responses] == [302, 302]
    assert _count(Contact, Contact.email == "per@alfa.no") == 1


def test_a_new_form_is_a_new_submission(client, staff):
    org = make_organisation()
    url = f"/staff/members/{org.id}/contacts/new"
    for email in ("en@alfa.no", "to@alfa.no"):
        form = _open(client, url)
        _fill(form, {"name": "Ny", "email": email})
        assert client.post(url, data=form).status_code == 302
    assert _count(Contact, Contact.organisation_id == org.id) == 2


# --- membership details and fee schedules -----------------------------------------------------------------


def test_membership_details_from_an_outdated_form_are_refused(client, staff):
    org = make_organisation(name="Alfa AS", status=MembershipStatus.ACTIVE)
    membership = org.membership
    action = f"/staff/members/{org.id}/membership"
    db.session.commit()
    mine = form_values(client.get(f"/staff/members/{org.id}?tab=membership").text, action)
    services.update_membership_details(membership, actor=staff, principles_version="2026", version=membership.version)
    db.session.commit()

    mine["principles_version"] = "2025"
    response = client.post(action, data=mine, follow_redirects=True)

    assert STALE in response.text  # the tab shows the message and the saved details
    assert 'value="2026"' in response.text
    db.session.refresh(membership)
    assert membership.principles_version == "2026"


def _county_schedule():
    from crm.members.fees import seed_fee_schedules

    return {s.category.code: s for s in seed_fee_schedules(2026)}["county"]


FEES = "/staff/members/fees"


def test_fee_schedule_edit_from_an_outdated_form_is_refused_with_the_current_values(client, staff):
    from crm.members.services.fee_schedules import FeeScheduleInput, ProRataRow

    schedule = _county_schedule()
    url = f"{FEES}/2026/{schedule.category_id}"
    mine = form_values(_open_page(client, url), url)
    colleague_rule = FeeScheduleInput(
        rate_ore=77,
        min_ore=schedule.rule["min_ore"],
        max_ore=schedule.rule["max_ore"],
        pro_rata=[ProRataRow(day=day, month=month, percent=percent) for month, day, percent in schedule.pro_rata],
        group_discount_percent=schedule.group_discount_percent,
    )
    services.update_fee_schedule(schedule, colleague_rule, actor=None, version=schedule.version)
    db.session.commit()

    mine["rate"] = "0,99"
    response = client.post(url, data=mine)

    assert response.status_code == 409 and STALE in response.text
    assert 'value="0,77"' in response.text  # the colleague's rate, to make the change again on
    db.session.refresh(schedule)
    assert schedule.rule["rate_ore"] == 77


def test_new_fee_schedule_sent_twice_is_created_once(client, staff):
    from crm.members.models import FeeSchedule

    county_id = _county_schedule().category_id
    url = f"{FEES}/2027/{county_id}?rule_type=per_inhabitant"
    form = form_values(_open_page(client, url), url)
    _fill(form, {"rate": "0,61", "minimum": "26 400", "maximum": "102 100", "group_discount": "0"})
    responses = [client.post(url, data=form, follow_redirects=True) for _ in range(2)]
    for response in responses:  # the second is no edit of the first ("nothing was changed"): the same answer
        assert response.status_code == 200
        assert "Kontingentsatsene for Fylkeskommune 2027 ble opprettet." in response.text, response.text
    assert _count(FeeSchedule, FeeSchedule.year == 2027) == 1


def test_copying_a_year_sent_twice_copies_once(client, staff):
    from crm.members.models import FeeSchedule

    _county_schedule()
    form = form_values(_open_page(client, f"{FEES}?year=2026"), f"{FEES}/2026/copy")
    form["index_percent"] = "3"
    responses = [client.post(f"{FEES}/2026/copy", data=form, follow_redirects=True) for _ in range(2)]
    for response in responses:
        assert response.status_code == 200
        assert "5 kontingentsatser ble kopiert fra 2026 til 2027" in response.text
    assert _count(FeeSchedule, FeeSchedule.year == 2027) == 5


def _open_page(client, url) -> str:
    db.session.commit()
    response = client.get(url)
    assert response.status_code == 200
    return response.text


def test_an_import_uploaded_twice_starts_one_batch(client, staff):
    import io

    from crm.members.models import ImportBatch

    form = form_values(_open_page(client, "/staff/members/import"))
    content = b"orgnr;name;kind\n974760673;Import AS;company\n"
    answers = [
        client.post(
            "/staff/members/import",
            data={**form.to_dict(), "file": (io.BytesIO(content), "medlemmer.csv")},
            content_type="multipart/form-data",
        )
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [302, 302] and answers[0].location == answers[1].location
    assert _count(ImportBatch) == 1


def test_a_fee_override_from_an_outdated_form_is_refused(client, staff):
    from crm.members.services import set_fee_override

    org = make_organisation(name="Alfa AS", status=MembershipStatus.ACTIVE)
    membership = org.membership
    action = f"/staff/members/{org.id}/fee-override"
    db.session.commit()
    mine = form_values(client.get(f"/staff/members/{org.id}?tab=fee").text, action)
    set_fee_override(membership, 500_000, reason="Avtale med styret", actor=staff, version=membership.version)
    db.session.commit()

    mine["amount_nok"], mine["reason"] = "1000", "Liten organisasjon"
    response = client.post(action, data=mine, follow_redirects=True)

    assert STALE in response.text and "Avtale med styret" in response.text
    db.session.refresh(membership)
    assert membership.fee_override_ore == 500_000


def test_a_membership_status_change_from_an_outdated_form_is_refused(client, staff):
    org = make_organisation(name="Alfa AS", status=MembershipStatus.ACTIVE)
    membership = org.membership
    url = f"/staff/members/{org.id}/status"
    mine = _open(client, url)
    colleague = make_staff(Role.COORDINATOR)
    services.change_membership_status(membership, MembershipStatus.NOTICE_GIVEN, actor=colleague, reason="Oppsagt")
    db.session.commit()

    mine["to_status"], mine["reason"] = MembershipStatus.ENDED.value, "Sluttet"  # also a step from notice given
    response = client.post(url, data=mine)

    assert response.status_code == 409 and STALE in response.text
    shown = form_values(response.text)  # the form is at the current status, to go on from
    assert shown["status_was"] == MembershipStatus.NOTICE_GIVEN.value and not shown["reason"].strip()
    db.session.refresh(membership)
    assert membership.status is MembershipStatus.NOTICE_GIVEN


def test_a_membership_status_change_from_a_page_without_the_opened_status_goes_ahead(client, staff):
    org = make_organisation(name="Alfa AS", status=MembershipStatus.ACTIVE)
    url = f"/staff/members/{org.id}/status"
    mine = _open(client, url)
    mine.pop("status_was", None)
    mine["to_status"], mine["reason"] = MembershipStatus.NOTICE_GIVEN.value, "Oppsagt"
    assert client.post(url, data=mine).status_code == 302
    db.session.refresh(org.membership)
    assert org.membership.status is MembershipStatus.NOTICE_GIVEN
