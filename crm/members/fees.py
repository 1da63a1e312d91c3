"""Membership fees: the yearly schedules as data, the calculation with its explanation, index copying.

Rounding: calculated fees are rounded to whole kroner (half up) after every step (rate x inhabitants,
pro rata, discount). Copying a year with an index rounds every fee amount to the nearest hundred
kroner, as the published tariff is; per-inhabitant rates are rounded to whole øre; turnover and
employee limits are not indexed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from crm.audit.services import record_audit
from crm.errors import DomainError
from crm.extensions import db
from crm.i18n import format_date_no, format_money
from crm.members.models import (
    FeeRuleType,
    FeeSchedule,
    Membership,
    MembershipCategory,
    Organisation,
    OrganisationKind,
)
from crm.members.services import ensure_categories

logger = logging.getLogger(__name__)

DEFAULT_PRO_RATA = [[7, 1, 50], [10, 1, 25]]  # joining from 1 July: 50 %, from 1 October: 25 %


@dataclass(frozen=True)
class FeeComponent:
    """One line of the fee as it is invoiced: the annual fee by the schedule, a reduction (negative: pro rata,
    group discount), or the fee staff set."""

    description: str
    amount_ore: int


@dataclass
class FeeCalculation:
    year: int
    amount_ore: int
    calculated_ore: int | None  # before a staff override; None when no schedule applies
    lines: list[str] = field(default_factory=list)
    pro_rata_percent: int = 100
    discount_percent: int = 0
    overridden: bool = False
    # The invoice lines, in order; ``calculate_fee`` makes them sum to ``amount_ore`` exactly.
    components: list[FeeComponent] = field(default_factory=list)

    @property
    def components_total(self) -> int:
        return sum(component.amount_ore for component in self.components)


def round_kroner(amount_ore: int | Decimal) -> int:
    return int((Decimal(amount_ore) / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * 100


def round_hundreds(amount_ore: int | Decimal) -> int:
    return int((Decimal(amount_ore) / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * 10_000


def _nok(value: int) -> str:
    return format_money(value * 100)


def get_schedule(year: int, category_id: int) -> FeeSchedule | None:
    return db.session.scalar(
        select(FeeSchedule).where(FeeSchedule.year == year, FeeSchedule.category_id == category_id)
    )


def _base_fee(schedule: FeeSchedule, organisation: Organisation) -> tuple[int, list[str], str]:
    """The annual fee by the schedule, its explanation lines, and the basis in short for the invoice line."""
    rule = schedule.rule
    if schedule.rule_type is FeeRuleType.TURNOVER_STEPS:
        turnover = organisation.annual_turnover_nok
        if turnover is None:
            raise DomainError(_("Register the annual turnover to calculate the fee."), field="annual_turnover_nok")
        steps = rule["steps"]
        index = next((i for i, (limit, _fee) in enumerate(steps) if limit is None or turnover <= limit), len(steps) - 1)
        upper, fee_ore = steps[index]
        if upper is not None:
            step_text = _("step %(number)s, turnover up to %(limit)s", number=index + 1, limit=_nok(upper))
        else:
            previous = steps[index - 1][0] if index else 0
            step_text = _("step %(number)s, turnover above %(limit)s", number=index + 1, limit=_nok(previous))
        return (
            fee_ore,
            [
                _("Basis: annual turnover %(amount)s.", amount=_nok(turnover)),
                _("Turnover step: %(step)s: %(fee)s.", step=step_text, fee=format_money(fee_ore)),
            ],
            step_text,
        )
    if schedule.rule_type is FeeRuleType.PAYMENT_GROUPS:
        turnover = organisation.annual_turnover_nok
        if turnover is None:
            raise DomainError(_("Register the annual turnover to calculate the fee."), field="annual_turnover_nok")
        employees = organisation.employees or 0
        groups = rule["groups"]
        chosen = groups[-1]
        for group in groups:
            max_turnover, max_employees = group.get("max_turnover_nok"), group.get("max_employees")
            if (max_turnover is None or turnover <= max_turnover) and (
                max_employees is None or employees <= max_employees
            ):
                chosen = group
                break
        return (
            chosen["fee_ore"],
            [
                _(
                    "Basis: annual turnover %(amount)s and %(employees)s employees.",
                    amount=_nok(turnover),
                    employees=employees,
                ),
                _("Payment group: %(group)s: %(fee)s.", group=chosen["name"], fee=format_money(chosen["fee_ore"])),
            ],
            _("payment group %(group)s", group=chosen["name"]),
        )
    if schedule.rule_type is FeeRuleType.PER_INHABITANT:
        inhabitants = organisation.inhabitants
        if inhabitants is None:
            raise DomainError(_("Register the number of inhabitants to calculate the fee."), field="inhabitants")
        raw = round_kroner(inhabitants * rule["rate_ore"])
        fee = min(max(raw, rule["min_ore"]), rule["max_ore"])
        count, rate = f"{inhabitants:,}".replace(",", "\u00a0"), format_money(rule["rate_ore"])
        lines = [
            _(
                "Basis: %(inhabitants)s inhabitants × %(rate)s = %(amount)s.",
                inhabitants=count,
                rate=rate,
                amount=format_money(raw),
            )
        ]
        if fee > raw:
            basis = _("%(inhabitants)s inhabitants × %(rate)s, minimum fee", inhabitants=count, rate=rate)
        elif fee < raw:
            basis = _("%(inhabitants)s inhabitants × %(rate)s, maximum fee", inhabitants=count, rate=rate)
        else:
            basis = _("%(inhabitants)s inhabitants × %(rate)s", inhabitants=count, rate=rate)
        if fee != raw:
            lines.append(
                _(
                    "Limited to the range %(min)s – %(max)s: %(fee)s.",
                    min=format_money(rule["min_ore"]),
                    max=format_money(rule["max_ore"]),
                    fee=format_money(fee),
                )
            )
        return fee, lines, basis
    raise DomainError(_("Unknown fee rule."))  # pragma: no cover - the enum is closed


def pro_rata_percent(schedule: FeeSchedule, start_on: date | None, year: int) -> int:
    """The share of the annual fee for a member joining in ``year`` (100 % for earlier members)."""
    if start_on is None or start_on.year != year:
        return 100
    percent = 100
    for month, day, share in sorted(schedule.pro_rata or DEFAULT_PRO_RATA):
        if start_on >= date(year, month, day):
            percent = share
    return percent


def calculate_fee(membership: Membership, year: int) -> FeeCalculation:
    """The membership fee for ``year`` with an explanation line per step: basis, step or group, pro rata
    for joining that year, group discount when the parent organisation is a member, and a staff override.

    ``components`` are the invoice lines, taken from the same steps with the same rounding, so they sum to
    ``amount_ore`` exactly: the annual fee by the schedule, the pro-rata reduction and the group discount (both
    negative), or, when staff set the fee, that one line (its reason is internal and stays off the line).

    Raises ``DomainError`` when no schedule exists for the year and category (and no override applies) or
    the organisation lacks the figure the rule needs (turnover, inhabitants).
    """
    organisation = membership.organisation
    category = membership.category.name
    schedule = get_schedule(year, membership.category_id)
    calculated: int | None = None
    lines: list[str] = []
    components: list[FeeComponent] = []
    percent, discount = 100, 0
    if schedule is None:
        if membership.fee_override_ore is None:
            raise DomainError(_("There is no fee schedule for %(year)s (%(category)s).", year=year, category=category))
        lines.append(_("There is no fee schedule for %(year)s (%(category)s).", year=year, category=category))
    else:
        try:
            calculated, lines, basis = _base_fee(schedule, organisation)
        except DomainError as exc:
            # An override stands on its own: staff may set the fee of a member whose figures are unknown.
            if membership.fee_override_ore is None:
                raise
            lines.append(exc.message)
        else:
            components.append(
                FeeComponent(
                    _("Membership fee %(year)s, %(category)s (%(basis)s)", year=year, category=category, basis=basis),
                    calculated,
                )
            )
    if calculated is not None:
        percent = pro_rata_percent(schedule, membership.start_on, year)
        if percent != 100:
            annual = calculated
            calculated = round_kroner(Decimal(calculated) * percent / 100)
            lines.append(
                _(
                    "Joined %(date)s: %(percent)s %% of the annual fee = %(fee)s.",
                    date=format_date_no(membership.start_on),
                    percent=percent,
                    fee=format_money(calculated),
                )
            )
            components.append(
                FeeComponent(
                    _(
                        "Joined %(date)s: %(percent)s %% of the annual fee",
                        date=format_date_no(membership.start_on),
                        percent=percent,
                    ),
                    calculated - annual,
                )
            )
        parent = organisation.parent
        parent_membership = parent.membership if parent is not None else None
        if schedule.group_discount_percent and parent_membership is not None and parent_membership.status.is_member:
            discount = schedule.group_discount_percent
            reduction = calculated - round_kroner(Decimal(calculated) * (100 - discount) / 100)
            calculated -= reduction
            lines.append(
                _(
                    "Group discount %(percent)s %% (%(parent)s is a member): −%(amount)s.",
                    percent=discount,
                    parent=parent.name,
                    amount=format_money(reduction),
                )
            )
            components.append(FeeComponent(_("Group discount %(percent)s %%", percent=discount), -reduction))
    amount = calculated
    overridden = membership.fee_override_ore is not None
    if overridden:
        amount = membership.fee_override_ore
        lines.append(
            _(
                "Fee set by %(who)s on %(date)s: %(fee)s. Reason: %(reason)s",
                who=membership.fee_override_by.full_name if membership.fee_override_by else _("staff"),
                date=format_date_no(membership.fee_override_at),
                fee=format_money(amount),
                reason=membership.fee_override_reason or "",
            )
        )
        components = [
            FeeComponent(
                _("Membership fee %(year)s, %(category)s (set by the administration)", year=year, category=category),
                amount,
            )
        ]
    lines.append(_("Fee %(year)s: %(fee)s.", year=year, fee=format_money(amount)))
    calculation = FeeCalculation(
        year=year,
        amount_ore=amount,
        calculated_ore=calculated,
        lines=lines,
        pro_rata_percent=percent,
        discount_percent=discount,
        overridden=overridden,
        components=components,
    )
    # Each component is the difference between two amounts already rounded the way the fee is, so no øre is lost.
    assert calculation.components_total == calculation.amount_ore, calculation
    return calculation


def preview_fee(
    category: MembershipCategory,
    *,
    kind: OrganisationKind,
    annual_turnover_nok: int | None,
    employees: int | None,
    inhabitants: int | None,
    start_on: date,
) -> FeeCalculation:
    """The fee an applicant would pay for ``start_on``'s year if admitted on that date (nothing is stored)."""
    organisation = Organisation(
        name="", kind=kind, annual_turnover_nok=annual_turnover_nok, employees=employees, inhabitants=inhabitants
    )
    membership = Membership(organisation=organisation, category_id=category.id, start_on=start_on)
    membership.category = category
    return calculate_fee(membership, start_on.year)


