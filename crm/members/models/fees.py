"""Fee schedules: one per (year, category), the rule held as data."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.members.models.memberships import MembershipCategory
from crm.models import TimestampMixin, VersionedMixin, str_enum


class FeeRuleType(enum.Enum):
    TURNOVER_STEPS = "turnover_steps"
    PAYMENT_GROUPS = "payment_groups"
    PER_INHABITANT = "per_inhabitant"


class FeeSchedule(VersionedMixin, TimestampMixin, db.Model):
    """The fee rule of one category for one year.

    ``rule`` by ``rule_type``:

    - turnover_steps: ``{"steps": [[upper_turnover_nok or null, fee_ore], ...]}`` ascending; the first step
      whose upper bound is at least the turnover applies; the last step (upper bound null) has no limit.
    - payment_groups: ``{"groups": [{"name": str, "max_turnover_nok": int|null, "max_employees": int|null,
      "fee_ore": int}, ...]}``; the first group whose limits both hold applies, else the last.
    - per_inhabitant: ``{"rate_ore": int, "min_ore": int, "max_ore": int}``.

    ``pro_rata`` lists ``[month, day, percent]`` from which a member joining in the year pays that percent
    (before the first date: 100 %).
    """

    __tablename__ = "fee_schedules"
    __table_args__ = (UniqueConstraint("year", "category_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(index=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("membership_categories.id"))
    rule_type: Mapped[FeeRuleType] = mapped_column(str_enum(FeeRuleType))
    rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    pro_rata: Mapped[list[list[int]]] = mapped_column(JSON, default=lambda: [[7, 1, 50], [10, 1, 25]])
    group_discount_percent: Mapped[int] = mapped_column(default=0)

    category: Mapped[MembershipCategory] = relationship()

    def __repr__(self) -> str:
        return f"<FeeSchedule {self.year} {self.category_id}>"
