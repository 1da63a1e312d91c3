"""Export of the (filtered) member list to CSV and XLSX (written by ``crm.exports``, as every export is)."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from crm.audit.services import record_audit
from crm.auth.models import User
from crm.extensions import db
from crm.members.listing import MemberFilters, listed_organisations
from crm.members.models import Contact, ContactRole, Organisation


def _main_contact(organisation: Organisation) -> Contact | None:
    active = [c for c in organisation.contacts if c.is_active]
    return next((c for c in active if ContactRole.MAIN_CONTACT in c.roles), None)


def export_rows(filters: MemberFilters) -> tuple[list[str], list[list[Any]]]:
    """Every organisation matching ``filters`` as one row (a constant number of queries)."""
    stmt = listed_organisations(filters, selectinload(Organisation.contacts).selectinload(Contact.role_links))
    headers = [
        _("Name"), _("Organisation number"), _("Country code"), _("Kind"), _("Category"), _("Status"),
        _("Adviser"), _("Sectors"), _("Employees"), _("Inhabitants"), _("Annual turnover (NOK)"),
        _("Covered by the Transparency Act"), _("Contracting authority"), _("Member since"), _("Ends on"),
        _("Visiting address"), _("Postcode"), _("City"), _("Invoice email"), _("EHF address"),
        _("Main contact"), _("Main contact's email"),
    ]  # fmt: skip
    rows = []
    for org in db.session.scalars(stmt).unique():
        membership = org.membership
        main = _main_contact(org)
        rows.append(
            [
                org.name,
                org.orgnr or org.foreign_id,
                org.country,
                str(org.kind.label),
                membership.category.name,
                str(membership.status.label),
                membership.adviser.full_name if membership.adviser else None,
                ", ".join(s.name for s in org.sectors),
                org.employees,
                org.inhabitants,
                org.annual_turnover_nok,
                str(org.transparency_act_scope.label),
                _("Yes") if org.is_contracting_authority else _("No"),
                membership.start_on,
                membership.end_on,
                org.visiting_street,
                org.visiting_postcode,
                org.visiting_city,
                org.invoice_email,
                org.peppol_id,
                main.name if main else None,
                main.email if main else None,
            ]
        )
    return headers, rows


def record_export(filters: MemberFilters, *, fmt: str, count: int, actor: User) -> None:
    """Exports hold contact people's names and emails: audit who exported what."""
    record_audit(
        "members.list.exported",
        actor=actor,
        target_type="organisations",
        details={
            "format": fmt,
            "rows": count,
            "q": filters.q or None,
            "status": filters.status.value if filters.status else None,
            "kind": filters.kind.value if filters.kind else None,
            "category_id": filters.category_id,
            "adviser_id": filters.adviser_id,
            "sector_id": filters.sector_id,
        },
    )
