"""Read-side queries for the staff queue, the dashboard and the portfolio: a fixed number of
queries whatever the number of cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import Select, case, exists, func, select
from sqlalchemy.orm import joinedload

from crm.advisory.deadlines import OSLO, business_seconds_between
from crm.advisory.models import OPEN_STATUSES, Case, CaseMessage, CaseStatus, CaseTheme, MessageKind, Theme
from crm.auth.models import User
from crm.extensions import db
from crm.members.models import Membership, Organisation, Sector, organisation_sectors
from crm.models import utcnow

# The deadline that matters now, as SQL: none while paused or resolved, else first response until
# answered, then resolution. Mirrors ``Case.next_due_at``.
next_due = case(
    (Case.status.not_in(OPEN_STATUSES), None),
    (Case.paused_at.is_not(None), None),
    (Case.first_responded_at.is_(None), Case.first_response_due_at),
    else_=Case.resolution_due_at,
)


@dataclass(frozen=True)
class QueueFilter:
    view: str = ""  # mine, unassigned, due_today, breached
    status: str = ""
    theme: str = ""

    @classmethod
    def from_args(cls, args) -> QueueFilter:
        view = args.get("view", "")
        status = args.get("status", "")
        theme = args.get("theme", "")
        return cls(
            view=view if view in ("mine", "unassigned", "due_today", "breached") else "",
            status=status if status in {s.value for s in CaseStatus} else "",
            theme=theme if theme in {t.value for t in Theme} else "",
        )


def end_of_today(now: datetime) -> datetime:
    day = now.astimezone(OSLO).date()
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=OSLO)


def due_today(now: datetime):
    """The current deadline falls on today's date in Oslo (earlier breaches are in "breached", not here)."""
    start = datetime.combine(now.astimezone(OSLO).date(), time.min, tzinfo=OSLO)
    return (next_due >= start) & (next_due < end_of_today(now))


def queue_stmt(filters: QueueFilter, *, user: User, now: datetime | None = None) -> Select[tuple[Case]]:
    """Cases sorted by what is due first (no deadline last), with organisation and assignee loaded."""
    now = now or utcnow()
    stmt = select(Case).options(joinedload(Case.organisation), joinedload(Case.assignee))
    if filters.status:
        stmt = stmt.where(Case.status == CaseStatus(filters.status))
    else:
        stmt = stmt.where(Case.status.in_(OPEN_STATUSES))
    if filters.view == "mine":
        stmt = stmt.where(Case.assignee_id == user.id)
    elif filters.view == "unassigned":
        stmt = stmt.where(Case.assignee_id.is_(None))
    elif filters.view == "due_today":
        stmt = stmt.where(due_today(now))
    elif filters.view == "breached":
        stmt = stmt.where(next_due < now)
    if filters.theme:
        stmt = stmt.where(exists().where(CaseTheme.case_id == Case.id, CaseTheme.theme == Theme(filters.theme)))
    return stmt.order_by(next_due.is_(None), next_due, Case.id)


def queue_counts(user: User, now: datetime | None = None) -> dict[str, int]:
    """My open cases, unassigned, due today and breached, in one query."""
    now = now or utcnow()
    row = db.session.execute(
        select(
            func.count(case((Case.assignee_id == user.id, 1))),
            func.count(case((Case.assignee_id.is_(None), 1))),
            func.count(case((due_today(now), 1))),
            func.count(case((next_due < now, 1))),
        ).where(Case.status.in_(OPEN_STATUSES))
    ).one()
    return dict(zip(("mine", "unassigned", "due_today", "breached"), row, strict=True))


def _quarter(column):
    return func.floor((func.extract("month", column) - 1) / 3) + 1