# --- copying a year with an index ------------------------------------------------------------------------


def _index_rule(rule_type: FeeRuleType, rule: dict[str, Any], factor: Decimal) -> dict[str, Any]:
    if rule_type is FeeRuleType.TURNOVER_STEPS:
        return {"steps": [[upper, round_hundreds(fee * factor)] for upper, fee in rule["steps"]]}
    if rule_type is FeeRuleType.PAYMENT_GROUPS:
        return {"groups": [{**group, "fee_ore": round_hundreds(group["fee_ore"] * factor)} for group in rule["groups"]]}
    return {
        "rate_ore": int((rule["rate_ore"] * factor).quantize(Decimal(1), rounding=ROUND_HALF_UP)),
        "min_ore": round_hundreds(rule["min_ore"] * factor),
        "max_ore": round_hundreds(rule["max_ore"] * factor),
    }


def copy_fee_schedules(from_year: int, to_year: int, index_percent: Decimal, *, actor=None) -> list[FeeSchedule]:
    """Copy every schedule of ``from_year`` to ``to_year`` with fees raised by ``index_percent``.

    Raises ``DomainError`` when ``from_year`` has no schedules or ``to_year`` already has any.
    """
    if to_year == from_year:
        raise DomainError(_("Choose two different years."))
    sources = list(db.session.scalars(select(FeeSchedule).where(FeeSchedule.year == from_year)))
    if not sources:
        raise DomainError(_("There are no fee schedules for %(year)s.", year=from_year))
    if db.session.scalar(select(FeeSchedule.id).where(FeeSchedule.year == to_year).limit(1)) is not None:
        raise DomainError(_("Fee schedules for %(year)s already exist.", year=to_year))
    factor = (Decimal(100) + Decimal(index_percent)) / Decimal(100)
    if factor <= 0:
        raise DomainError(_("The index must be above −100 %."))
    copies = []
    for source in sources:
        copy = FeeSchedule(
            year=to_year,
            category_id=source.category_id,
            rule_type=source.rule_type,
            rule=_index_rule(source.rule_type, source.rule, factor),
            pro_rata=[list(item) for item in source.pro_rata],
            group_discount_percent=source.group_discount_percent,
        )
        db.session.add(copy)
        copies.append(copy)
    db.session.flush()
    record_audit(
        "members.fees.copied",
        actor=actor,
        target_type="fee_schedules",
        target_id=to_year,
        details={"from": from_year, "to": to_year, "index_percent": str(index_percent)},
    )
    return copies


