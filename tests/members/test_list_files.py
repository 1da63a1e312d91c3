"""Export and import as staff use them: from the member list's links and forms to the file or the result."""

import csv
import io
import re
from html import unescape

from openpyxl import load_workbook
from sqlalchemy import select

from crm.auth.models import Role
from crm.extensions import db
from crm.members.imports import progress_key
from crm.members.models import ImportBatch, ImportStatus, MembershipStatus, Organisation
from tests.conftest import redis, run_jobs
from tests.factories import make_contact, make_organisation, make_staff
from tests.helpers import login

S = MembershipStatus
CLEAN = (
    "organisasjonsnummer;navn;type;omsetning;kontaktperson;e-post;telefon;roller;bransjer\n"
    "974760673;Fjordmat AS;bedrift;12 000 000;Kari Nordmann;kari@fjordmat.no;22334455;hovedkontakt;Mat og drikke\n"
    "988077917;Fjordby kommune;kommune;;Siri Innkjøp;siri@fjordby.kommune.no;;innkjøper;\n"
)


def _link(page: str, label: str) -> str:
    match = re.search(rf'<a class="[^"]*" href="([^"]+)">{re.escape(label)}</a>', page)
    assert match, f"no link {label!r}"
    return unescape(match.group(1))


def _form_token(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def _batch() -> ImportBatch:
    db.session.expire_all()
    return db.session.scalars(select(ImportBatch).order_by(ImportBatch.id.desc())).first()


def test_the_export_links_download_the_filtered_list(client):
    make_contact(make_organisation(name="Aktiv Tekstil AS", status=S.ACTIVE), name="Kari Aktiv")
    make_organisation(name="Søker Mat AS", status=S.APPLIED)
    login(client, make_staff(Role.FINANCE))
    page = client.get("/staff/members/?status=active&sort=-name").text

    csv_url = _link(page, "Eksporter CSV")
    assert "status=active" in csv_url and "sort=-name" in csv_url
    response = client.get(csv_url)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert re.match(r'attachment; filename="medlemmer-\d{4}-\d{2}-\d{2}\.csv"', response.headers["Content-Disposition"])
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig")), delimiter=";"))
    names = [row for row in rows[1:] if row]
    assert len(names) == 1 and "Aktiv Tekstil AS" in names[0] and "Søker Mat AS" not in response.data.decode()

    response = client.get(_link(page, "Eksporter Excel"))
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(response.data)).active
    values = [cell for row in sheet.iter_rows(values_only=True) for cell in row]
    assert "Aktiv Tekstil AS" in values and "Søker Mat AS" not in values


def test_the_import_from_the_list_page_to_the_imported_result_with_progress(app, client):
    login(client, make_staff(Role.COORDINATOR))
    list_page = client.get("/staff/members/").text
    upload_url = _link(list_page, "Importer")
    upload_page = client.get(upload_url)
    assert upload_page.status_code == 200 and 'enctype="multipart/form-data"' in upload_page.text
    response = client.post(
        upload_url,
        data={"csrf_token": _form_token(upload_page.text), "file": (io.BytesIO(CLEAN.encode()), "medlemmer.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    status_url = response.headers["Location"]
    batch = _batch()

    # While the check waits for the worker, the page polls its progress.
    page = client.get(status_url).text
    progress_url = f"/staff/members/import/{batch.id}/progress"
    assert f'hx-get="{progress_url}"' in page and 'hx-trigger="every 2s"' in page
    # Part-way through (as the job reports it in Redis before its transaction is committed).
    redis().set(progress_key(batch.id), "1/2")
    partial = client.get(progress_url, headers={"HX-Request": "true"})
    assert "Arbeider: 1 av 2 rader." in partial.text and 'value="1"' in partial.text
    assert "HX-Refresh" not in partial.headers

    run_jobs(app)
    assert _batch().status is ImportStatus.CHECKED  # (also expires what the test's shared session holds)
    finished = client.get(progress_url, headers={"HX-Request": "true"})
    assert finished.headers["HX-Refresh"] == "true"  # htmx reloads the page to show the result
    page = client.get(status_url).text
    assert "Filen er feilfri: 2 rader kan importeres." in page
    assert db.session.scalar(select(Organisation).where(Organisation.orgnr == "974760673")) is None

    confirm_url = re.search(r'<form method="post" action="([^"]+/confirm)"', page).group(1)
    response = client.post(confirm_url, data={"csrf_token": _form_token(page)}, follow_redirects=True)
    assert "Importen har startet." in response.text
    run_jobs(app)
    assert _batch().status is ImportStatus.IMPORTED  # (also expires what the test's shared session holds)
    page = client.get(status_url).text
    assert "Filen er importert." in page
    assert db.session.scalar(select(Organisation.name).where(Organisation.orgnr == "974760673")) == "Fjordmat AS"
