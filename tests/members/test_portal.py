import re
from datetime import date

import pytest

from crm.auth.models import Role
from crm.extensions import db
from crm.members.fees import seed_fee_schedules
from crm.members.models import ContactRole, MembershipStatus
from tests.factories import make_contact, make_organisation, make_staff, make_user
from tests.helpers import csrf_token, login

S = MembershipStatus


def member_at(org, *roles, **overrides):
    user = make_user(roles={Role.MEMBER})
    contact = make_contact(org, roles=list(roles), user_id=user.id, **overrides)
    return user, contact


@pytest.fixture
def world():
    a = make_organisation(name="Alfa AS", status=S.ACTIVE, website="https://alfa.example")
    b = make_organisation(name="Beta AS", status=S.ACTIVE)
    main_user, main = member_at(a, ContactRole.MAIN_CONTACT, name="Anne Hoved")
    plain_user, plain = member_at(a, ContactRole.TEAM_MEMBER, name="Per Vanlig", title="Innkjøper")
    b_user, b_contact = member_at(b, ContactRole.MAIN_CONTACT, name="Bente Beta")
    db.session.commit()
    return {
        "a": a,
        "b": b,
        "main_user": main_user,
        "main": main,
        "plain_user": plain_user,
        "plain": plain,
        "b_user": b_user,
        "b_contact": b_contact,
    }


def token(client):
    page = client.get("/portal/organisation/")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_member_sees_own_organisation_only(client, world):
    login(client, world["plain_user"])
    page = client.get("/portal/organisation/")
    assert page.status_code == 200
    assert "Alfa AS" in page.text and "Anne Hoved" in page.text
    assert "Beta AS" not in page.text and "Bente Beta" not in page.text


def test_member_sees_membership_fee_and_adviser(client, world):
    seed_fee_schedules()
    world["a"].annual_turnover_nok = 180_000_000
    membership = world["a"].membership
    membership.start_on = date(2019, 7, 5)
    membership.adviser = make_staff(Role.ADVISER, full_name="Rita Rådgiver")
    db.session.commit()
    login(client, world["plain_user"])
    page = client.get("/portal/organisation/").text.replace("\N{NO-BREAK SPACE}", " ")
    assert "Rita Rådgiver" in page
    assert "05.07.2019" in page and "Aktiv" in page
    assert "21 700 kr" in page and "(trinn 15, omsetning opptil 200 000 000 kr)" in page


def test_the_portal_shows_an_overridden_fee_without_the_staff_reason(client, world):
    from crm.members.services import set_fee_override

    seed_fee_schedules()
    world["a"].annual_turnover_nok = 180_000_000
    world["a"].membership.start_on = date(2019, 7, 5)
    set_fee_override(world["a"].membership, 1_000_000, reason="Avtalt i styret: økonomiske vansker", actor=make_staff())
    db.session.commit()
    login(client, world["plain_user"])
    page = client.get("/portal/organisation/").text.replace("\N{NO-BREAK SPACE}", " ")
    assert "10 000 kr" in page and "fastsatt av administrasjonen" in page
    assert "økonomiske vansker" not in page


def test_the_portal_front_page_leads_to_the_organisation(client, world):
    login(client, world["plain_user"])
    page = client.get("/portal/").text
    assert 'href="/portal/organisation/"' in page
    assert "Medlemskapet, kontingenten og rådgiveren deres" in page
    assert "Min virksomhet" not in page  # the front page is not the organisation


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/portal/organisation/contacts/{b}/edit"),
        ("post", "/portal/organisation/contacts/{b}/edit"),
        ("post", "/portal/organisation/contacts/{b}/deactivate"),
    ],
)
def test_member_a_cannot_reach_member_b(client, world, method, url):
    login(client, world["main_user"])
    csrf = token(client)
    response = getattr(client, method)(
        url.format(b=world["b_contact"].id), data={"csrf_token": csrf, "name": "Hacked", "roles": ["manager"]}
    )
    assert response.status_code == 404
    db.session.refresh(world["b_contact"])
    assert world["b_contact"].name == "Bente Beta" and world["b_contact"].is_active


