"""Organisations, their categories and sectors."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import String, and_, func, or_, select

from crm.audit.models import AuditEntry
from crm.audit.services import record_audit
from crm.auth.models import User
from crm.errors import DomainError, check_version
from crm.extensions import db
from crm.mail.models import OutboxMessage
from crm.members.models import (
    Contact,
    Membership,
    MembershipCategory,
    MembershipEvent,
    MembershipStatus,
    Organisation,
    OrganisationKind,
    Sector,
    TransparencyScope,
)
from crm.members.services.common import (
    DuplicateOrganisation,
    clean_postcode,
    clean_text_values,
    normalise_email,
    normalise_orgnr,
    today,
)
from crm.web_urls import clean_web_url

logger = logging.getLogger(__name__)


DEFAULT_CATEGORIES = (
    ("company", "Bedrift", 10),
    ("organisation", "Organisasjon", 20),
    ("municipality", "Kommune", 30),
    ("county", "Fylkeskommune", 40),
    ("state_body", "Statlig virksomhet", 50),
)

ORGANISATION_FIELDS = frozenset(
    {
        "name",
        "orgnr",
        "country",
        "foreign_id",
        "kind",
        "is_contracting_authority",
        "employees",
        "inhabitants",
        "annual_turnover_nok",
        "postal_street",
        "postal_postcode",
        "postal_city",
        "postal_country",
        "visiting_street",
        "visiting_postcode",
        "visiting_city",
        "visiting_country",
        "website",
        "parent_id",
        "transparency_act_scope",
        "invoice_email",
        "buyer_reference_required",
        "default_buyer_reference",
        "ehf_receiver",
        "notes",
    }
)
# --- categories and sectors ------------------------------------------------------------------------------


def ensure_categories() -> dict[str, MembershipCategory]:
    """Create the default membership categories that are missing; return all by code."""
    existing = {c.code: c for c in db.session.scalars(select(MembershipCategory))}
    for code, name, order in DEFAULT_CATEGORIES:
        if code not in existing:
            existing[code] = MembershipCategory(code=code, name=name, sort_order=order)
            db.session.add(existing[code])
    db.session.flush()
    return existing


def category_for_kind(kind: OrganisationKind) -> MembershipCategory:
    return ensure_categories()[kind.value]


def get_or_create_sectors(names: Iterable[str]) -> list[Sector]:
    """The sectors with these names, creating unknown ones."""
    wanted = {name.strip() for name in names if name and name.strip()}
    if not wanted:
        return []
    found = {s.name: s for s in db.session.scalars(select(Sector).where(Sector.name.in_(wanted)))}
    for name in wanted - found.keys():
        found[name] = Sector(name=name)
        db.session.add(found[name])
    db.session.flush()
    return sorted(found.values(), key=lambda s: s.name)


# --- organisations ---------------------------------------------------------------------------------------


def find_organisation_by_orgnr(orgnr: str) -> Organisation | None:
    return db.session.scalar(select(Organisation).where(Organisation.orgnr == orgnr))


def _clean_organisation_values(values: Mapping[str, Any], organisation: Organisation | None) -> dict[str, Any]:
    parent: dict[str, Any] = {}
    if "parent_orgnr" in values:  # forms name the parent by its organisation number
        parent["parent_id"] = _parent_id_from_orgnr(values["parent_orgnr"])
    clean = clean_text_values(values, ORGANISATION_FIELDS, missing_name=_("The organisation needs a name."))
    clean.update(parent)
    if "country" in clean:
        clean["country"] = (clean["country"] or "NO").upper()
    country = clean.get("country") or (organisation.country if organisation else "NO")
    if clean.get("orgnr"):
        clean["orgnr"] = normalise_orgnr(clean["orgnr"])
    orgnr = clean.get("orgnr", organisation.orgnr if organisation else None)
    foreign_id = clean.get("foreign_id", organisation.foreign_id if organisation else None)
    if country == "NO" and not orgnr:
        raise DomainError(_("A Norwegian organisation needs its organisation number."), field="orgnr")
    if country != "NO" and not orgnr and not foreign_id:
        raise DomainError(_("A foreign organisation needs its national registration number."), field="foreign_id")
    for key, enum_cls in (("kind", OrganisationKind), ("transparency_act_scope", TransparencyScope)):
        if isinstance(clean.get(key), str):
            clean[key] = enum_cls(clean[key])
    for prefix in ("postal", "visiting"):
        if f"{prefix}_country" in clean:
            clean[f"{prefix}_country"] = (clean[f"{prefix}_country"] or "NO").upper()
        clean_postcode(clean, prefix)
    if "invoice_email" in clean:
        clean["invoice_email"] = normalise_email(clean["invoice_email"])
    if "website" in clean:
        clean["website"] = clean_web_url(clean["website"], field="website")
    for key in ("employees", "inhabitants", "annual_turnover_nok"):
        if clean.get(key) is not None and int(clean[key]) < 0:
            raise DomainError(_("The number cannot be negative."), field=key)
    return clean


def _parent_id_from_orgnr(value: str | None) -> int | None:
    if not value or not str(value).strip():
        return None
    try:
        orgnr = normalise_orgnr(str(value))
    except DomainError:
        raise DomainError(_("Not a valid Norwegian organisation number."), field="parent_orgnr") from None
    parent = find_organisation_by_orgnr(orgnr)
    if parent is None:
        raise DomainError(_("No organisation in the register has this number."), field="parent_orgnr")
    return parent.id


def _check_unique_organisation(clean: dict[str, Any], organisation: Organisation | None) -> None:
    own_id = organisation.id if organisation else None
    if clean.get("orgnr"):
        existing = find_organisation_by_orgnr(clean["orgnr"])
        if existing and existing.id != own_id:
            raise DuplicateOrganisation(
                _("%(name)s already has this organisation number.", name=existing.name), existing_id=existing.id
            )
    if clean.get("foreign_id"):
        country = clean.get("country") or (organisation.country if organisation else "NO")
        existing = db.session.scalar(
            select(Organisation).where(Organisation.country == country, Organisation.foreign_id == clean["foreign_id"])
        )
        if existing and existing.id != own_id:
            raise DuplicateOrganisation(
                _("%(name)s already has this registration number.", name=existing.name),
                existing_id=existing.id,
                field="foreign_id",
            )


def _check_parent(organisation: Organisation | None, parent_id: int | None) -> None:
    if parent_id is None:
        return
    parent = db.session.get(Organisation, parent_id)
    if parent is None:
        raise DomainError(_("The parent organisation does not exist."), field="parent_id")
    # Walk up the chain: an organisation cannot be its own ancestor.
    seen: set[int] = set()
    while parent is not None and parent.id not in seen:
        if organisation is not None and parent.id == organisation.id:
            raise DomainError(_("An organisation cannot be its own parent."), field="parent_id")
        seen.add(parent.id)
        parent = parent.parent


def create_organisation(
    values: Mapping[str, Any],
    *,
    actor: User | None,
    sectors: Iterable[str] = (),
    category: MembershipCategory | None = None,
    on_date: date | None = None,
) -> Organisation:
    """Register an organisation with a ``prospect`` membership in ``category`` (default: by kind), first
    recorded on ``on_date`` (default today).

    Unknown keys in ``values`` are ignored. Raises ``DomainError`` for invalid input and
    ``DuplicateOrganisation`` (with ``existing_id``) when the organisation number is taken.
    """
    clean = _clean_organisation_values(values, None)
    if "kind" not in clean or clean["kind"] is None:
        raise DomainError(_("Choose what kind of organisation this is."), field="kind")
    _check_unique_organisation(clean, None)
    _check_parent(None, clean.get("parent_id"))
    organisation = Organisation(**clean)
    organisation.sectors = get_or_create_sectors(sectors)
    db.session.add(organisation)
    db.session.flush()
    membership = Membership(
        organisation=organisation,
        status=MembershipStatus.PROSPECT,
        category=category or category_for_kind(organisation.kind),
    )
    membership.events.append(
        MembershipEvent(from_status=None, to_status=MembershipStatus.PROSPECT, actor=actor, on_date=on_date or today())
    )
    db.session.add(membership)
    db.session.flush()
    record_audit(
        "members.organisation.created",
        actor=actor,
        target=organisation,
        details={"name": organisation.name, "orgnr": organisation.orgnr},
    )
    logger.info("Organisation %s created by %s", organisation.id, getattr(actor, "email", None))
    return organisation


def update_organisation(
    organisation: Organisation,
    values: Mapping[str, Any],
    *,
    actor: User | None,
    sectors: Iterable[str] | None = None,
    version: int | None = None,
) -> list[str]:
    """Change the given fields (unknown keys ignored); return the names of the fields that changed.

    ``version`` is the organisation's version the edit form was opened with: ``StaleEdit`` if it was saved since.
    """
    check_version(organisation, version)
    clean = _clean_organisation_values(values, organisation)
    _check_unique_organisation(clean, organisation)
    if "parent_id" in clean:
        _check_parent(organisation, clean["parent_id"])
    changed = [key for key, value in clean.items() if getattr(organisation, key) != value]
    for key in changed:
        setattr(organisation, key, clean[key])
    if sectors is not None:
        new_sectors = get_or_create_sectors(sectors)
        if {s.id for s in new_sectors} != {s.id for s in organisation.sectors}:
            organisation.sectors = new_sectors
            changed.append("sectors")
    db.session.flush()
    if changed:
        record_audit("members.organisation.updated", actor=actor, target=organisation, details={"fields": changed})
    return changed


def organisation_audit_trail(organisation: Organisation, *, limit: int = 100) -> list[AuditEntry]:
    """The newest audit entries about the organisation, its membership and its contacts: what changed, so
    staff reading its pages (``*.viewed``, in the full audit log) do not bury the changes."""
    contact_ids = select(func.cast(Contact.id, String)).where(Contact.organisation_id == organisation.id)
    stmt = (
        select(AuditEntry)
        .where(
            or_(
                and_(AuditEntry.target_type == "organisations", AuditEntry.target_id == str(organisation.id)),
                and_(AuditEntry.target_type == "contacts", AuditEntry.target_id.in_(contact_ids)),
            ),
            AuditEntry.action.not_like("%.viewed"),
        )
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(stmt))


def record_email_history_viewed(organisation: Organisation, *, actor: User, ip_address: str | None = None) -> None:
    """Reading who was sent what is reading people's data: audit logged like a person's email history."""
    record_audit("members.emails.viewed", actor=actor, target=organisation, ip_address=ip_address)


def organisation_email_history(organisation: Organisation, *, limit: int = 100) -> list[OutboxMessage]:
    """The newest outbox messages to the organisation's contacts (past and present) and invoice address."""
    addresses = select(Contact.email).where(Contact.organisation_id == organisation.id, Contact.email.is_not(None))
    conditions = [OutboxMessage.to_address.in_(addresses)]
    if organisation.invoice_email:
        conditions.append(OutboxMessage.to_address == organisation.invoice_email)
    stmt = (
        select(OutboxMessage)
        .where(or_(*conditions))
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(stmt))