# --- the example schedules (DOMAIN.md) -------------------------------------------------------------------

MNOK = 1_000_000
# Upper turnover limits of the 40 company steps (the last step has none).
COMPANY_STEP_LIMITS_MNOK = (
    1, 2, 3, 5, 7.5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 250, 300, 400, 500, 600, 700, 800, 900,
    1_000, 1_250, 1_500, 1_750, 2_000, 2_500, 3_000, 4_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000,
    50_000, 100_000,
)  # fmt: skip


def company_steps(lowest_nok: int = 7_700, highest_nok: int = 137_800) -> list[list[int | None]]:
    """40 steps rising evenly (geometrically) from the lowest to the highest fee, in hundreds of kroner."""
    limits: list[int | None] = [int(limit * MNOK) for limit in COMPANY_STEP_LIMITS_MNOK] + [None]
    count = len(limits)
    ratio = Decimal(highest_nok) / Decimal(lowest_nok)
    steps = []
    for i, limit in enumerate(limits):
        fee_nok = Decimal(lowest_nok) * ratio ** (Decimal(i) / Decimal(count - 1))
        steps.append([limit, round_hundreds(fee_nok * 100)])
    return steps


def example_rules() -> dict[str, tuple[FeeRuleType, dict[str, Any], int]]:
    """The DOMAIN.md example figures by category code: (rule type, rule, group discount %)."""
    per_inhabitant_limits = {"min_ore": 25_700_00, "max_ore": 99_600_00}
    return {
        "company": (FeeRuleType.TURNOVER_STEPS, {"steps": company_steps()}, 20),
        "state_body": (FeeRuleType.TURNOVER_STEPS, {"steps": company_steps()}, 0),
        "organisation": (
            FeeRuleType.PAYMENT_GROUPS,
            {
                "groups": [
                    {"name": "Gruppe 1", "max_turnover_nok": 5 * MNOK, "max_employees": 10, "fee_ore": 7_700_00},
                    {"name": "Gruppe 2", "max_turnover_nok": 50 * MNOK, "max_employees": 50, "fee_ore": 18_900_00},
                    {"name": "Gruppe 3", "max_turnover_nok": None, "max_employees": None, "fee_ore": 41_600_00},
                ]
            },
            0,
        ),
        "municipality": (FeeRuleType.PER_INHABITANT, {"rate_ore": 118, **per_inhabitant_limits}, 0),
        "county": (FeeRuleType.PER_INHABITANT, {"rate_ore": 59, **per_inhabitant_limits}, 0),
    }


def seed_fee_schedules(year: int = 2026) -> list[FeeSchedule]:
    """Create the example schedules for ``year`` for every default category that lacks one (idempotent)."""
    categories: dict[str, MembershipCategory] = ensure_categories()
    existing = {s.category_id for s in db.session.scalars(select(FeeSchedule).where(FeeSchedule.year == year))}
    created = []
    for code, (rule_type, rule, discount) in example_rules().items():
        category = categories[code]
        if category.id in existing:
            continue
        schedule = FeeSchedule(
            year=year,
            category=category,
            rule_type=rule_type,
            rule=rule,
            pro_rata=[list(item) for item in DEFAULT_PRO_RATA],
            group_discount_percent=discount,
        )
        db.session.add(schedule)
        created.append(schedule)
    db.session.flush()
    return created
