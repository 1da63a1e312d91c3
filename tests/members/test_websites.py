"""Stored web addresses: only http(s) is accepted (by the service, whatever the caller) and only http(s) is
rendered as a link, so a ``javascript:`` website can neither be saved nor clicked."""

import io
import re

import pytest
from markupsafe import Markup
from sqlalchemy import select, update

from crm.auth.models import Role
from crm.errors import DomainError
from crm.extensions import db
from crm.members.models import ContactRole, ImportBatch, ImportStatus, MembershipStatus, Organisation
from crm.members.services import create_organisation, update_organisation
from crm.web_urls import clean_web_url, is_web_url, web_link
from tests.conftest import run_jobs
from tests.factories import make_contact, make_organisation, make_staff, make_user
from tests.helpers import csrf_token, login

HOSTILE = (
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "ftp://files.example.no",
    "https://",
    "https:///path-only",
    "http://exa mple.no",
    "//evil.example/x",
    "https://" + "a" * 250 + ".no",
)


@pytest.mark.parametrize("value", HOSTILE)
def test_the_service_refuses_anything_but_an_http_address(value):
    organisation = make_organisation(website="https://før.example")
    db.session.commit()
    with pytest.raises(DomainError) as refused:
        update_organisation(organisation, {"website": value}, actor=None)
    assert refused.value.field == "website"
    assert "https://" in refused.value.message
    db.session.rollback()
    assert db.session.get(Organisation, organisation.id).website == "https://før.example"


def test_creating_an_organisation_checks_its_website_too():
    with pytest.raises(DomainError) as refused:
        create_organisation({"name": "Skript AS", "orgnr": "974760673", "website": "javascript:alert(1)"}, actor=None)
    assert refused.value.field == "website"


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("https://fjordmat.no", "https://fjordmat.no"),
        ("  http://fjordmat.no/om-oss?a=1#b ", "http://fjordmat.no/om-oss?a=1#b"),
        ("HTTPS://Fjordmat.no", "https://Fjordmat.no"),
        ("www.fjordmat.no", "https://www.fjordmat.no"),  # as people type it and registers hold it
        ("fjordmat.no/om-oss", "https://fjordmat.no/om-oss"),
        ("", None),
        ("   ", None),
    ],
)
def test_the_service_keeps_http_addresses(value, stored):
    organisation = make_organisation()
    update_organisation(organisation, {"website": value}, actor=None)
    assert organisation.website == stored
    assert clean_web_url(value, field="website") == stored


def test_a_member_cannot_save_a_javascript_website_in_the_portal(client):
    organisation = make_organisation(name="Portal AS", status=MembershipStatus.ACTIVE, website="https://portal.example")
    user = make_user(roles={Role.MEMBER})
    make_contact(organisation, roles=[ContactRole.MAIN_CONTACT], user_id=user.id)
    db.session.commit()
    login(client, user)
    response = client.post(
        "/portal/organisation/edit",
        data={"csrf_token": csrf_token(client), "website": "javascript:alert(document.domain)"},
    )
    assert response.status_code == 200  # the form again, with the message on its field
    assert "Skriv en nettadresse som begynner med https:// eller http://." in response.text
    db.session.expire_all()
    assert db.session.get(Organisation, organisation.id).website == "https://portal.example"


def test_a_stored_javascript_website_is_shown_as_text_not_a_link(client):
    """Rows saved before the check (or written around the service) are still never linked."""
    organisation = make_organisation(name="Gammel AS", status=MembershipStatus.ACTIVE)
    db.session.flush()
    db.session.execute(
        update(Organisation).where(Organisation.id == organisation.id).values(website="javascript:alert(1)")
    )
    db.session.commit()
    login(client, make_staff(Role.ADVISER))
    page = client.get(f"/staff/members/{organisation.id}").text
    assert "javascript:alert(1)" in page
    assert not re.search(r"href=\"\s*javascript:", page, re.IGNORECASE)


def test_an_http_website_is_a_link_on_the_organisation_page(client):
    organisation = make_organisation(name="Lenke AS", status=MembershipStatus.ACTIVE, website="https://lenke.example")
    db.session.commit()
    login(client, make_staff(Role.ADVISER))
    page = client.get(f"/staff/members/{organisation.id}").text
    assert '<a href="https://lenke.example" rel="noopener noreferrer">https://lenke.example</a>' in page


def test_an_import_with_a_javascript_website_is_refused_and_stores_nothing(app, client):
    login(client, make_staff(Role.COORDINATOR))
    page = client.get("/staff/members/import").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    content = "organisasjonsnummer;navn;type;nettsted\n974760673;Skript AS;bedrift;javascript:alert(1)\n"
    client.post(
        "/staff/members/import",
        data={"csrf_token": token, "file": (io.BytesIO(content.encode()), "skript.csv")},
        content_type="multipart/form-data",
    )
    run_jobs(app)
    db.session.expire_all()
    batch = db.session.scalars(select(ImportBatch).order_by(ImportBatch.id.desc())).first()
    assert batch.status is ImportStatus.REFUSED
    assert [(e["row"], e["field"]) for e in batch.errors] == [(2, "website")]
    assert db.session.scalar(select(Organisation).where(Organisation.orgnr == "974760673")) is None


@pytest.mark.parametrize("value", HOSTILE)
def test_the_link_filter_links_only_http_addresses(app, value):
    assert not is_web_url(value.strip())
    with app.test_request_context():
        rendered = web_link(value)
        assert "<a" not in rendered and "href" not in rendered
        assert web_link(value, "Betal") == Markup("")


def test_the_link_filter_escapes_what_it_links(app):
    rendered = web_link('https://x.example/?q="><script>', "Betal & se")
    assert rendered == Markup(
        '<a href="https://x.example/?q=&#34;&gt;&lt;script&gt;" rel="noopener noreferrer">Betal &amp; se</a>'
    )
    assert web_link(None) == Markup("") and web_link("") == Markup("")


def test_stripe_links_are_only_rendered_for_http_addresses(app):
    """The invoice templates link Stripe's stored addresses through the same filter."""
    template = app.jinja_env.from_string(
        '{{ url|web_link("Betal", rel="noopener") }}|{% if url is web_url %}lenke{% else %}ingen{% endif %}'
    )
    assert template.render(url="https://pay.stripe.com/i/1") == (
        '<a href="https://pay.stripe.com/i/1" rel="noopener">Betal</a>|lenke'
    )
    assert template.render(url="javascript:alert(1)") == "|ingen"
