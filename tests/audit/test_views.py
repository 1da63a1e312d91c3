import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEntry
from crm.audit.services import AuditFilter, audit_entries_query, record_audit
from crm.auth.models import Role
from crm.extensions import db
from tests.factories import make_staff, make_user
from tests.helpers import sign_in


def _entry(action: str, *, at: datetime | None = None, actor_label=None, target_type=None, target_id=None, **kw):
    entry = AuditEntry(
        action=action,
        at=at or datetime(2026, 6, 1, 12, 0, tzinfo=UTC),
        actor_label=actor_label,
        target_type=target_type,
        target_id=target_id,
        **kw,
    )
    db.session.add(entry)
    db.session.flush()
    return entry


def _rows(html: str) -> list[str]:
    """The action of every row shown (the row carries its code; the page shows only the label)."""
    return re.findall(r'<tr data-action="([^"]+)">', html)


@pytest.fixture
def admin_client(client):
    sign_in(client, make_staff(Role.ADMIN, email="ingrid@etiskhandel.example"))
    return client


@pytest.mark.parametrize(
    ("roles", "status"),
    [
        ({Role.ADMIN}, 200),
        ({Role.ADVISER}, 403),
        ({Role.COORDINATOR}, 403),
        ({Role.FINANCE}, 403),
        ({Role.ADVISER, Role.COORDINATOR, Role.FINANCE}, 403),
        ({Role.MEMBER}, 403),
    ],
)
def test_only_admins_see_the_audit_log(client, roles, status):
    sign_in(client, make_user(roles=roles))
    assert client.get("/staff/audit/").status_code == status


def test_anonymous_users_are_sent_to_the_login_page(client):
    response = client.get("/staff/audit/")
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]


def test_entries_are_listed_newest_first_with_oslo_times(admin_client):
    user = make_user(email="hanne@example.no")
    record_audit("auth.login.succeeded", actor=user, target=user, ip_address="10.0.0.7")
    _entry("auth.login.failed", at=datetime(2026, 3, 29, 1, 0, tzinfo=UTC), details={"email": "x@example.no"})
    html = admin_client.get("/staff/audit/").text
    assert _rows(html) == ["auth.login.succeeded", "auth.login.failed"]
    assert "hanne@example.no" in html and "10.0.0.7" in html
    assert "29.03.2026 03:00" in html  # summer time began at 01:00 UTC
    assert "Ingen bruker" in html  # a failed login has no actor
    assert f'href="/staff/audit/?target_type=users&amp;target_id={user.id}"' in html


def test_filter_by_action_prefix_escapes_wildcards(admin_client):
    _entry("auth.login.failed")
    _entry("auth.password.changed")
    _entry("mail.message.failed")
    _entry("authority.x")
    assert sorted(_rows(admin_client.get("/staff/audit/?action=auth.").text)) == [
        "auth.login.failed",
        "auth.password.changed",
    ]
    assert _rows(admin_client.get("/staff/audit/?action=%25failed").text) == []
    assert _rows(admin_client.get("/staff/audit/?action=auth_login").text) == []


def test_filter_by_actor_and_target(admin_client):
    _entry("a.one", actor_label="kari.nordmann@etiskhandel.example", target_type="users", target_id="7")
    _entry("a.two", actor_label="ola@etiskhandel.example", target_type="users", target_id="8")
    _entry("a.three", actor_label="kari.nordmann@etiskhandel.example", target_type="organisations", target_id="7")
    assert sorted(_rows(admin_client.get("/staff/audit/?actor=KARI").text)) == ["a.one", "a.three"]
    assert _rows(admin_client.get("/staff/audit/?target_type=users&target_id=7").text) == ["a.one"]
    assert sorted(_rows(admin_client.get("/staff/audit/?target_id=7").text)) == ["a.one", "a.three"]


def test_the_target_type_is_chosen_from_the_kinds_of_record_by_their_names(admin_client):
    """Staff see "Sak" in the log, not the table name "cases": the filter offers the names and keeps the choice."""
    _entry("a.case", target_type="cases", target_id="3")
    _entry("a.user", target_type="users", target_id="3")
    _entry("a.other", target_type="unregistered_things", target_id="3")
    html = admin_client.get("/staff/audit/?target_type=cases").text
    assert '<select class="form-select" id="target_type" name="target_type">' in html
    assert '<option value="">Alle</option>' in html
    assert '<option selected value="cases">Sak</option>' in html
    assert '<option value="users">Bruker</option>' in html
    assert _rows(html) == ["a.case"]
    # The "Target" link of an entry whose kind nobody registered still filters, and stays selected.
    html = admin_client.get("/staff/audit/?target_type=unregistered_things&target_id=3").text
    assert _rows(html) == ["a.other"]
    assert '<option selected value="unregistered_things">unregistered_things</option>' in html


