import re

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.mail.models import OutboxMessage
from crm.members.fees import seed_fee_schedules
from crm.members.models import Contact, ContactRole, MembershipStatus, Organisation
from crm.members.services import ensure_categories, today
from tests.factories import make_contact, make_organisation
from tests.members import brreg_server as fake


@pytest.fixture
def categories():
    seed_fee_schedules(2026)
    seed_fee_schedules(today().year)
    categories = ensure_categories()
    db.session.commit()
    return categories


def form_data(client, categories, **overrides):
    page = client.get("/apply/")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    data = {
        "csrf_token": token,
        "orgnr": "974 760 673",
        "name": "Fjordmat AS",
        "category_id": categories["company"].id,
        "annual_turnover_nok": "12000000",
        "employees": "20",
        "postal_street": "Postboks 1",
        "postal_postcode": "5003",
        "postal_city": "Bergen",
        "main_name": "Kari Søker",
        "main_email": "kari@fjordmat.no",
        "main_phone": "22 33 44 55",
        "accepts_principles": "y",
    }
    data.update(overrides)
    return data


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_the_form_is_public(client):
    response = client.get("/apply/")
    assert response.status_code == 200
    assert "Søk om medlemskap" in response.text


def test_preview_shows_the_fee_and_stores_nothing(client, categories):
    response = client.post("/apply/", data=form_data(client, categories, preview="1"))
    assert response.status_code == 200
    assert "Kontingenten deres" in response.text
    assert "Omsetningstrinn" in response.text
    assert 'name="submit"' in response.text
    assert count(Organisation) == 0


def test_submit_creates_organisation_contacts_and_applied_membership_and_emails(client, categories):
    data = form_data(
        client, categories, submit="1", invoice_name="Ola Faktura", invoice_email_contact="ola@fjordmat.no"
    )
    response = client.post("/apply/", data=data)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/apply/thanks")
    org = db.session.scalar(select(Organisation).where(Organisation.orgnr == "974760673"))
    assert org.membership.status is MembershipStatus.APPLIED
    assert org.membership.principles_version == "2022"
    contacts = {c.email: c for c in org.contacts}
    assert contacts["kari@fjordmat.no"].roles == {ContactRole.MAIN_CONTACT}
    assert contacts["kari@fjordmat.no"].phone == "+4722334455"
    assert contacts["ola@fjordmat.no"].roles == {ContactRole.INVOICE_CONTACT}
    messages = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [m.template for m in messages] == ["members_application_receipt", "members_application_notice"]
    assert messages[0].to_address == "kari@fjordmat.no"
    assert messages[0].subject == "Vi har mottatt søknaden deres om medlemskap"
    assert messages[1].to_address == "medlem@etiskhandel.example"
    assert f"/staff/members/{org.id}" in messages[1].body_text
    assert "Takk for søknaden" in client.get("/apply/thanks").text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"orgnr": "974760674"}, "Ikke et gyldig norsk organisasjonsnummer."),
        ({"main_email": ""}, "Dette feltet er påkrevd."),
        ({"accepts_principles": ""}, "Dere må godta prinsipperklæringen."),
        ({"main_phone": "123"}, "Skriv et telefonnummer med 8 sifre"),
    ],
)
def test_bad_input_shows_field_errors_and_writes_nothing(client, categories, overrides, message):
    response = client.post("/apply/", data=form_data(client, categories, submit="1", **overrides))
    assert response.status_code == 200
    assert message in response.text
    assert count(Organisation) == 0 and count(Contact) == 0 and count(OutboxMessage) == 0


