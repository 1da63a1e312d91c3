"""Staff editing of the yearly fee schedules: the overview of a year, creating a missing schedule and changing one.

The rule is checked here, not in the form, so that every way in (pages, CLI, tests) obeys the same rules:
turnover steps rise with exactly the last one unbounded, fees are above zero, min <= max, percentages are
0-100, pro-rata dates rise. Rows that are left completely empty are ignored. A refusal names the field
(``steps.2.upper`` is the upper limit of the third row given) and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from crm.audit.services import record_audit
from crm.auth.models import User
from crm.errors import DomainError, check_version
from crm.extensions import db
from crm.i18n import format_money
from crm.members.models import FeeRuleType, FeeSchedule, MembershipCategory
from crm.request_args import FIRST_YEAR, LAST_YEAR

logger = logging.getLogger(__name__)

GROUP_NAME_MAX = 100


@dataclass(frozen=True)
class StepRow:
    upper_nok: int | None = None  # None on the last step: no upper limit
    fee_ore: int | None = None

    def is_empty(self) -> bool:
        return self.upper_nok is None and self.fee_ore is None


@dataclass(frozen=True)
class GroupRow:
    name: str = ""
    max_turnover_nok: int | None = None
    max_employees: int | None = None
    fee_ore: int | None = None

    def is_empty(self) -> bool:
        return (
            not self.name.strip()
            and self.max_turnover_nok is None
            and self.max_employees is None
            and (self.fee_ore is None)
        )


@dataclass(frozen=True)
class ProRataRow:
    day: int | None = None
    month: int | None = None
    percent: int | None = None

    def is_empty(self) -> bool:
        return self.day is None and self.month is None and self.percent is None


@dataclass(frozen=True)
class FeeScheduleInput:
    """What staff entered; only the part of the schedule's rule type is read."""

    steps: list[StepRow] = field(default_factory=list)
    groups: list[GroupRow] = field(default_factory=list)
    rate_ore: int | None = None
    min_ore: int | None = None
    max_ore: int | None = None
    pro_rata: list[ProRataRow] = field(default_factory=list)
    group_discount_percent: int | None = None  # None: no discount


@dataclass(frozen=True)
class FeeYearOverview:
    year: int
    years: list[int]  # years that have schedules, ascending
    categories: list[MembershipCategory]
    schedules: dict[int, FeeSchedule]  # by category id

    @property
    def copy_from(self) -> int | None:
        """The year to copy into this one at the turn of the year (see ``fee_rollover_source``)."""
        return _rollover_source(self.year, self.years)


# --- reading --------------------------------------------------------------------------------------------


def fee_schedule_years() -> list[int]:
    return list(db.session.scalars(select(FeeSchedule.year).distinct().order_by(FeeSchedule.year)))


def _rollover_source(year: int, years: list[int]) -> int | None:
    return year - 1 if year not in years and year - 1 in years else None


def fee_rollover_source(year: int) -> int | None:
    """The previous year, when ``year`` has no fee schedules and the previous year has: the year staff copy, with
    an index, at the turn of the year. None otherwise."""
    return _rollover_source(year, fee_schedule_years())


def default_fee_year(this_year: int) -> int:
    """This year when it has schedules, else the latest year that has any, else this year."""
    years = fee_schedule_years()
    if not years or this_year in years:
        return this_year
    return years[-1]


def fee_year_overview(year: int) -> FeeYearOverview:
    """Every category with its schedule for ``year`` (three queries, however many categories there are)."""
    categories = list(
        db.session.scalars(select(MembershipCategory).order_by(MembershipCategory.sort_order, MembershipCategory.name))
    )
    schedules = {s.category_id: s for s in db.session.scalars(select(FeeSchedule).where(FeeSchedule.year == year))}
    return FeeYearOverview(year=year, years=fee_schedule_years(), categories=categories, schedules=schedules)


def find_fee_schedule(year: int, category_id: int) -> FeeSchedule | None:
    return db.session.scalar(
        select(FeeSchedule).where(FeeSchedule.year == year, FeeSchedule.category_id == category_id)
    )


def suggested_rule_type(category: MembershipCategory) -> FeeRuleType:
    """The rule type of the category's latest schedule; for a category that never had one, turnover steps."""
    latest = db.session.scalar(
        select(FeeSchedule.rule_type)
        .where(FeeSchedule.category_id == category.id)
        .order_by(FeeSchedule.year.desc())
        .limit(1)
    )
    return latest or FeeRuleType.TURNOVER_STEPS


# --- checking what staff entered -------------------------------------------------------------------------


def _positive_fee(value: int | None, field_name: str) -> int:
    if value is None:
        raise DomainError(_("Enter the fee."), field=field_name)
    if value <= 0:
        raise DomainError(_("The fee must be above 0 kr."), field=field_name)
    return value


