"""Form pieces every feature shares."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, IntegerField, ValidationError
from wtforms.validators import Length, NumberRange, Optional
from wtforms.widgets import HiddenInput

from crm.request_args import FIRST_YEAR, LAST_YEAR
from crm.submissions import new_submission_token


def within_calendar(form: Any, field: Any) -> None:
    """A validator for every date field: a year from 2000 to 2100. A day at the calendar's edge (0001-01-01,
    9999-12-31) has no Oslo midnight, next day or deadline to compute, and no member means one."""
    if field.data and not FIRST_YEAR <= field.data.year <= LAST_YEAR:
        raise ValidationError(_l("Choose a date between %(first)s and %(last)s.", first=FIRST_YEAR, last=LAST_YEAR))


class VersionedForm:
    """Mixin for an edit form of a ``VersionedMixin`` row: ``version`` is the row's version when the form was
    opened (filled from ``obj=``), posted back in a hidden field for the service's ``check_version``."""

    version = IntegerField(widget=HiddenInput(), validators=[Optional(), NumberRange(min=1, max=2**31 - 1)])

    @property
    def opened_version(self) -> int:
        """The version to check the save against. A post without the field keeps the row's own version (WTForms
        fills a missing field from ``obj``): only a form that really was opened earlier is refused."""
        return self.version.data or 0


class OnceForm:
    """Mixin for a create form: ``submission`` is a one-time token made when the form is shown, for
    ``crm.submissions.create_once``. A form posted without one (a page from before) just gets a fresh token."""

    submission = HiddenField(default=new_submission_token, validators=[Optional(), Length(max=64)])