def test_date_range_uses_whole_days_in_oslo(admin_client):
    # 31 May 22:30 UTC is 1 June 00:30 in Oslo; 1 June 22:30 UTC is already 2 June.
    _entry("d.before", at=datetime(2026, 5, 31, 21, 59, tzinfo=UTC))
    _entry("d.first", at=datetime(2026, 5, 31, 22, 30, tzinfo=UTC))
    _entry("d.last", at=datetime(2026, 6, 1, 21, 59, tzinfo=UTC))
    _entry("d.after", at=datetime(2026, 6, 1, 22, 30, tzinfo=UTC))
    html = admin_client.get("/staff/audit/?date_from=2026-06-01&date_to=2026-06-01").text
    assert _rows(html) == ["d.last", "d.first"]
    assert _rows(admin_client.get("/staff/audit/?date_from=2026-06-02").text) == ["d.after"]
    assert _rows(admin_client.get("/staff/audit/?date_to=2026-05-31").text) == ["d.before"]


def test_bad_filter_input_shows_a_message_next_to_the_field_and_is_ignored(admin_client):
    _entry("x.one", at=datetime(2026, 6, 3, 12, 0, tzinfo=UTC))
    html = admin_client.get("/staff/audit/?date_from=2026-06-02&date_to=2026-06-01").text
    assert "Sluttdatoen er før startdatoen." in html
    assert 'id="date_to-errors"' in html
    assert _rows(html) == ["x.one"]  # the valid start date filters, the bad end date does not
    html = admin_client.get("/staff/audit/?date_from=not-a-date").text
    assert 'id="date_from-errors"' in html
    assert _rows(html) == ["x.one"]


def test_empty_states(admin_client):
    assert "Revisjonsloggen er tom" in admin_client.get("/staff/audit/").text
    _entry("x.one")
    html = admin_client.get("/staff/audit/?action=nothing.").text
    assert "Ingen oppføringer passer med filteret" in html


def test_pages_keep_the_filter(app, admin_client, monkeypatch):
    monkeypatch.setitem(app.config, "PER_PAGE", 5)
    for i in range(12):
        _entry(f"auth.test.{i:02d}", at=datetime(2026, 6, 1, 12, i, tzinfo=UTC))
    _entry("mail.other")
    html = admin_client.get("/staff/audit/?action=auth.test").text
    assert _rows(html) == [f"auth.test.{i:02d}" for i in range(11, 6, -1)]
    assert "Viser 1–5 av 12" in html
    assert 'href="/staff/audit/?action=auth.test&amp;page=2" rel="next"' in html
    html = admin_client.get("/staff/audit/?action=auth.test&page=3").text
    assert _rows(html) == ["auth.test.01", "auth.test.00"]
    assert 'aria-current="page"><span class="visually-hidden">Side </span>3</a>' in html


def test_the_query_count_does_not_grow_with_the_entries(app, admin_client, count_queries):
    per_page = app.config["PER_PAGE"]
    for i in range(3):
        _entry(f"q.{i}", actor_label="a@example.no", target_type="users", target_id=str(i), details={"k": [1, 2]})
    with count_queries() as few:
        assert admin_client.get("/staff/audit/").status_code == 200
    for i in range(per_page * 2):
        _entry(f"q.more.{i}", actor_label="b@example.no", target_type="users", target_id=str(i), details={"k": i})
    with count_queries() as many:
        html = admin_client.get("/staff/audit/").text
    assert len(_rows(html)) == per_page
    assert many.count == few.count


def test_the_audit_log_is_in_the_admin_navigation(admin_client):
    html = admin_client.get("/staff/").text
    assert '<a class="nav-link" href="/staff/audit/">Revisjonslogg</a>' in html


def test_audit_entries_query_without_filters_lists_everything():
    _entry("z.one")
    _entry("z.two")
    assert len(db.session.scalars(audit_entries_query(AuditFilter())).all()) >= 2


def test_details_are_shown_with_labels_in_the_readers_language(admin_client):
    _entry("auth.login.failed", details={"email": "x@example.no", "reason": "bad_credentials"})
    _entry("auth.user.roles_changed", details={"before": ["adviser"], "after": ["adviser", "finance"]})
    html = admin_client.get("/staff/audit/").text
    assert "Begrunnelse:</span> feil e-post eller passord" in html
    assert "Etter:</span> Rådgiver, Økonomi" in html
    assert "bad_credentials" not in html


def test_actions_and_targets_are_named_in_the_readers_language_with_the_code_to_filter_by(admin_client):
    _entry("members.membership.status_changed", target_type="memberships", target_id="7")
    status_change = {"from": "new", "to": "in_progress"}
    _entry("advisory.case.status_changed", target_type="cases", target_id="3", details=status_change)
    html = admin_client.get("/staff/audit/").text
    assert "Medlemskapsstatus endret" in html
    assert ">Medlemskap #7</a>" in html and ">Sak #3</a>" in html
    assert "Fra:</span> Ny" in html and "Til:</span> Under arbeid" in html
    assert _rows(html) == ["advisory.case.status_changed", "members.membership.status_changed"]