def dashboard_stats(year: int) -> dict:
    """Counts of the year's cases by theme, OECD step, sector and quarter; average first-response
    and resolution times in business hours, counted like the targets (Oslo working hours without
    public holidays; the time spent waiting for the member is left out of both)."""
    in_year = (Case.opened_at >= datetime(year, 1, 1, tzinfo=OSLO)) & (
        Case.opened_at < datetime(year + 1, 1, 1, tzinfo=OSLO)
    )
    by_theme = dict(
        db.session.execute(
            select(CaseTheme.theme, func.count()).join(Case).where(in_year).group_by(CaseTheme.theme)
        ).all()
    )
    by_step = dict(
        db.session.execute(select(Case.oecd_step, func.count()).where(in_year).group_by(Case.oecd_step)).all()
    )
    by_sector = db.session.execute(
        select(Sector.name, func.count(func.distinct(Case.id)))
        .join(organisation_sectors, organisation_sectors.c.sector_id == Sector.id)
        .join(Case, Case.organisation_id == organisation_sectors.c.organisation_id)
        .where(in_year)
        .group_by(Sector.name)
        .order_by(func.count(func.distinct(Case.id)).desc(), Sector.name)
    ).all()
    opened = db.session.execute(
        select(
            Case.opened_at,
            Case.first_responded_at,
            Case.resolved_at,
            Case.paused_seconds,
            Case.first_response_paused_seconds,
        ).where(in_year)
    ).all()
    by_quarter = {q: 0 for q in (1, 2, 3, 4)}
    first, resolution = [], []
    for opened_at, responded_at, resolved_at, paused_seconds, paused_before_response in opened:
        by_quarter[(opened_at.astimezone(OSLO).month - 1) // 3 + 1] += 1
        if responded_at:
            worked = business_seconds_between(opened_at, responded_at) - (paused_before_response or 0)
            first.append(max(0, worked) / 3600)
        if resolved_at:
            worked = business_seconds_between(opened_at, resolved_at) - (paused_seconds or 0)
            resolution.append(max(0, worked) / 3600)
    return {
        "total": len(opened),
        "by_theme": [(theme, by_theme.get(theme, 0)) for theme in Theme],
        "by_step": [(step, by_step.get(step, 0)) for step in (1, 2, 3, 4, 5, 6, None)],
        "by_sector": by_sector,
        "by_quarter": sorted(by_quarter.items()),
        "avg_first_response_hours": sum(first) / len(first) if first else None,
        "avg_resolution_hours": sum(resolution) / len(resolution) if resolution else None,
    }


def portfolio(adviser: User) -> list[dict]:
    """The adviser's organisations with their open cases and the date of the last contact."""
    open_count = (
        select(func.count(Case.id))
        .where(Case.organisation_id == Organisation.id, Case.status.in_(OPEN_STATUSES))
        .scalar_subquery()
    )
    last_contact = (
        select(func.max(CaseMessage.created_at))
        .join(Case, Case.id == CaseMessage.case_id)
        .where(Case.organisation_id == Organisation.id, CaseMessage.kind != MessageKind.INTERNAL_NOTE)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(Organisation, open_count.label("open_cases"), last_contact.label("last_contact"))
        .join(Membership, Membership.organisation_id == Organisation.id)
        .where(Membership.adviser_id == adviser.id)
        .order_by(open_count.desc(), Organisation.name)
    ).all()
    from crm.models import UTCDateTime

    convert = UTCDateTime().process_result_value
    return [
        {
            "organisation": org,
            "open_cases": count,
            "last_contact": convert(last, db.engine.dialect) if isinstance(last, datetime) else _parse(last),
        }
        for org, count, last in rows
    ]


def _parse(value) -> datetime | None:
    """SQLite hands back a subquery's max() as text."""
    if value is None:
        return None
    from datetime import UTC

    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def organisation_cases(organisation_id: int) -> list[Case]:
    return list(
        db.session.scalars(
            select(Case)
            .where(Case.organisation_id == organisation_id)
            .options(joinedload(Case.assignee))
            .order_by(Case.status.in_(OPEN_STATUSES).desc(), Case.opened_at.desc())
        )
    )
