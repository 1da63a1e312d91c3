"""Input shapes of the billing screens."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DecimalField, IntegerField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from crm.forms import OnceForm


class RunForm(FlaskForm):
    year = IntegerField(_l("Year"), validators=[DataRequired(), NumberRange(min=2000, max=2100)])


class RunStartForm(OnceForm, RunForm):
    """Start a billing run. It carries the count and total staff confirmed, so the run refuses to bill anything
    else; sent twice (a double click), it shows the run the first sending started."""

    count = IntegerField(validators=[InputRequired(), NumberRange(min=0, max=1_000_000)])
    total_ore = IntegerField(validators=[InputRequired(), NumberRange(min=0, max=10**13)])


class VoidForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class ReissueForm(FlaskForm):
    """Only the CSRF token: reissuing takes no input (the new invoice uses the organisation's current details)."""


class SendDraftForm(FlaskForm):
    """Only the CSRF token: a draft is sent as it was written."""


class KronerField(DecimalField):
    """An amount in kroner as Norwegians type it: a decimal comma and spaces between thousands are fine."""

    def process_formdata(self, valuelist):
        if valuelist:
            valuelist = [valuelist[0].replace("\u00a0", "").replace(" ", "").replace(",", ".")]
        super().process_formdata(valuelist)


class CreditNoteForm(OnceForm, FlaskForm):
    amount = KronerField(_l("Amount (NOK)"), places=2, validators=[DataRequired(), NumberRange(min=Decimal("0.01"))])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=500)])

    def amount_ore(self) -> int:
        return int((Decimal(self.amount.data) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
