import re
from datetime import date

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.extensions import db
from crm.members.fees import seed_fee_schedules
from crm.members.models import Contact, MembershipStatus, Organisation, OrganisationKind
from tests.factories import make_contact, make_organisation, make_staff, make_user
from tests.helpers import csrf_token, login
from tests.members import brreg_server as fake

S = MembershipStatus


def csrf(client, url):
    db.session.commit()  # keep the test's data when a refused request rolls the session back
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', response.text).group(1)


@pytest.fixture
def staff(client):
    user = make_staff(Role.COORDINATOR, full_name="Kari Koordinator")
    login(client, user)
    return user


# --- access ----------------------------------------------------------------------------------------------


STAFF_URLS = [
    "/staff/members/",
    "/staff/members/new",
    "/staff/members/{org}",
    "/staff/members/{org}?tab=contacts",
    "/staff/members/{org}?tab=membership",
    "/staff/members/{org}?tab=fee",
    "/staff/members/{org}?tab=audit",
    "/staff/members/{org}/edit",
    "/staff/members/{org}/contacts/new",
    "/staff/members/contacts/{contact}/edit",
    "/staff/members/{org}/status",
]


@pytest.mark.parametrize("url", STAFF_URLS)
def test_members_get_403_and_staff_get_200(client, url):
    org = make_organisation()
    contact = make_contact(org)
    target = url.format(org=org.id, contact=contact.id)
    login(client, make_user(roles={Role.MEMBER}))
    assert client.get(target).status_code == 403
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    login(client, make_staff(Role.ADMIN))
    assert client.get(target).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/staff/members/{org}/status",
        "/staff/members/{org}/membership",
        "/staff/members/{org}/fee-override",
        "/staff/members/contacts/{contact}/deactivate",
        "/staff/members/{org}/edit",
    ],
)
def test_member_posts_are_refused_and_change_nothing(client, url):
    org = make_organisation(status=S.ACTIVE)
    contact = make_contact(org)
    login(client, make_user(roles={Role.MEMBER}))
    response = client.post(url.format(org=org.id, contact=contact.id), data={"to_status": "excluded", "reason": "x"})
    assert response.status_code in (400, 403)  # 400: CSRF refuses first
    assert org.membership.status is S.ACTIVE and contact.is_active


def test_anonymous_is_sent_to_login(client):
    response = client.get("/staff/members/")
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


def test_finance_can_read_but_not_edit(client):
    org = make_organisation()
    login(client, make_staff(Role.FINANCE))
    assert client.get(f"/staff/members/{org.id}").status_code == 200
    assert client.get(f"/staff/members/{org.id}/edit").status_code == 403
    assert client.get(f"/staff/members/{org.id}/status").status_code == 403


def test_unknown_organisation_and_tab_are_404(client, staff):
    assert client.get("/staff/members/999999").status_code == 404
    org = make_organisation()
    assert client.get(f"/staff/members/{org.id}?tab=nope").status_code == 404


# --- list ------------------------------------------------------------------------------------------------


def test_list_searches_by_name_orgnr_and_contact(client, staff):
    fjord = make_organisation(name="Fjordmat AS", orgnr="974760673")
    other = make_organisation(name="Annen Bedrift AS")
    make_contact(other, name="Per Kontaktsen", email="per@annen.no")
    page = client.get("/staff/members/?q=fjordmat").text
    assert "Fjordmat AS" in page and "Annen Bedrift AS" not in page
    page = client.get("/staff/members/?q=974 760 673").text
    assert "Fjordmat AS" in page and "Annen Bedrift AS" not in page
    page = client.get("/staff/members/?q=974760").text
    assert "Fjordmat AS" in page
    page = client.get("/staff/members/?q=per@annen").text
    assert "Annen Bedrift AS" in page and "Fjordmat AS" not in page
    page = client.get("/staff/members/?q=Kontaktsen").text
    assert "Annen Bedrift AS" in page
    assert fjord.id != other.id