def test_every_action_the_code_writes_has_a_label(app):
    """A new feature's audit actions must be named for the reader, not shown as codes."""
    import ast
    from pathlib import Path

    from crm.audit.details import _ACTION_LABELS

    written = set()
    for path in Path(app.root_path).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "record_audit"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                written.add(node.args[0].value)
    assert len(written) > 40
    assert sorted(written - set(_ACTION_LABELS)) == []


def test_unregistered_details_are_shown_as_stored_and_iso_dates_as_norwegian_dates():
    from crm.audit.details import audit_details

    entry = AuditEntry(action="other.thing", details={"colour": "blue", "due": "2026-12-31", "done": True, "n": None})
    assert audit_details(entry) == [("colour", "blue"), ("due", "31.12.2026"), ("done", "Ja")]


def _invoice(organisation, number: str):
    from crm.billing.models import Invoice, InvoiceKind

    invoice = Invoice(
        membership_id=organisation.membership.id,
        organisation_id=organisation.id,
        year=2026,
        kind=InvoiceKind.MEMBERSHIP,
        number=number,
        customer_name=organisation.name,
    )
    db.session.add(invoice)
    db.session.flush()
    return invoice


def test_records_are_named_and_details_read_as_words_and_money(admin_client):
    """ "Faktura EHN-00032" and the person's name, "Beløp: 5 000 kr", and no raw codes beside the labels."""
    from tests.factories import make_organisation

    organisation = make_organisation(name="Fjordkaffe AS")
    invoice = _invoice(organisation, "EHN-00032")
    person = make_user(email="hanne@example.no", full_name="Hanne Lunde")
    details = {"number": "EHN-00032", "amount_ore": 500000, "reason": "Feil beløp"}
    record_audit("billing.invoice.credited", actor=person, target=invoice, details=details)
    record_audit("auth.password.changed", actor=person, target=person)
    record_audit("members.organisation.updated", actor=person, target=organisation)
    _entry("billing.invoice.voided", target_type="invoices", target_id="999999")  # the record is gone
    html = admin_client.get("/staff/audit/").text
    assert ">Faktura EHN-00032</a>" in html
    assert ">Bruker Hanne Lunde</a>" in html
    assert ">Organisasjon Fjordkaffe AS</a>" in html
    assert ">Faktura #999999</a>" in html
    assert "Beløp:</span> 5\u00a0000\u00a0kr" in html and "Fakturanummer:</span> EHN-00032" in html
    assert "Faktura kreditert" in html
    assert "amount_ore" not in html and "500000" not in html
    assert "billing.invoice.credited" not in html.replace('data-action="billing.invoice.credited"', "")


def test_naming_the_records_keeps_the_query_count_constant(app, admin_client, count_queries):
    from tests.factories import make_organisation

    per_page = app.config["PER_PAGE"]

    def entries(n):
        for _ in range(n):
            organisation = make_organisation()
            record_audit("members.organisation.updated", actor=None, target=organisation)
            record_audit("billing.invoice.voided", actor=None, target=_invoice(organisation, f"EHN-{organisation.id}"))
            record_audit("auth.password.changed", actor=None, target=make_user())

    entries(1)
    with count_queries() as few:
        assert admin_client.get("/staff/audit/").status_code == 200
    entries(per_page)
    with count_queries() as many:
        html = admin_client.get("/staff/audit/").text
    assert len(_rows(html)) == per_page and ">Faktura EHN-" in html
    assert many.count == few.count


def test_the_log_exports_to_csv_with_the_same_filter_and_the_export_is_audited(admin_client):
    from tests.factories import make_organisation

    invoice = _invoice(make_organisation(), "EHN-00032")
    record_audit("billing.invoice.credited", actor=None, target=invoice, details={"amount_ore": 500000})
    _entry("auth.login.failed", details={"email": "x@example.no", "reason": "bad_credentials"})
    html = admin_client.get("/staff/audit/?action=billing.").text
    assert 'href="/staff/audit/export.csv?action=billing."' in html
    response = admin_client.get("/staff/audit/export.csv?action=billing.")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="revisjonslogg.csv"'
    lines = response.data.decode("utf-8-sig").splitlines()
    assert lines[0] == "Tidspunkt;Utført av;Handling;Gjelder;Detaljer;IP-adresse"
    assert len(lines) == 2
    assert ";Faktura kreditert;Faktura EHN-00032;Beløp: 5\u00a0000\u00a0kr;" in lines[1]
    exported = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "audit.log.exported")).one()
    assert exported.details == {"format": "csv", "rows": 1, "action": "billing."}
    assert exported.actor_label == "ingrid@etiskhandel.example"


@pytest.mark.parametrize("roles", [{Role.ADVISER}, {Role.FINANCE}, {Role.MEMBER}])
def test_only_admins_export_the_audit_log(client, roles):
    sign_in(client, make_user(roles=roles))
    assert client.get("/staff/audit/export.csv").status_code == 403
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "audit.log.exported")) is None