def test_duplicate_organisation_or_email_writes_nothing_and_names_no_one(client, categories):
    other = make_organisation(name="Hemmelig Bedrift AS")
    make_contact(other, email="kari@fjordmat.no", name="Hemmelig Person")
    db.session.commit()
    before = count(Organisation)
    response = client.post("/apply/", data=form_data(client, categories, submit="1"))
    assert response.status_code == 200
    assert "allerede registrert hos oss" in response.text
    assert "Hemmelig" not in response.text
    assert count(Organisation) == before and count(OutboxMessage) == 0
    response = client.post("/apply/", data=form_data(client, categories, submit="1", orgnr=other.orgnr))
    assert "allerede registrert hos oss" in response.text and "Hemmelig" not in response.text


def test_honeypot_pretends_success_and_stores_nothing(client, categories):
    response = client.post("/apply/", data=form_data(client, categories, submit="1", homepage="http://spam.example"))
    assert response.status_code == 302
    assert count(Organisation) == 0 and count(OutboxMessage) == 0


def test_previews_and_forms_with_field_errors_do_not_count_towards_the_limit(app, client, categories, monkeypatch):
    # The old test asserted that the third preview got a 429; the issue asks for previews to be free.
    monkeypatch.setitem(app.config, "APPLICATION_LIMIT_PER_ORGANISATION", "1 per hour")
    monkeypatch.setitem(app.config, "APPLICATION_LIMIT_PER_IP", "1 per hour")
    for _ in range(4):
        assert client.post("/apply/", data=form_data(client, categories, preview="1")).status_code == 200
        bad = form_data(client, categories, submit="1", main_phone="123")
        assert client.post("/apply/", data=bad).status_code == 200
    assert client.post("/apply/", data=form_data(client, categories, submit="1")).status_code == 302
    assert count(Organisation) == 1


def test_over_the_limit_the_form_comes_back_with_what_was_typed_and_when_to_try_again(
    app, client, categories, monkeypatch
):
    monkeypatch.setitem(app.config, "APPLICATION_LIMIT_PER_ORGANISATION", "1 per hour")
    assert client.post("/apply/", data=form_data(client, categories, submit="1")).status_code == 302
    again = form_data(client, categories, submit="1", name="Fjordmat Vest AS", main_email="per@fjordmat.no")
    response = client.post("/apply/", data=again)
    assert response.status_code == 429
    assert re.search(r"prøv igjen om (59|60) minutter", response.text)
    assert "Søknaden er ikke sendt ennå" in response.text
    assert "Feil 429" not in response.text and "per 1 hour" not in response.text
    assert 'value="Fjordmat Vest AS"' in response.text and 'value="per@fjordmat.no"' in response.text
    assert "Kontingenten deres" in response.text and 'name="submit"' in response.text  # ready to send later
    assert count(Organisation) == 1
    # A preview is still answered while the submissions wait.
    assert client.post("/apply/", data=form_data(client, categories, preview="1")).status_code == 200


def test_colleagues_behind_one_address_can_apply_for_their_own_organisations(app, client, categories, monkeypatch):
    monkeypatch.setitem(app.config, "APPLICATION_LIMIT_PER_ORGANISATION", "1 per hour")
    monkeypatch.setitem(app.config, "APPLICATION_LIMIT_PER_IP", "3 per hour")
    applicants = [
        ("974760673", "kari@fjordmat.no"),
        ("988077917", "ola@fjellbygg.no"),
        ("923609016", "eva@sjo.no"),
        ("912345602", "siv@lia.no"),
    ]
    statuses = []
    for orgnr, email in applicants:
        fields = {"orgnr": orgnr, "name": f"Firma {orgnr} AS", "main_email": email}
        assert client.post("/apply/", data=form_data(client, categories, preview="1", **fields)).status_code == 200
        statuses.append(client.post("/apply/", data=form_data(client, categories, submit="1", **fields)).status_code)
    assert statuses == [302, 302, 302, 429], "each colleague applies; the address as a whole has a looser cap"
    assert count(Organisation) == 3


def test_register_lookup_fills_the_application(client, categories, fake_brreg):
    page = client.get(f"/apply/?lookup={fake.MUNICIPALITY}").text
    assert 'value="FJORDBY KOMMUNE"' in page
    assert f'<option selected value="{categories["municipality"].id}">' in page
    page = client.get(f"/apply/?lookup={fake.BROKEN}").text
    assert "Fyll inn opplysningene selv" in page


