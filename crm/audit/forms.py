from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Length, Optional, ValidationError

from crm.forms import within_calendar


class AuditFilterForm(FlaskForm):
    """A GET filter: it changes nothing, so it carries no CSRF token."""

    class Meta:
        csrf = False

    action = StringField(_l("Action starts with"), validators=[Optional(), Length(max=100)])
    actor = StringField(_l("Actor (email)"), validators=[Optional(), Length(max=254)])
    # Choices are the kinds of record features registered (set by the view); a kind nobody registered still
    # filters, so the links in the log's "Target" column work for every entry.
    target_type = SelectField(_l("Target type"), validators=[Optional(), Length(max=50)], validate_choice=False)
    target_id = StringField(_l("Target id"), validators=[Optional(), Length(max=64)])
    date_from = DateField(_l("From date"), validators=[Optional(), within_calendar])
    date_to = DateField(_l("To date"), validators=[Optional(), within_calendar])

    def validate_date_to(self, field: DateField) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("The end date is before the start date."))
