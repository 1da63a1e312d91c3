"""The staff member list: search, filters, sort and pagination in a constant number of queries."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import aliased, contains_eager, selectinload

from crm.auth.models import Role, User, UserRole
from crm.extensions import db
from crm.members.models import (
    Contact,
    Membership,
    MembershipCategory,
    MembershipStatus,
    Organisation,
    OrganisationKind,
    Sector,
    TransparencyScope,
    organisation_sectors,
)
from crm.pagination import Page, paginate


@dataclass
class MemberFilters:
    q: str = ""
    status: MembershipStatus | None = None
    kind: OrganisationKind | None = None
    category_id: int | None = None
    adviser_id: int | None = None  # 0: no adviser
    sector_id: int | None = None
    transparency: TransparencyScope | None = None
    sort: str = "name"


AdviserUser = aliased(User)

SORTS = {
    "name": (func.lower(Organisation.name).asc(),),
    "-name": (func.lower(Organisation.name).desc(),),
    "orgnr": (Organisation.orgnr.asc(),),
    "status": (Membership.status.asc(), func.lower(Organisation.name).asc()),
    "category": (MembershipCategory.sort_order.asc(), func.lower(Organisation.name).asc()),
    "adviser": (AdviserUser.full_name.asc(), func.lower(Organisation.name).asc()),
    "-created": (Organisation.created_at.desc(),),
}


def filtered_organisations(filters: MemberFilters, *, with_status: bool = True) -> Select:
    stmt = (
        select(Organisation)
        .join(Organisation.membership)
        .join(Membership.category)
        .outerjoin(AdviserUser, Membership.adviser_id == AdviserUser.id)
    )
    q = filters.q.strip()
    if q:
        compact = q.replace(" ", "")
        needle = q.lower()
        contact_match = exists().where(
            Contact.organisation_id == Organisation.id,
            or_(
                func.lower(Contact.name).contains(needle, autoescape=True),
                Contact.email.contains(needle, autoescape=True),
            ),
        )
        conditions = [func.lower(Organisation.name).contains(needle, autoescape=True), contact_match]
        if compact.isdigit():
            conditions.append(Organisation.orgnr.startswith(compact, autoescape=True))
        stmt = stmt.where(or_(*conditions))
    if with_status and filters.status is not None:
        stmt = stmt.where(Membership.status == filters.status)
    if filters.kind is not None:
        stmt = stmt.where(Organisation.kind == filters.kind)
    if filters.category_id is not None:
        stmt = stmt.where(Membership.category_id == filters.category_id)
    if filters.adviser_id is not None:
        stmt = stmt.where(
            Membership.adviser_id.is_(None) if filters.adviser_id == 0 else Membership.adviser_id == filters.adviser_id
        )
    if filters.sector_id is not None:
        stmt = stmt.where(
            exists().where(
                organisation_sectors.c.organisation_id == Organisation.id,
                organisation_sectors.c.sector_id == filters.sector_id,
            )
        )
    if filters.transparency is not None:
        stmt = stmt.where(Organisation.transparency_act_scope == filters.transparency)
    return stmt


def listed_organisations(filters: MemberFilters, *options) -> Select:
    """``filtered_organisations`` in the order asked for, with what a row of the member list shows loaded
    (membership, category, adviser, sectors) and any further loader ``options``."""
    return (
        filtered_organisations(filters)
        .options(
            contains_eager(Organisation.membership).contains_eager(Membership.category),
            contains_eager(Organisation.membership).contains_eager(Membership.adviser.of_type(AdviserUser)),
            selectinload(Organisation.sectors),
            *options,
        )
        .order_by(*SORTS.get(filters.sort, SORTS["name"]), Organisation.id)
    )


def search_members(filters: MemberFilters) -> tuple[Page, dict]:
    """The page of organisations named by the request's ``?page=`` (with membership, category, adviser and
    sectors loaded) and the counts per status under the other filters. A count and the page, one query for
    the page's sectors, one for the advisers' roles and one for the counts, whatever the page size."""
    page = paginate(listed_organisations(filters))
    counts_stmt = (
        filtered_organisations(filters, with_status=False)
        .with_only_columns(Membership.status, func.count(Organisation.id))
        .group_by(Membership.status)
    )
    counts = dict.fromkeys(MembershipStatus, 0)
    counts.update({status: count for status, count in db.session.execute(counts_stmt)})
    return page, counts


def filter_options() -> dict[str, list]:
    """Categories, advisers and sectors for the filter menus (three queries)."""
    advisers = db.session.scalars(
        select(User)
        .where(User.id.in_(select(UserRole.user_id).where(UserRole.role == Role.ADVISER)), User.is_enabled)
        .order_by(User.full_name)
    ).all()
    return {
        "categories": db.session.scalars(select(MembershipCategory).order_by(MembershipCategory.sort_order)).all(),
        "advisers": advisers,
        "sectors": db.session.scalars(select(Sector).order_by(Sector.name)).all(),
    }