def test_the_application_warns_of_bankruptcy_and_offers_a_sub_units_main_unit(client, categories, fake_brreg):
    page = client.get(f"/apply/?lookup={fake.BANKRUPT}").text
    assert "<strong>Brønnøysundregistrene oppgir at KONKURSBO KAFFE AS er konkurs.</strong>" in page
    page = client.get(f"/apply/?lookup={fake.SUB_UNIT}").text
    assert "er en underenhet" in page
    assert f'href="/apply/?lookup={fake.FOUND}">Fyll ut fra hovedenheten (974 760 673)</a>' in page


def test_the_front_page_links_the_public_to_the_application_form(client):
    page = client.get("/").text
    assert '<a class="btn btn-outline-primary" href="/apply/">Søk om medlemskap</a>' in page
    assert client.get("/apply/").status_code == 200


# --- sent twice ---------------------------------------------------------------------------------------------


def _submission_token(client) -> str:
    return re.search(r'name="submission" type="hidden" value="([^"]+)"', client.get("/apply/").text).group(1)


def test_an_application_sent_twice_registers_one_and_both_get_the_thanks_page(client, categories):
    data = form_data(client, categories, submit="1", submission=_submission_token(client))
    first = client.post("/apply/", data=data)
    second = client.post("/apply/", data=data)
    assert first.status_code == second.status_code == 302
    assert first.location == second.location == "/apply/thanks"
    assert count(Organisation) == 1 and count(Contact) == 1
    assert count(OutboxMessage) == 2  # one receipt and one staff notice, not two of each


def test_an_application_sent_twice_at_the_same_moment_registers_one_on_postgresql():
    """Two requests of one browser (a double click) in two threads on their own database connections: the
    second waits at the unique submission token for the first's commit, then answers with the same page."""
    import threading

    from sqlalchemy import create_engine, make_url, text

    from crm.config import TestingConfig
    from tests.apps import other_app

    url = make_url(TestingConfig.SQLALCHEMY_DATABASE_URI)
    if url.get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL only: SQLite serialises writers (BEGIN IMMEDIATE)")
    name = f"{url.database}_twice"
    server = create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        settings = {
            "SQLALCHEMY_DATABASE_URI": url.set(database=name).render_as_string(hide_password=False),
            "APPLICATION_LIMIT_PER_IP": "100 per hour",
            "PROPAGATE_EXCEPTIONS": False,  # a failing request answers 500, as in production
        }
        with other_app(**settings) as app:
            with app.app_context():
                db.create_all()
                seed_fee_schedules(today().year)
                ensure_categories()
                db.session.commit()
            for orgnr in ("974760673", "988077917", "923609016"):
                browser = app.test_client()
                with app.app_context():
                    categories = ensure_categories()
                    data = form_data(browser, categories, submit="1", orgnr=orgnr, main_email=f"kari@{orgnr}.no")
                    data["submission"] = _submission_token(browser)
                second_tab = app.test_client()
                session_cookie = browser.get_cookie("crm_session", domain="crm.test")
                second_tab.set_cookie("crm_session", session_cookie.value, domain="crm.test")
                start = threading.Barrier(2)
                answers: dict[int, int] = {}

                def send(index, tab):
                    start.wait()
                    answers[index] = tab.post("/apply/", data=data).status_code

                threads = [threading.Thread(target=send, args=(i, tab)) for i, tab in enumerate((browser, second_tab))]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=60)
                assert answers == {0: 302, 1: 302}
                with app.app_context():
                    registered = db.session.scalar(
                        select(func.count()).select_from(Organisation).where(Organisation.orgnr == orgnr)
                    )
                    assert registered == 1
                    db.session.remove()
            with app.app_context():
                db.engine.dispose()
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()
