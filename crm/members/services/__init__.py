"""Use cases of the member register. Services flush, never commit; the acting user is a parameter."""

from crm.members.services.applications import ApplicationData, submit_application
from crm.members.services.common import (
    DuplicateContact,
    DuplicateOrganisation,
    add_years,
    normalise_email,
    normalise_orgnr,
    normalise_phone,
    today,
)
from crm.members.services.contacts import (
    CONTACT_FIELDS,
    add_contact,
    deactivate_contact,
    find_active_contact_by_email,
    reactivate_contact,
    update_contact,
)
from crm.members.services.memberships import (
    ALLOWED_TRANSITIONS,
    allowed_transitions,
    assign_adviser,
    change_membership_status,
    set_fee_override,
    status_counts,
    update_membership_details,
)
from crm.members.services.organisations import (
    DEFAULT_CATEGORIES,
    ORGANISATION_FIELDS,
    category_for_kind,
    create_organisation,
    ensure_categories,
    find_organisation_by_orgnr,
    get_or_create_sectors,
    organisation_audit_trail,
    update_organisation,
)
from crm.members.services.portal import (
    deactivate_contact_by_member,
    portal_contact_for,
    update_contact_by_member,
    update_profile_by_member,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "CONTACT_FIELDS",
    "DEFAULT_CATEGORIES",
    "ORGANISATION_FIELDS",
    "ApplicationData",
    "DuplicateContact",
    "DuplicateOrganisation",
    "add_contact",
    "add_years",
    "allowed_transitions",
    "assign_adviser",
    "category_for_kind",
    "change_membership_status",
    "create_organisation",
    "deactivate_contact",
    "deactivate_contact_by_member",
    "ensure_categories",
    "find_active_contact_by_email",
    "find_organisation_by_orgnr",
    "get_or_create_sectors",
    "normalise_email",
    "normalise_orgnr",
    "normalise_phone",
    "organisation_audit_trail",
    "portal_contact_for",
    "reactivate_contact",
    "set_fee_override",
    "status_counts",
    "submit_application",
    "today",
    "update_contact",
    "update_contact_by_member",
    "update_membership_details",
    "update_organisation",
    "update_profile_by_member",
]