def test_list_filters_and_counts_per_status(client, staff):
    adviser = make_staff(Role.ADVISER, full_name="Rådgiver Rita")
    active = make_organisation(name="Aktiv Kommune", kind=OrganisationKind.MUNICIPALITY, status=S.ACTIVE)
    active.membership.adviser = adviser
    make_organisation(name="Søker AS", status=S.APPLIED)
    db.session.flush()
    page = client.get("/staff/members/?status=active").text
    assert "Aktiv Kommune" in page and "Søker AS" not in page
    # The status counts ignore the status filter itself.
    assert re.search(r"Søkt <span class=\"badge text-bg-light\">1</span>", page)
    page = client.get(f"/staff/members/?adviser={adviser.id}").text
    assert "Aktiv Kommune" in page and "Søker AS" not in page
    assert f'<option value="{adviser.id}" selected>Rådgiver Rita</option>' in page
    page = client.get("/staff/members/?adviser=0").text
    assert "Søker AS" in page and "Aktiv Kommune" not in page
    assert '<option value="0" selected>Ingen rådgiver</option>' in page
    page = client.get("/staff/members/?kind=municipality").text
    assert "Aktiv Kommune" in page and "Søker AS" not in page
    assert '<option value="municipality" selected>' in page and page.count(" selected>") == 2  # kind and sort
    page = client.get("/staff/members/?status=bogus&kind=bogus&sort=bogus").text
    assert "Aktiv Kommune" in page and "Søker AS" in page


def test_list_filters_by_sector_and_transparency_act(client, staff):
    from crm.members.services import get_or_create_sectors

    tekstil = make_organisation(name="Tekstil AS")
    tekstil.sectors = get_or_create_sectors(["Tekstil"])
    make_organisation(name="Mat AS", transparency_act_scope="yes")
    db.session.flush()
    page = client.get(f"/staff/members/?sector={tekstil.sectors[0].id}").text
    assert "Tekstil AS" in page and "Mat AS" not in page
    assert f'<option value="{tekstil.sectors[0].id}" selected>Tekstil</option>' in page
    page = client.get("/staff/members/?transparency=yes").text
    assert "Mat AS" in page and "Tekstil AS" not in page
    assert '<option value="yes" selected>' in page


def test_list_filters_by_membership_category(client, staff):
    from crm.members.services import ensure_categories

    categories = ensure_categories()
    # A company placed in the organisation category: the filter follows the membership, not the kind.
    make_organisation(name="Kategori Organisasjon AS", category=categories["organisation"])
    make_organisation(name="Vanlig Bedrift AS")
    page = client.get(f"/staff/members/?category={categories['organisation'].id}").text
    assert "Kategori Organisasjon AS" in page and "Vanlig Bedrift AS" not in page
    assert f'<option value="{categories["organisation"].id}" selected>Organisasjon</option>' in page


def test_list_sorts_and_paginates(app, client, staff):
    for name in ("Cecilie AS", "Anna AS", "Bjørn AS"):
        make_organisation(name=name)
    page = client.get("/staff/members/?sort=-name").text
    assert page.index("Cecilie AS") < page.index("Bjørn AS") < page.index("Anna AS")
    app.config["PER_PAGE"] = 2
    try:
        first = client.get("/staff/members/").text
        second = client.get("/staff/members/?page=2").text
    finally:
        app.config["PER_PAGE"] = 25
    assert "Anna AS" in first and "Cecilie AS" not in first
    assert "Cecilie AS" in second and "Anna AS" not in second
    assert re.search(r'aria-current="page"><span class="visually-hidden">Side </span>2</a>', second)
    assert "Viser 3–3 av 3" in second  # the shared pagination macro
    # Page links keep the filters and the sort order.
    filtered = client.get("/staff/members/?sort=-name&per_page=1&kind=company").text
    assert re.search(r'href="/staff/members/\?sort=-name&amp;per_page=1&amp;kind=company&amp;page=2"', filtered)