def _limit(value: int | None, field_name: str) -> int | None:
    if value is not None and value < 0:
        raise DomainError(_("A limit cannot be negative."), field=field_name)
    return value


def _percent(value: int | None, field_name: str) -> int:
    if value is None:
        raise DomainError(_("Enter a percentage."), field=field_name)
    if not 0 <= value <= 100:
        raise DomainError(_("A percentage must be between 0 and 100."), field=field_name)
    return value


def _filled(rows: list) -> list[tuple[int, Any]]:
    return [(position, row) for position, row in enumerate(rows) if not row.is_empty()]


def _check_steps(rows: list[StepRow]) -> dict[str, Any]:
    filled = _filled(rows)
    if not filled:
        raise DomainError(_("Enter at least one turnover step."), field="steps")
    steps: list[list[int | None]] = []
    previous: int | None = None
    for number, (position, row) in enumerate(filled, start=1):
        prefix = f"steps.{position}"
        last = number == len(filled)
        upper = _limit(row.upper_nok, f"{prefix}.upper")
        if last and upper is not None:
            raise DomainError(
                _("Leave the last step's upper limit empty: it covers every higher turnover."), field=f"{prefix}.upper"
            )
        if not last and upper is None:
            raise DomainError(_("Only the last step can be without an upper limit."), field=f"{prefix}.upper")
        if upper is not None and previous is not None and upper <= previous:
            raise DomainError(
                _(
                    "The steps must rise: enter an upper limit above %(previous)s.",
                    previous=format_money(previous * 100),
                ),
                field=f"{prefix}.upper",
            )
        steps.append([upper, _positive_fee(row.fee_ore, f"{prefix}.fee")])
        previous = upper
    return {"steps": steps}


def _check_groups(rows: list[GroupRow]) -> dict[str, Any]:
    filled = _filled(rows)
    if not filled:
        raise DomainError(_("Enter at least one payment group."), field="groups")
    groups = []
    names: set[str] = set()
    for number, (position, row) in enumerate(filled, start=1):
        prefix = f"groups.{position}"
        name = row.name.strip()
        if not name:
            raise DomainError(_("Give the group a name."), field=f"{prefix}.name")
        if len(name) > GROUP_NAME_MAX:
            raise DomainError(_("At most %(count)s characters.", count=GROUP_NAME_MAX), field=f"{prefix}.name")
        if name.casefold() in names:
            raise DomainError(_("Two groups cannot have the same name."), field=f"{prefix}.name")
        names.add(name.casefold())
        max_turnover = _limit(row.max_turnover_nok, f"{prefix}.max_turnover")
        max_employees = _limit(row.max_employees, f"{prefix}.max_employees")
        unlimited = max_turnover is None and max_employees is None
        if number == len(filled) and not unlimited:
            raise DomainError(
                _("Leave the last group's limits empty: it takes every member the groups above do not."),
                field=f"{prefix}.max_turnover",
            )
        if number < len(filled) and unlimited:
            raise DomainError(
                _("Only the last group can be without limits: give a turnover or employee limit."),
                field=f"{prefix}.max_turnover",
            )
        groups.append(
            {
                "name": name,
                "max_turnover_nok": max_turnover,
                "max_employees": max_employees,
                "fee_ore": _positive_fee(row.fee_ore, f"{prefix}.fee"),
            }
        )
    return {"groups": groups}


def _check_per_inhabitant(data: FeeScheduleInput) -> dict[str, Any]:
    if data.rate_ore is None:
        raise DomainError(_("Enter the rate per inhabitant."), field="rate")
    if data.rate_ore <= 0:
        raise DomainError(_("The rate must be above 0 kr."), field="rate")
    minimum = _positive_fee(data.min_ore, "minimum")
    maximum = _positive_fee(data.max_ore, "maximum")
    if minimum > maximum:
        raise DomainError(_("The minimum fee cannot be above the maximum fee."), field="minimum")
    return {"rate_ore": data.rate_ore, "min_ore": minimum, "max_ore": maximum}


def _check_pro_rata(rows: list[ProRataRow]) -> list[list[int]]:
    filled = _filled(rows)
    if not filled:
        # The calculation reads an empty list as the default (50 % from 1 July, 25 % from 1 October).
        raise DomainError(_("Enter at least one date; for no reduction, enter 01.01 and 100 %."), field="pro_rata")
    result: list[list[int]] = []
    previous: date | None = None
    for position, row in filled:
        prefix = f"pro_rata.{position}"
        if row.day is None or row.month is None:
            raise DomainError(_("Enter the date as dd.mm, e.g. 01.07."), field=f"{prefix}.date")
        try:
            # A year without 29 February: the date must exist in every year.
            on = date(2001, row.month, row.day)
        except ValueError:
            raise DomainError(_("Not a date that exists every year."), field=f"{prefix}.date") from None
        if previous is not None and on <= previous:
            raise DomainError(_("The dates must come in order through the year."), field=f"{prefix}.date")
        result.append([row.month, row.day, _percent(row.percent, f"{prefix}.percent")])
        previous = on
    return result


