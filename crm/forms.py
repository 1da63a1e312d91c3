"""Form pieces every feature shares."""

from __future__ import annotations

from wtforms import HiddenField, IntegerField
from wtforms.validators import Length, NumberRange, Optional
from wtforms.widgets import HiddenInput

from crm.submissions import new_submission_token


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