def test_the_profile_form_shows_every_field_the_main_contact_may_change(client, world):
    from crm.members.forms import PortalProfileForm

    login(client, world["main_user"])
    page = client.get("/portal/organisation/edit").text
    for name in PortalProfileForm.VALUE_FIELDS:
        assert f'name="{name}"' in page, name
    assert 'value="https://alfa.example"' in page  # filled in with the organisation's details
    assert 'name="name"' not in page and 'name="orgnr"' not in page


def test_main_contact_edits_profile_and_extra_fields_are_ignored(client, world):
    login(client, world["main_user"])
    response = client.post(
        "/portal/organisation/edit",
        data={
            "csrf_token": token(client),
            "website": "https://alfa.no",
            "visiting_postcode": "0150",
            "name": "Nytt Navn",
            "orgnr": "974760673",
            "status": "excluded",
            "fee_override_ore": "0",
        },
    )
    assert response.status_code == 302
    org = world["a"]
    db.session.refresh(org)
    assert org.website == "https://alfa.no" and org.visiting_postcode == "0150"
    assert org.name == "Alfa AS" and org.orgnr != "974760673"
    assert org.membership.status is S.ACTIVE and org.membership.fee_override_ore is None


def test_ordinary_contact_edits_only_themselves(client, world):
    login(client, world["plain_user"])
    csrf = token(client)
    assert client.get("/portal/organisation/edit").status_code == 403
    assert client.get(f"/portal/organisation/contacts/{world['main'].id}/edit").status_code == 403
    response = client.post(
        f"/portal/organisation/contacts/{world['plain'].id}/edit",
        data={"csrf_token": csrf, "name": "Per Vanlig", "title": "Innkjøpssjef", "roles": ["main_contact"]},
    )
    assert response.status_code == 302
    db.session.refresh(world["plain"])
    assert world["plain"].title == "Innkjøpssjef"
    assert world["plain"].roles == {ContactRole.TEAM_MEMBER}  # roles are the main contact's to change
    response = client.post(f"/portal/organisation/contacts/{world['main'].id}/deactivate", data={"csrf_token": csrf})
    assert response.status_code == 403
    db.session.refresh(world["main"])
    assert world["main"].is_active


def test_main_contact_changes_roles_and_deactivates_colleagues(client, world):
    login(client, world["main_user"])
    page = client.get("/portal/organisation/").text
    # The button says what it does (not "Har sluttet", which reads as a status), for colleagues only.
    assert page.count("Marker som sluttet<span") == 1 and "Har sluttet" not in page
    csrf = token(client)
    response = client.post(
        f"/portal/organisation/contacts/{world['plain'].id}/edit",
        data={"csrf_token": csrf, "name": "Per Vanlig", "roles": ["invoice_contact", "purchaser"]},
    )
    assert response.status_code == 302
    db.session.refresh(world["plain"])
    assert world["plain"].roles == {ContactRole.INVOICE_CONTACT, ContactRole.PURCHASER}
    response = client.post(f"/portal/organisation/contacts/{world['main'].id}/deactivate", data={"csrf_token": csrf})
    assert response.status_code == 302
    db.session.refresh(world["main"])
    assert world["main"].is_active
    response = client.post(f"/portal/organisation/contacts/{world['plain'].id}/deactivate", data={"csrf_token": csrf})
    assert response.status_code == 302
    db.session.refresh(world["plain"])
    assert not world["plain"].is_active


def test_access_ends_with_the_membership(client, world):
    login(client, world["plain_user"])
    assert client.get("/portal/organisation/").status_code == 200
    world["a"].membership.status = S.ENDED
    db.session.commit()
    assert client.get("/portal/organisation/").status_code == 403
    assert client.get(f"/portal/organisation/contacts/{world['plain'].id}/edit").status_code == 403


def test_users_without_a_contact_and_staff_get_403(client, world):
    login(client, make_user(roles={Role.MEMBER}))
    assert client.get("/portal/organisation/").status_code == 403
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    login(client, make_staff(Role.ADMIN))
    assert client.get("/portal/organisation/").status_code == 403