@pytest.mark.parametrize("size", [5, 50])
def test_list_runs_a_constant_number_of_queries(app, client, staff, count_queries, size):
    adviser = make_staff(Role.ADVISER)
    from crm.members.services import get_or_create_sectors

    sectors = get_or_create_sectors(["Tekstil", "IKT"])
    for i in range(size):
        org = make_organisation(name=f"Org {i:03d}", status=S.ACTIVE)
        org.membership.adviser = adviser if i % 2 else make_staff(Role.ADVISER)
        org.sectors = sectors
        make_contact(org)
    db.session.flush()
    client.get("/staff/members/")  # warm-up (first request compiles templates)
    app.config["PER_PAGE"] = 100  # every organisation on one page
    try:
        with count_queries() as counter:
            response = client.get("/staff/members/")
    finally:
        app.config["PER_PAGE"] = 25
    assert response.status_code == 200
    assert response.text.count('href="/staff/members/') >= size
    assert counter.count == EXPECTED_LIST_QUERIES, counter.statements


# total, page (with membership, category, adviser), sectors of the page, the advisers' roles, status counts,
# the filter menus (categories, advisers and their roles, sectors): the same for 5 and for 50 organisations.
# (The logged-in user is cached in the test's app context, so loading it is not counted.)
EXPECTED_LIST_QUERIES = 9


# --- organisation page -----------------------------------------------------------------------------------


def test_organisation_page_shows_profile_contacts_fee_and_audit(client, staff):
    seed_fee_schedules(2026)
    org = make_organisation(name="Fjordmat AS", orgnr="974760673", annual_turnover_nok=12_000_000, ehf_receiver=True)
    kari = make_contact(org, name="Kari Nordmann", phone="+4722334455", title="Innkjøpssjef")
    page = client.get(f"/staff/members/{org.id}").text
    assert "974 760 673" in page and "0192:974760673" in page
    page = client.get(f"/staff/members/{org.id}?tab=contacts").text
    assert "Kari Nordmann" in page and "+47 22 33 44 55" in page and "Innkjøpssjef" in page
    assert f'<a href="/staff/members/contacts/{kari.id}/edit">Kari Nordmann</a>' in page  # the name opens the form
    page = client.get(f"/staff/members/{org.id}?tab=fee&year=2026").text
    assert "Omsetningstrinn" in page and "Kontingent 2026" in page
    page = client.get(f"/staff/members/{org.id}?tab=fee&year=2031").text
    assert "Det finnes ingen kontingentsatser for 2031" in page
    page = client.get(f"/staff/members/{org.id}?tab=audit").text
    assert "Revisjonslogg" in page


def test_audit_trail_reads_in_norwegian_with_norwegian_dates(client, staff):
    from crm.members.services import change_membership_status, update_organisation

    org = make_organisation(name="Fjordmat AS", status=S.ACTIVE)
    change_membership_status(
        org.membership, S.NOTICE_GIVEN, actor=staff, reason="Nye prioriteringer", on_date=date(2026, 3, 2)
    )
    update_organisation(org, {"website": "https://fjordmat.example"}, actor=staff)
    page = client.get(f"/staff/members/{org.id}?tab=audit").text
    assert "Fra: Aktiv; Til: Oppsagt; Dato: 02.03.2026; Begrunnelse: Nye prioriteringer" in page
    assert "Felt: Nettsted" in page
    trail = re.sub(r"<[^>]+>", " ", page[page.index("<table") : page.index("</table>")])
    for raw in ("notice_given", "on_date", "2026-03-02", "membership_id", "website"):
        assert raw not in trail, raw


def test_audit_trail_names_the_contact_person_and_shows_the_orgnr_spaced(client, staff):
    from crm.members.services import add_contact, create_organisation, update_contact

    org = create_organisation({"name": "Fjordmat AS", "orgnr": "974760673", "kind": "company"}, actor=staff)
    kari = add_contact(org, {"name": "Kari Nordmann", "email": "kari@fjordmat.no"}, actor=staff)
    update_contact(kari, {"title": "Innkjøpssjef"}, actor=staff)
    page = client.get(f"/staff/members/{org.id}?tab=audit").text
    assert "Kontaktperson endret: Kari Nordmann" in page and "Kontaktperson lagt til: Kari Nordmann" in page
    assert "Organisasjonsnummer: 974 760 673" in page


