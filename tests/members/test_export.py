import csv
import io
from datetime import date

from openpyxl import load_workbook
from sqlalchemy import select

from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.extensions import db
from crm.members.models import ContactRole, MembershipStatus
from tests.factories import make_contact, make_organisation, make_staff, make_user
from tests.helpers import csrf_token, login


def _data(client):
    org = make_organisation(name="Fjordmat AS", orgnr="974760673", status=MembershipStatus.ACTIVE, employees=12)
    org.membership.start_on = date(2025, 3, 1)
    make_contact(org, name="Kari Hoved", email="kari@fjordmat.no", roles=[ContactRole.MAIN_CONTACT])
    make_organisation(name='=HYPERLINK("http://evil")', status=MembershipStatus.APPLIED)
    login(client, make_staff(Role.ADVISER))


def test_csv_export_of_the_filtered_list(client):
    _data(client)
    response = client.get("/staff/members/export.csv?status=active")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0][:2] == ["Navn", "Organisasjonsnummer"]
    assert len(rows) == 2
    assert rows[1][0] == "Fjordmat AS" and rows[1][1] == "974760673"
    assert "01.03.2025" in rows[1] and "Kari Hoved" in rows[1] and "kari@fjordmat.no" in rows[1]
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "members.list.exported")).one()
    assert entry.details["rows"] == 1 and entry.details["status"] == "active"


def test_xlsx_export_escapes_formulas(client):
    _data(client)
    response = client.get("/staff/members/export.xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data)).active
    names = [row[0].value for row in sheet.iter_rows(min_row=2)]
    assert "Fjordmat AS" in names
    assert '\'=HYPERLINK("http://evil")' in names
    assert sheet["A1"].value == "Navn"


def test_export_is_staff_only(client):
    login(client, make_user(roles={Role.MEMBER}))
    assert client.get("/staff/members/export.csv").status_code == 403
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    login(client, make_staff(Role.FINANCE))
    assert client.get("/staff/members/export.pdf").status_code == 404