def _checked_rule(rule_type: FeeRuleType, data: FeeScheduleInput) -> dict[str, Any]:
    if rule_type is FeeRuleType.TURNOVER_STEPS:
        return _check_steps(data.steps)
    if rule_type is FeeRuleType.PAYMENT_GROUPS:
        return _check_groups(data.groups)
    return _check_per_inhabitant(data)


def _checked(rule_type: FeeRuleType, data: FeeScheduleInput) -> tuple[dict[str, Any], list[list[int]], int]:
    rule = _checked_rule(rule_type, data)
    pro_rata = _check_pro_rata(data.pro_rata)
    discount = 0 if data.group_discount_percent is None else _percent(data.group_discount_percent, "group_discount")
    return rule, pro_rata, discount


# --- the audit trail's record of a change ---------------------------------------------------------------


def _snapshot(rule: dict[str, Any], pro_rata: list[list[int]], discount: int) -> dict[str, Any]:
    """The schedule as flat parts: rows by their number, so a change lists only the rows that differ."""
    parts: dict[str, Any] = {}
    for number, step in enumerate(rule.get("steps", []), start=1):
        parts[f"step {number}"] = list(step)
    for number, group in enumerate(rule.get("groups", []), start=1):
        parts[f"group {number}"] = dict(group)
    for key in ("rate_ore", "min_ore", "max_ore"):
        if key in rule:
            parts[key] = rule[key]
    parts["pro_rata"] = [list(item) for item in pro_rata]
    parts["group_discount_percent"] = discount
    return parts


def _difference(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = [key for key in (*before, *(k for k in after if k not in before)) if before.get(key) != after.get(key)]
    return {key: before.get(key) for key in keys}, {key: after.get(key) for key in keys}


# --- changing -------------------------------------------------------------------------------------------


def update_fee_schedule(
    schedule: FeeSchedule, data: FeeScheduleInput, *, actor: User | None, version: int | None = None
) -> bool:
    """Replace the schedule's rule (of its own rule type), pro-rata dates and group discount.

    Returns whether anything changed; a change is audited with the parts before and after. Raises
    ``DomainError`` naming the field when the input breaks a rule, and ``StaleEdit`` when the schedule was saved
    since its form was opened at ``version`` (nothing is changed then).
    """
    check_version(schedule, version)
    rule, pro_rata, discount = _checked(schedule.rule_type, data)
    before = _snapshot(schedule.rule, schedule.pro_rata or [], schedule.group_discount_percent)
    after = _snapshot(rule, pro_rata, discount)
    old, new = _difference(before, after)
    if not new:
        return False
    schedule.rule = rule
    schedule.pro_rata = pro_rata
    schedule.group_discount_percent = discount
    db.session.flush()
    record_audit(
        "members.fees.schedule_updated",
        actor=actor,
        target=schedule,
        details={
            "year": schedule.year,
            "category": schedule.category.name,
            "category_id": schedule.category_id,
            "before": old,
            "after": new,
        },
    )
    logger.info("Fee schedule %s %s changed by %s", schedule.year, schedule.category_id, getattr(actor, "id", None))
    return True


def create_fee_schedule(
    year: int, category: MembershipCategory, rule_type: FeeRuleType, data: FeeScheduleInput, *, actor: User | None
) -> FeeSchedule:
    """Create the schedule of ``category`` for ``year`` (audited with all its parts).

    Raises ``DomainError`` when the year is out of range, the category already has a schedule that year, or
    the input breaks a rule.
    """
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise DomainError(_("Choose a year between %(first)s and %(last)s.", first=FIRST_YEAR, last=LAST_YEAR))
    if find_fee_schedule(year, category.id) is not None:
        raise DomainError(_("%(category)s already has a fee schedule for %(year)s.", category=category.name, year=year))
    rule, pro_rata, discount = _checked(rule_type, data)
    schedule = FeeSchedule(
        year=year,
        category=category,
        rule_type=rule_type,
        rule=rule,
        pro_rata=pro_rata,
        group_discount_percent=discount,
    )
    db.session.add(schedule)
    db.session.flush()
    record_audit(
        "members.fees.schedule_created",
        actor=actor,
        target=schedule,
        details={
            "year": year,
            "category": category.name,
            "category_id": category.id,
            "after": _snapshot(rule, pro_rata, discount),
        },
    )
    logger.info("Fee schedule %s %s created by %s", year, category.id, getattr(actor, "id", None))
    return schedule