def test_the_heading_names_the_category_only_when_it_differs_from_the_kind(client, staff):
    from crm.members.services import ensure_categories

    plain = make_organisation(name="Vanlig AS")
    page = client.get(f"/staff/members/{plain.id}").text
    assert "Kategori: " not in page and page.count("Bedrift") == 2  # the heading's kind and the profile's
    unusual = make_organisation(name="Uvanlig AS", category=ensure_categories()["organisation"])
    page = client.get(f"/staff/members/{unusual.id}").text
    assert "Kategori: Organisasjon" in page


def test_registered_panels_of_other_features_appear(client, staff):
    from crm.members import panels

    panels.register_panel(
        "test-invoices", "Fakturaer (test)", lambda organisation: f"<p>Faktura for {organisation.id}</p>", 50
    )
    try:
        org = make_organisation()
        page = client.get(f"/staff/members/{org.id}?tab=test-invoices").text
        assert "Fakturaer (test)" in page and f"<p>Faktura for {org.id}</p>" in page
    finally:
        panels._PANELS.pop("test-invoices")


# --- creating and editing --------------------------------------------------------------------------------


def test_create_organisation(client, staff):
    token = csrf(client, "/staff/members/new")
    response = client.post(
        "/staff/members/new",
        data={
            "csrf_token": token,
            "orgnr": "988 077 917",
            "name": "Nytt Medlem AS",
            "kind": "company",
            "country": "NO",
            "transparency_act_scope": "unknown",
            "visiting_postcode": "0150",
            "new_sectors": "Tekstil, IKT",
        },
    )
    assert response.status_code == 302
    org = db.session.scalar(select(Organisation).where(Organisation.orgnr == "988077917"))
    assert response.headers["Location"].endswith(f"/staff/members/{org.id}")
    assert {s.name for s in org.sectors} == {"Tekstil", "IKT"}
    assert "registrert" in client.get(response.headers["Location"]).text


def test_create_with_a_taken_orgnr_links_to_the_existing_record(client, staff):
    existing = make_organisation(name="Finnes Fra Før AS", orgnr="923609016")
    token = csrf(client, "/staff/members/new")
    response = client.post(
        "/staff/members/new",
        data={
            "csrf_token": token,
            "orgnr": "923609016",
            "name": "Kopi AS",
            "kind": "company",
            "country": "NO",
            "transparency_act_scope": "unknown",
        },
    )
    assert response.status_code == 200
    assert f'href="/staff/members/{existing.id}"' in response.text
    assert "Finnes Fra Før AS har allerede dette organisasjonsnummeret." in response.text
    assert db.session.scalar(select(Organisation).where(Organisation.name == "Kopi AS")) is None


def test_create_with_an_invalid_orgnr_shows_a_field_error(client, staff):
    token = csrf(client, "/staff/members/new")
    response = client.post(
        "/staff/members/new",
        data={
            "csrf_token": token,
            "orgnr": "974760674",
            "name": "Feil AS",
            "kind": "company",
            "country": "NO",
            "transparency_act_scope": "unknown",
        },
    )
    assert response.status_code == 200
    assert "Ikke et gyldig norsk organisasjonsnummer." in response.text
    assert db.session.scalar(select(Organisation).where(Organisation.name == "Feil AS")) is None


def test_register_lookup_prefills_the_form(client, staff, fake_brreg):
    page = client.get(f"/staff/members/new?lookup={fake.FOUND}").text
    assert 'value="REGISTERENHETEN I BRØNNØYSUND"' in page
    assert 'value="Havnegata 48"' in page
    assert '<option selected value="state_body">' in page


@pytest.mark.parametrize(
    ("orgnr", "message"),
    [
        (fake.UNKNOWN, "har ingen virksomhet med dette nummeret"),
        (fake.DELETED, "slettet fra Enhetsregisteret 15.03.2021"),
        (fake.BROKEN, "Fyll inn opplysningene selv"),
    ],
)
def test_register_problems_leave_the_form_usable(client, staff, fake_brreg, orgnr, message):
    page = client.get(f"/staff/members/new?lookup={orgnr}").text
    assert message in page
    assert 'name="name"' in page


