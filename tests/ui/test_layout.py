import re

import pytest

from crm.auth.models import Role
from tests.factories import make_member_user, make_staff, make_user
from tests.helpers import csrf_token, login


def _h1_count(html: str) -> int:
    return len(re.findall(r"<h1[\s>]", html))


def test_staff_pages_have_side_navigation_landmarks_and_one_h1(client):
    login(client, make_staff(Role.ADVISER, full_name="Kristian Bakke"))
    html = client.get("/staff/").text
    assert 'class="area-staff"' in html
    assert 'class="sidebar' in html
    assert 'href="#main"' in html and 'id="main"' in html
    for landmark in ("<header", "<nav", "<main", "<footer"):
        assert landmark in html
    assert _h1_count(html) == 1
    assert "Kristian Bakke" in html


def test_portal_pages_use_the_portal_layout_without_side_navigation(client):
    login(client, make_member_user(full_name="Hanne Lunde"))
    html = client.get("/portal/").text
    assert 'class="area-portal"' in html
    assert 'class="sidebar' not in html
    assert "bg-portal" in html
    assert _h1_count(html) == 1
    assert "Mer kommer i portalen" in html  # the empty state, no made-up data


def test_dashboard_is_a_landing_page_with_an_empty_state_and_the_users_roles(client):
    login(client, make_staff(Role.ADVISER, Role.FINANCE))
    html = client.get("/staff/").text
    assert "Arbeidslistene dine kommer her" in html
    # Members, cases and invoices are in the CRM: the empty state must not say they are "on their way".
    assert "Inntil da åpner du medlemmer, saker og fakturaer fra menyen eller snarveiene" in html
    assert "på vei" not in html
    assert "Rådgiver, Økonomi" in html


def test_active_nav_item_is_the_longest_match_only(client):
    login(client, make_staff(Role.ADMIN))
    html = client.get("/staff/audit/").text
    current = re.findall(r'<a class="nav-link active" aria-current="page" href="([^"]+)"', html)
    assert current and set(current) == {"/staff/audit/"}
    html = client.get("/staff/").text
    current = re.findall(r'<a class="nav-link active" aria-current="page" href="([^"]+)"', html)
    assert set(current) == {"/staff/"}


@pytest.mark.parametrize(
    ("roles", "sees_audit_log"),
    [({Role.ADMIN}, True), ({Role.ADVISER}, False), ({Role.COORDINATOR}, False), ({Role.FINANCE}, False)],
)
def test_navigation_follows_the_role(client, roles, sees_audit_log):
    login(client, make_staff(*roles))
    assert ('href="/staff/audit/"' in client.get("/staff/").text) is sees_audit_log


def test_members_see_no_staff_navigation(client):
    login(client, make_user())
    html = client.get("/portal/").text
    assert 'href="/staff/' not in html


def test_flash_messages_are_shown_in_a_live_region(client):
    login(client, make_member_user())
    token = csrf_token(client)
    response = client.post("/auth/logout", data={"csrf_token": token}, follow_redirects=True)
    assert 'role="status"' in response.text
    assert "Du er logget ut." in response.text


def test_the_forms_macro_puts_errors_next_to_their_fields(client):
    response = client.post("/auth/login", data={"csrf_token": csrf_token(client), "email": "nope"})
    html = response.text
    assert 'aria-invalid="true"' in html
    assert re.search(
        r'id="email"[^>]*aria-describedby="email-errors"|aria-describedby="email-errors"[^>]*id="email"', html
    )
    assert 'id="email-errors"' in html


def test_the_field_macro_passes_extra_attributes_to_the_control(client):
    html = client.get("/auth/login").text
    assert re.search(r'<input[^>]*autocomplete="username"[^>]*id="email"', html)
    assert re.search(r'<input[^>]*autocomplete="current-password"[^>]*id="password"', html)


def test_a_user_who_is_staff_and_member_can_move_between_the_two_areas(client):
    login(client, make_staff(Role.COORDINATOR, Role.MEMBER))
    staff_page = client.get("/staff/").text
    assert '<a class="btn btn-sm btn-outline-light" href="/portal/">Medlemsportal</a>' in staff_page
    portal_page = client.get("/portal/").text
    assert 'class="area-portal"' in portal_page
    assert '<a class="btn btn-sm btn-outline-light" href="/staff/">Ansattsider</a>' in portal_page


def test_the_portal_front_page_describes_every_area_a_member_can_open(client):
    login(client, make_member_user())
    page = client.get("/portal/").text
    assert "Medlemskapet, kontingenten og rådgiveren deres" in page
    assert "Be rådgiveren om hjelp" in page
    assert "betal på nett eller last dem ned som PDF" in page
