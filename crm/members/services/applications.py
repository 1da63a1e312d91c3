"""Membership applications from the public form."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _

from crm.audit.services import record_audit
from crm.errors import DomainError
from crm.mail.services import queue_email
from crm.members.models import ContactRole, MembershipCategory, MembershipStatus, Organisation, OrganisationKind
from crm.members.services.common import DuplicateContact, DuplicateOrganisation, today
from crm.members.services.contacts import add_contact
from crm.members.services.memberships import change_membership_status, update_membership_details
from crm.members.services.organisations import create_organisation

logger = logging.getLogger(__name__)


@dataclass
class ApplicationData:
    orgnr: str
    name: str
    kind: OrganisationKind
    category: MembershipCategory
    annual_turnover_nok: int | None
    employees: int | None
    inhabitants: int | None
    postal_street: str | None
    postal_postcode: str | None
    postal_city: str | None
    invoice_email: str | None
    main_name: str
    main_title: str | None
    main_email: str
    main_phone: str | None
    invoice_name: str | None
    invoice_email_contact: str | None
    accepts_principles: bool


def submit_application(data: ApplicationData, *, ip_address: str | None = None) -> Organisation:
    """Register the applicant organisation, its contacts and an ``applied`` membership, and queue a receipt
    to the main contact and a notice to the membership staff (all in the caller's transaction).

    Raises ``DomainError`` with the field to blame (duplicates are reported without naming other records).
    """
    if not data.accepts_principles:
        raise DomainError(_("You must accept the declaration of principles."), field="accepts_principles")
    on_date = today()
    try:
        organisation = create_organisation(
            {
                "orgnr": data.orgnr,
                "name": data.name,
                "kind": data.kind,
                "annual_turnover_nok": data.annual_turnover_nok,
                "employees": data.employees,
                "inhabitants": data.inhabitants,
                "postal_street": data.postal_street,
                "postal_postcode": data.postal_postcode,
                "postal_city": data.postal_city,
                "invoice_email": data.invoice_email,
                "is_contracting_authority": data.kind
                in (OrganisationKind.MUNICIPALITY, OrganisationKind.COUNTY, OrganisationKind.STATE_BODY),
            },
            actor=None,
            category=data.category,
        )
    except DuplicateOrganisation:
        raise DomainError(
            _("This organisation is already registered with us. Contact us and we will help you."), field="orgnr"
        ) from None
    same_person = not data.invoice_email_contact or (
        data.invoice_email_contact.strip().lower() == data.main_email.strip().lower()
    )
    main_roles = [ContactRole.MAIN_CONTACT] + ([ContactRole.INVOICE_CONTACT] if same_person else [])
    _add_applicant_contact(
        organisation,
        {"name": data.main_name, "title": data.main_title, "email": data.main_email, "phone": data.main_phone},
        main_roles,
        "main_email",
    )
    if not same_person:
        _add_applicant_contact(
            organisation,
            {"name": data.invoice_name or data.invoice_email_contact, "email": data.invoice_email_contact},
            [ContactRole.INVOICE_CONTACT],
            "invoice_email_contact",
        )
    membership = organisation.membership
    update_membership_details(
        membership,
        actor=None,
        principles_version=current_app.config["PRINCIPLES_VERSION"],
        principles_accepted_on=on_date,
    )
    change_membership_status(
        membership, MembershipStatus.APPLIED, actor=None, reason=_("Application from the web form"), on_date=on_date
    )
    record_audit("members.application.submitted", actor=None, target=organisation, ip_address=ip_address)
    context = {"organisation": organisation, "membership": membership, "main_name": data.main_name}
    queue_email(
        to=data.main_email.strip().lower(),
        to_name=data.main_name,
        template="members_application_receipt",
        context=context,
    )
    queue_email(to=current_app.config["MEMBERSHIP_STAFF_EMAIL"], template="members_application_notice", context=context)
    logger.info("Membership application from organisation %s", organisation.id)
    return organisation


def _add_applicant_contact(organisation: Organisation, values: dict, roles: list[ContactRole], field: str) -> None:
    try:
        add_contact(organisation, values, roles=roles, actor=None)
    except DuplicateContact:
        raise DomainError(
            _("This email address is already registered with us. Contact us and we will help you."), field=field
        ) from None
    except DomainError as exc:
        # Point contact field errors (phone, name) at the applicant form's own fields.
        prefix = "main" if field == "main_email" else "invoice"
        raise DomainError(exc.message, field=f"{prefix}_{exc.field}" if exc.field else field) from None
