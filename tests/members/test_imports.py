import io

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.extensions import db
from crm.members.imports import confirm_import
from crm.members.models import Contact, ContactRole, ImportBatch, ImportStatus, Organisation, OrganisationKind
from tests.conftest import run_jobs
from tests.factories import make_contact, make_organisation, make_staff, make_user
from tests.helpers import login

CLEAN = (
    "organisasjonsnummer;navn;type;omsetning;kontaktperson;e-post;telefon;roller;bransjer\n"
    "974760673;Fjordmat AS;bedrift;12 000 000;Kari Nordmann;kari@fjordmat.no;22334455;hovedkontakt;Mat og drikke\n"
    "974760673;;;;Ola Faktura;ola@fjordmat.no;;fakturakontakt;\n"
    "988077917;Fjordby kommune;kommune;;Siri Innkjøp;siri@fjordby.kommune.no;+47 90 00 00 00;innkjøper, leder;\n"
)
BAD = (
    "orgnr;name;kind;contact_name;contact_email;contact_phone\n"
    "974760674;Feil Nummer AS;company;;;\n"
    "988077917;Ukjent Type;skole;;;\n"
    "923609016;Telefon AS;company;Per;per@telefon.no;123\n"
    "974760673;Duplikat AS;company;Dup;taken@example.no;\n"
)


def upload(client, content: bytes, filename: str):
    page = client.get("/staff/members/import")
    import re

    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/staff/members/import",
        data={"csrf_token": token, "file": (io.BytesIO(content), filename)},
        content_type="multipart/form-data",
    )


def latest_batch():
    db.session.expire_all()
    return db.session.scalars(select(ImportBatch).order_by(ImportBatch.id.desc())).first()


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def staff(client):
    user = make_staff(Role.COORDINATOR)
    login(client, user)
    return user


def test_clean_file_is_checked_then_imported_and_a_second_import_changes_nothing(app, client, staff):
    response = upload(client, CLEAN.encode("utf-8-sig"), "medlemmer.csv")
    assert response.status_code == 302
    batch = latest_batch()
    assert batch.status is ImportStatus.UPLOADED
    run_jobs(app)
    batch = latest_batch()
    assert batch.status is ImportStatus.CHECKED, batch.errors
    assert batch.summary == {"organisations_created": 2, "contacts_created": 3}
    assert count(Organisation) == 0  # the dry run wrote nothing
    page = client.get(f"/staff/members/import/{batch.id}").text
    assert "Filen er feilfri: 3 rader kan importeres." in page

    token = client.get(f"/staff/members/import/{batch.id}").text.split('name="csrf_token" type="hidden" value="')[1]
    response = client.post(f"/staff/members/import/{batch.id}/confirm", data={"csrf_token": token.split('"')[0]})
    assert response.status_code == 302
    run_jobs(app)
    batch = latest_batch()
    assert batch.status is ImportStatus.IMPORTED
    fjordmat = db.session.scalar(select(Organisation).where(Organisation.orgnr == "974760673"))
    assert fjordmat.annual_turnover_nok == 12_000_000 and [s.name for s in fjordmat.sectors] == ["Mat og drikke"]
    assert {c.email for c in fjordmat.contacts} == {"kari@fjordmat.no", "ola@fjordmat.no"}
    siri = db.session.scalar(select(Contact).where(Contact.email == "siri@fjordby.kommune.no"))
    assert siri.roles == {ContactRole.PURCHASER, ContactRole.MANAGER} and siri.phone == "+4790000000"
    assert siri.organisation.kind is OrganisationKind.MUNICIPALITY

    audit_before = count(AuditEntry)
    upload(client, CLEAN.encode("utf-8-sig"), "medlemmer.csv")
    run_jobs(app)
    again = latest_batch()
    assert again.status is ImportStatus.CHECKED and again.summary == {}
    confirm_import(again, actor=staff)
    db.session.commit()
    run_jobs(app)
    assert latest_batch().status is ImportStatus.IMPORTED
    assert count(Organisation) == 2 and count(Contact) == 3
    assert count(AuditEntry) == audit_before  # nothing changed, so nothing was audited


def test_file_with_bad_rows_is_refused_whole(app, client, staff):
    make_contact(make_organisation(name="Annen AS"), email="taken@example.no")
    before = count(Organisation)
    upload(client, BAD.encode(), "feil.csv")
    run_jobs(app)
    batch = latest_batch()
    assert batch.status is ImportStatus.REFUSED
    assert [(e["row"], e["field"]) for e in batch.errors] == [
        (2, "orgnr"),
        (3, "kind"),
        (4, "contact_phone"),
        (5, "contact_email"),
    ]
    assert count(Organisation) == before
    page = client.get(f"/staff/members/import/{batch.id}").text
    assert "Ikke et gyldig norsk organisasjonsnummer." in page
    with pytest.raises(Exception, match="Bare en fil"):
        confirm_import(batch, actor=staff)


def test_every_mistake_in_a_row_is_reported_under_the_files_own_column_names(app, client, staff):
    content = (
        "organisasjonsnummer;navn;type;ansatte;postnummer;kontaktperson;e-post;telefon;roller\n"
        "974760673;Fjordmat AS;firma;mange;50;Kari;kari@fjordmat.no;123;sjef\n"
    )
    upload(client, content.encode(), "feil.csv")
    run_jobs(app)
    batch = latest_batch()
    assert batch.status is ImportStatus.REFUSED
    assert [(e["row"], e["field"], e["column"]) for e in batch.errors] == [
        (2, "kind", "type"),
        (2, "employees", "ansatte"),
        (2, "postal_postcode", "postnummer"),
        (2, "contact_phone", "telefon"),
        (2, "contact_roles", "roller"),
    ]
    page = client.get(f"/staff/members/import/{batch.id}").text
    assert "<td>2</td><td>type</td><td>Ukjent virksomhetstype: firma.</td>" in page
    assert "Nye virksomheter" not in page  # no counts of what a refused file would have created


def test_xlsx_files_are_read(app, client, staff):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["orgnr", "name", "kind", "employees", "contact_name", "contact_email"])
    sheet.append([974760673, "Fjordmat AS", "company", 25, "Kari", "kari@fjordmat.no"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    upload(client, buffer.getvalue(), "medlemmer.xlsx")
    run_jobs(app)
    batch = latest_batch()
    assert batch.status is ImportStatus.CHECKED, batch.errors
    assert batch.summary == {"organisations_created": 1, "contacts_created": 1}


def test_unreadable_files_are_reported(app, client, staff):
    upload(client, b"just some text\nwithout the columns\n", "tull.csv")
    run_jobs(app)
    batch = latest_batch()
    assert batch.status is ImportStatus.REFUSED
    assert batch.errors[0]["row"] == 1
    response = upload(client, b"x", "virus.exe")
    assert response.status_code == 200
    assert "Last opp en CSV- eller XLSX-fil." in response.text


@pytest.mark.parametrize("role", [Role.MEMBER, Role.FINANCE])
def test_import_is_for_editors(client, role):
    login(client, make_user(roles={role}))
    assert client.get("/staff/members/import").status_code == 403


def test_the_upload_page_lists_the_words_the_kind_and_roles_columns_accept(client, staff):
    page = client.get("/staff/members/import").text
    for word in ("kommune", "fylkeskommune", "statlig virksomhet", "hovedkontakt", "fakturakontakt", "innkjøper"):
        assert word in page, word