def test_register_warnings_are_shown_on_the_prefilled_form(client, staff, fake_brreg):
    page = client.get(f"/staff/members/new?lookup={fake.BANKRUPT}").text
    assert 'class="alert alert-warning"' in page
    assert "<strong>Brønnøysundregistrene oppgir at KONKURSBO KAFFE AS er konkurs.</strong>" in page
    assert 'value="KONKURSBO KAFFE AS"' in page  # still filled in: staff decide
    page = client.get(f"/staff/members/new?lookup={fake.WINDING_UP}").text
    assert "er under avvikling" in page and "tvangsavvikling eller tvangsoppløsning" in page
    assert "er konkurs" not in client.get(f"/staff/members/new?lookup={fake.FOUND}").text


def test_a_sub_unit_number_offers_its_main_unit(client, staff, fake_brreg):
    page = client.get(f"/staff/members/new?lookup={fake.SUB_UNIT}").text
    assert "er en underenhet" in page and "REGISTERENHETEN I BRØNNØYSUND AVD MO" in page
    assert f'href="/staff/members/new?lookup={fake.FOUND}">Fyll ut fra hovedenheten (974 760 673)</a>' in page
    page = client.get(f"/staff/members/new?lookup={fake.FOUND}").text
    assert 'value="REGISTERENHETEN I BRØNNØYSUND"' in page


def test_lookup_of_a_registered_number_links_to_it(client, staff, fake_brreg):
    org = make_organisation(orgnr=fake.FOUND)
    page = client.get(f"/staff/members/new?lookup={fake.FOUND}").text
    assert f'href="/staff/members/{org.id}"' in page


def test_edit_organisation_audits_the_change(client, staff):
    org = make_organisation(name="Gammelt Navn AS")
    token = csrf(client, f"/staff/members/{org.id}/edit")
    response = client.post(
        f"/staff/members/{org.id}/edit",
        data={
            "csrf_token": token,
            "orgnr": org.orgnr,
            "name": "Nytt Navn AS",
            "kind": "company",
            "country": "NO",
            "transparency_act_scope": "yes",
            "employees": "55",
        },
    )
    assert response.status_code == 302
    assert org.name == "Nytt Navn AS" and org.employees == 55
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "members.organisation.updated")).one()
    assert entry.actor_id == staff.id


def test_add_contact_and_duplicate_email(client, staff):
    org = make_organisation()
    other = make_organisation(name="Annen AS")
    existing = make_contact(other, email="kari@example.no", name="Kari Eksisterende")
    token = csrf(client, f"/staff/members/{org.id}/contacts/new")
    response = client.post(
        f"/staff/members/{org.id}/contacts/new",
        data={"csrf_token": token, "name": "Kari Ny", "email": "KARI@example.no", "phone": "22334455"},
    )
    assert response.status_code == 200
    assert f'href="/staff/members/contacts/{existing.id}/edit"' in response.text
    response = client.post(
        f"/staff/members/{org.id}/contacts/new",
        data={
            "csrf_token": token,
            "name": "Ola Ny",
            "email": "ola@example.no",
            "phone": "0047 22 33 44 55",
            "roles": ["main_contact", "invoice_contact"],
        },
    )
    assert response.status_code == 302
    contact = db.session.scalar(select(Contact).where(Contact.email == "ola@example.no"))
    assert contact.phone == "+4722334455" and len(contact.roles) == 2


def test_bad_phone_is_a_field_error(client, staff):
    org = make_organisation()
    token = csrf(client, f"/staff/members/{org.id}/contacts/new")
    response = client.post(
        f"/staff/members/{org.id}/contacts/new", data={"csrf_token": token, "name": "Ola", "phone": "123"}
    )
    assert response.status_code == 200
    assert "Skriv et telefonnummer med 8 sifre" in response.text
    assert db.session.scalar(select(Contact).where(Contact.name == "Ola")) is None


