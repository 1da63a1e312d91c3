"""Input shapes of the fee schedule pages: kroner as Norwegians type them, rows of steps, groups and pro-rata
dates. The rules a schedule must follow are checked by ``crm.members.services.fee_schedules``."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import FieldList, FormField, IntegerField, StringField, SubmitField
from wtforms.validators import InputRequired, Length, Optional

from crm.forms import OnceForm, VersionedForm
from crm.members.models import FeeRuleType
from crm.members.services.fee_schedules import FeeScheduleInput, GroupRow, ProRataRow, StepRow

BLANK_ROWS = 3  # empty rows under the existing ones, for adding steps or groups
BLANK_PRO_RATA_ROWS = 2

_SPACES = re.compile(r"[\s\u00a0\u202f]+")
_AMOUNT = re.compile(r"^(\d+)(?:[,.](\d{1,2}))?$")
_WHOLE = re.compile(r"^\d+$")
_DAY_MONTH = re.compile(r"^(\d{1,2})[./](\d{1,2})\.?$")
_DECIMAL = re.compile(r"^[-−]?\d+(?:[,.]\d+)?$")


def _group_thousands(kroner: int) -> str:
    return f"{kroner:,}".replace(",", " ")


def _clean_amount(text: str) -> str:
    cleaned = _SPACES.sub("", text).lower()
    cleaned = cleaned.removesuffix("kr").removeprefix("kr").removesuffix(",-").removesuffix(".-")
    return cleaned


class KronerField(StringField):
    """An amount in kroner typed as "7 700", "7700", "7 700 kr" or "1,18" (decimal comma).

    ``data`` is integer øre, or with ``whole=True`` (turnover limits) whole kroner; None when left empty.
    """

    def __init__(self, label=None, validators=None, *, whole: bool = False, **kwargs: Any) -> None:
        super().__init__(label, validators, **kwargs)
        self.whole = whole

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist:
            return
        text = _clean_amount(valuelist[0])
        if not text:
            self.data = None
            return
        if self.whole:
            if not _WHOLE.match(text):
                self.data = None
                raise ValueError(_("Enter whole kroner, e.g. 5 000 000."))
            self.data = int(text)
            return
        match = _AMOUNT.match(text)
        if not match:
            self.data = None
            raise ValueError(_("Enter kroner, e.g. 7 700 or 1,18."))
        kroner, ore = match.groups()
        self.data = int(kroner) * 100 + int((ore or "0").ljust(2, "0"))

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        if self.data is None:
            return ""
        if self.whole:
            return _group_thousands(self.data)
        kroner, ore = divmod(int(self.data), 100)
        return f"{_group_thousands(kroner)},{ore:02d}" if ore else _group_thousands(kroner)


class DayMonthField(StringField):
    """A day in the year typed as "01.07" or "1.7"; ``data`` is ``(day, month)`` (the service checks the date)."""

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist:
            return
        text = _SPACES.sub("", valuelist[0])
        if not text:
            self.data = None
            return
        match = _DAY_MONTH.match(text)
        if not match:
            self.data = None
            raise ValueError(_("Enter the date as dd.mm, e.g. 01.07."))
        self.data = (int(match.group(1)), int(match.group(2)))

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        if not self.data:
            return ""
        day, month = self.data
        return f"{day:02d}.{month:02d}"


class IndexField(StringField):
    """A percentage with a decimal comma or point ("3,5"); ``data`` is a ``Decimal``."""

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist:
            return
        text = _SPACES.sub("", valuelist[0]).removesuffix("%")
        if not text:
            self.data = None
            return
        if not _DECIMAL.match(text):
            self.data = None
            raise ValueError(_("Enter a percentage, e.g. 3,5."))
        self.data = Decimal(text.replace(",", ".").replace("−", "-"))

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else str(self.data).replace(".", ",")


class _RowForm(FlaskForm):
    class Meta:
        csrf = False  # one token for the whole form, not one per row


class StepRowForm(_RowForm):
    upper = KronerField(_l("Turnover up to (NOK)"), whole=True)
    fee = KronerField(_l("Fee (NOK)"))


class GroupRowForm(_RowForm):
    name = StringField(_l("Name"), validators=[Optional(), Length(max=100)])
    max_turnover = KronerField(_l("Turnover up to (NOK)"), whole=True)
    max_employees = IntegerField(_l("Employees up to"), validators=[Optional()])
    fee = KronerField(_l("Fee (NOK)"))


class ProRataRowForm(_RowForm):
    date = DayMonthField(_l("Joining from (dd.mm)"))
    percent = IntegerField(_l("Share of the annual fee (%)"), validators=[Optional()])


_ROW = re.compile(r"^(steps|groups|pro_rata)\.(\d+)\.(\w+)$")


class FeeScheduleForm(OnceForm, VersionedForm, FlaskForm):
    """One schedule: the rows or amounts of its rule type, the pro-rata dates and the group discount. A new one
    carries a ``submission`` token, an existing one the ``version`` it was opened at."""

    steps = FieldList(FormField(StepRowForm))
    groups = FieldList(FormField(GroupRowForm))
    rate = KronerField(_l("Rate per inhabitant (NOK)"), description=_l("Kroner and øre, e.g. 1,18."))
    minimum = KronerField(_l("Minimum fee (NOK)"))
    maximum = KronerField(_l("Maximum fee (NOK)"))
    pro_rata = FieldList(FormField(ProRataRowForm))
    group_discount = IntegerField(
        _l("Group discount (%)"),
        validators=[Optional()],
        description=_l("For members whose parent organisation is a member. 0 or empty: no discount."),
    )
    submit = SubmitField(_l("Save"))

    def __getattr__(self, name: str):
        # The service names a row's field "steps.2.upper" (the third row); ``field_error`` looks it up here.
        match = _ROW.match(name)
        if match is None:
            raise AttributeError(name)
        rows, position, key = match.group(1), int(match.group(2)), match.group(3)
        entries = self._fields[rows].entries
        if position >= len(entries) or key not in entries[position].form._fields:
            raise AttributeError(name)
        return entries[position].form[key]

    def fill(
        self, rule_type: FeeRuleType, rule: dict[str, Any], pro_rata: list[list[int]], group_discount: int
    ) -> None:
        """Show a stored schedule (a GET), with blank rows to add to."""
        if rule_type is FeeRuleType.TURNOVER_STEPS:
            for upper, fee in rule.get("steps", []):
                self.steps.append_entry({"upper": upper, "fee": fee})
            for _ in range(BLANK_ROWS):
                self.steps.append_entry()
        elif rule_type is FeeRuleType.PAYMENT_GROUPS:
            for group in rule.get("groups", []):
                self.groups.append_entry(
                    {
                        "name": group["name"],
                        "max_turnover": group.get("max_turnover_nok"),
                        "max_employees": group.get("max_employees"),
                        "fee": group["fee_ore"],
                    }
                )
            for _ in range(BLANK_ROWS):
                self.groups.append_entry()
        else:
            self.rate.data, self.minimum.data, self.maximum.data = (
                rule.get("rate_ore"),
                rule.get("min_ore"),
                rule.get("max_ore"),
            )
        for month, day, percent in pro_rata:
            self.pro_rata.append_entry({"date": (day, month), "percent": percent})
        for _ in range(BLANK_PRO_RATA_ROWS):
            self.pro_rata.append_entry()
        self.group_discount.data = group_discount

    def to_input(self) -> FeeScheduleInput:
        return FeeScheduleInput(
            steps=[StepRow(upper_nok=row.upper.data, fee_ore=row.fee.data) for row in self._rows(self.steps)],
            groups=[
                GroupRow(
                    name=row.name.data or "",
                    max_turnover_nok=row.max_turnover.data,
                    max_employees=row.max_employees.data,
                    fee_ore=row.fee.data,
                )
                for row in self._rows(self.groups)
            ],
            rate_ore=self.rate.data,
            min_ore=self.minimum.data,
            max_ore=self.maximum.data,
            pro_rata=[
                ProRataRow(
                    day=row.date.data[0] if row.date.data else None,
                    month=row.date.data[1] if row.date.data else None,
                    percent=row.percent.data,
                )
                for row in self._rows(self.pro_rata)
            ],
            group_discount_percent=self.group_discount.data,
        )

    @staticmethod
    def _rows(field_list: FieldList) -> list:
        return [entry.form for entry in field_list.entries]


class CopyFeeYearForm(OnceForm, FlaskForm):
    index_percent = IndexField(
        _l("Index adjustment (%)"),
        validators=[InputRequired()],
        description=_l("Fees are raised by this percentage and rounded to whole hundreds of kroner."),
    )
    submit = SubmitField(_l("Copy to next year"))
