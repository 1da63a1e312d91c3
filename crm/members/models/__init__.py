"""Member register models, split by topic; import from here."""

from crm.members.models.fees import FeeRuleType, FeeSchedule
from crm.members.models.imports import ImportBatch, ImportStatus
from crm.members.models.memberships import (
    Membership,
    MembershipCategory,
    MembershipEvent,
    MembershipStatus,
)
from crm.members.models.organisations import (
    Contact,
    ContactRole,
    ContactRoleAssignment,
    Organisation,
    OrganisationKind,
    Sector,
    TransparencyScope,
    format_orgnr,
    format_phone,
    organisation_sectors,
)

__all__ = [
    "Contact",
    "ContactRole",
    "ContactRoleAssignment",
    "FeeRuleType",
    "FeeSchedule",
    "ImportBatch",
    "ImportStatus",
    "Membership",
    "MembershipCategory",
    "MembershipEvent",
    "MembershipStatus",
    "Organisation",
    "OrganisationKind",
    "Sector",
    "TransparencyScope",
    "format_orgnr",
    "format_phone",
    "organisation_sectors",
]