def test_edit_and_deactivate_contact(client, staff):
    contact = make_contact(make_organisation(), title="Rådgiver")
    token = csrf(client, f"/staff/members/contacts/{contact.id}/edit")
    response = client.post(
        f"/staff/members/contacts/{contact.id}/edit",
        data={"csrf_token": token, "name": contact.name, "email": contact.email, "title": "Innkjøpssjef"},
    )
    assert response.status_code == 302
    assert contact.title == "Innkjøpssjef"
    response = client.post(
        f"/staff/members/contacts/{contact.id}/deactivate", data={"csrf_token": token, "left_on": "2026-05-01"}
    )
    assert response.status_code == 302
    assert not contact.is_active and contact.left_on == date(2026, 5, 1)
    assert "members.contact.deactivated" in db.session.scalars(select(AuditEntry.action)).all()


# --- membership ------------------------------------------------------------------------------------------


def test_change_status(client, staff):
    org = make_organisation(status=S.BOARD_REVIEW)
    token = csrf(client, f"/staff/members/{org.id}/status")
    response = client.post(
        f"/staff/members/{org.id}/status",
        data={"csrf_token": token, "to_status": "active", "on_date": "2026-03-05", "reason": "Styremøte 5. mars"},
    )
    assert response.status_code == 302
    assert org.membership.status is S.ACTIVE
    assert org.membership.basic_level_deadline == date(2028, 3, 5)
    page = client.get(response.headers["Location"]).text
    assert "Medlemskapet er nå: Aktiv" in page and "Styremøte 5. mars" in page


def test_invalid_status_change_is_refused_with_the_reason(client, staff):
    org = make_organisation(status=S.PROSPECT)
    token = csrf(client, f"/staff/members/{org.id}/status")
    response = client.post(
        f"/staff/members/{org.id}/status",
        data={"csrf_token": token, "to_status": "active", "on_date": "2026-03-05", "reason": "x"},
    )
    assert response.status_code == 200
    assert "Et medlemskap kan ikke gå fra Potensielt medlem til Aktiv" in response.text
    assert org.membership.status is S.PROSPECT


def test_update_membership_assigns_adviser(client, staff):
    adviser = make_staff(Role.ADVISER, full_name="Rådgiver Rolf")
    org = make_organisation()
    token = csrf(client, f"/staff/members/{org.id}?tab=membership")
    response = client.post(
        f"/staff/members/{org.id}/membership",
        data={
            "csrf_token": token,
            "category_id": org.membership.category_id,
            "adviser_id": adviser.id,
            "principles_version": "2022",
            "principles_accepted_on": "2026-01-10",
        },
    )
    assert response.status_code == 302
    assert org.membership.adviser_id == adviser.id
    assert org.membership.principles_version == "2022"


def test_fee_override(client, staff):
    seed_fee_schedules(2026)
    org = make_organisation(annual_turnover_nok=12_000_000)
    token = csrf(client, f"/staff/members/{org.id}?tab=fee")
    response = client.post(
        f"/staff/members/{org.id}/fee-override", data={"csrf_token": token, "amount_nok": "5000", "reason": ""}
    )
    assert response.status_code == 302
    assert org.membership.fee_override_ore is None
    response = client.post(
        f"/staff/members/{org.id}/fee-override",
        data={"csrf_token": token, "amount_nok": "5000", "reason": "Avtale med styret"},
    )
    assert response.status_code == 302
    assert org.membership.fee_override_ore == 5_000_00
    assert org.membership.fee_override_by_id == staff.id
    page = client.get(f"/staff/members/{org.id}?tab=fee&year=2026").text
    assert "Avtale med styret" in page


def test_email_tab_lists_messages_to_the_organisations_people(client, staff):
    from crm.mail.models import OutboxMessage

    org = make_organisation(invoice_email="faktura@alfa.no")
    make_contact(org, email="kari@alfa.no")
    for to, template in [("kari@alfa.no", "velkommen"), ("faktura@alfa.no", "faktura"), ("x@beta.no", "hemmelig")]:
        message = OutboxMessage(template=template, to_address=to, subject="Hemmelig emne", body_text="", body_html="")
        db.session.add(message)
    db.session.flush()
    page = client.get(f"/staff/members/{org.id}?tab=emails").text
    assert "<code>velkommen</code>" in page and "<code>faktura</code>" in page and "hemmelig" not in page
    assert "Hemmelig emne" not in page  # a coordinator sees which email it was, not its subject (can_read_body)
