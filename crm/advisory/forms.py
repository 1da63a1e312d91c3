"""Input shapes of advisory pages (portal and staff)."""

from __future__ import annotations

from datetime import date

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    HiddenField,
    IntegerField,
    MultipleFileField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    ValidationError,
    widgets,
)
from wtforms.validators import AnyOf, DataRequired, Length, NumberRange, Optional
from wtforms.widgets import HiddenInput

from crm.advisory.attachments import ACCEPT
from crm.advisory.models import OECD_STEPS, CaseStatus, CaseType, Theme, Urgency, Visibility
from crm.forms import OnceForm, VersionedForm, within_calendar


def _today() -> date:
    from crm.members.services import today

    return today()


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def _files_field(label=None, description=None):
    return MultipleFileField(
        label or _l("Attachments"),
        render_kw={"accept": ACCEPT},
        description=description or _l("PDF, Office documents or images."),
    )


class CaseForm(OnceForm, FlaskForm):
    case_type = RadioField(
        _l("Type of request"),
        choices=lambda: [(t.value, t.label) for t in CaseType],
        default=CaseType.ORDINARY.value,
    )
    received_on = DateField(
        _l("Date the information request was received"),
        validators=[Optional(), within_calendar],
        description=_l("For information requests under the Transparency Act: the answer is due three weeks later."),
    )
    subject = StringField(_l("Subject"), validators=[DataRequired(), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[DataRequired(), Length(max=20000)])
    themes = MultiCheckboxField(_l("Themes"), choices=lambda: [(t.value, t.label) for t in Theme])
    oecd_step = SelectField(
        _l("OECD due-diligence step"),
        choices=lambda: [("", _l("Don't know"))] + [(str(k), v) for k, v in OECD_STEPS.items()],
        validators=[Optional()],
    )
    urgency = SelectField(
        _l("Urgency"), choices=lambda: [(u.value, u.label) for u in Urgency], default=Urgency.NORMAL.value
    )
    visibility = RadioField(
        _l("Who at our organisation may see the case"),
        choices=lambda: [(v.value, v.label) for v in Visibility],
        default=Visibility.ORGANISATION.value,
    )
    files = _files_field()
    submit = SubmitField(_l("Send request"))

    def validate_received_on(self, field) -> None:
        if self.case_type.data == CaseType.TRANSPARENCY_REQUEST.value:
            if field.data is None:
                raise ValidationError(_l("Give the date the information request was received."))
            if field.data > _today():
                raise ValidationError(_l("The date received cannot be in the future."))

    def values(self) -> dict:
        return {
            "subject": self.subject.data,
            "description": self.description.data,
            "themes": [Theme(value) for value in self.themes.data or []],
            "oecd_step": int(self.oecd_step.data) if self.oecd_step.data else None,
            "urgency": Urgency(self.urgency.data),
            "visibility": Visibility(self.visibility.data),
            "case_type": CaseType(self.case_type.data),
            "received_on": self.received_on.data,
        }


class MessageForm(OnceForm, FlaskForm):
    body = TextAreaField(_l("Message"), validators=[DataRequired(), Length(max=20000)])
    files = _files_field()
    submit = SubmitField(_l("Send"))


class UploadForm(OnceForm, FlaskForm):
    files = _files_field(_l("Add files"))
    submit = SubmitField(_l("Upload"))


class StaffReplyForm(OnceForm, FlaskForm):
    body = TextAreaField(_l("Reply to the member"), validators=[DataRequired(), Length(max=20000)])
    then = SelectField(
        _l("Then"),
        choices=lambda: [
            ("", _l("Keep working on it")),
            (CaseStatus.WAITING_FOR_MEMBER.value, _l("Wait for the member")),
            (CaseStatus.RESOLVED.value, _l("Mark as resolved")),
        ],
        validators=[Optional()],
    )
    files = _files_field()
    submit = SubmitField(_l("Send reply"))


class NoteForm(OnceForm, FlaskForm):
    body = TextAreaField(_l("Internal note"), validators=[DataRequired(), Length(max=20000)])
    files = _files_field(_l("Internal files"), _l("PDF, Office documents or images. Only the adviser team sees them."))
    submit = SubmitField(_l("Save note"))


class ReassignForm(FlaskForm):
    assignee_id = SelectField(_l("Assignee"), coerce=int)
    # The assignee (0: unassigned) when the form was opened: a colleague's reassignment since is not overwritten.
    assigned_was = IntegerField(widget=HiddenInput(), validators=[Optional(), NumberRange(min=0, max=2**31 - 1)])
    note = TextAreaField(_l("Note (internal)"), validators=[Optional(), Length(max=2000)])
    submit = SubmitField(_l("Reassign"))


class StatusForm(FlaskForm):
    status = SelectField(_l("New status"))
    # The status when the form was opened: a change by a colleague since makes the form outdated.
    status_was = HiddenField(validators=[Optional(), AnyOf([s.value for s in CaseStatus])])
    submit = SubmitField(_l("Change status"))


class TimeEntryForm(OnceForm, FlaskForm):
    minutes = IntegerField(_l("Minutes"), validators=[DataRequired(), NumberRange(min=1, max=1440)])
    spent_on = DateField(_l("Date"), default=_today, validators=[DataRequired(), within_calendar])
    note = StringField(_l("What was done"), validators=[Optional(), Length(max=500)])
    submit = SubmitField(_l("Log time"))


class ReplyTemplateForm(OnceForm, VersionedForm, FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    body = TextAreaField(
        _l("Text"),
        validators=[DataRequired(), Length(max=20000)],
        description=_l(
            "Placeholders: {organisation} (the member's name), {contact} (who asked), {adviser} (you, when you reply)."
        ),
    )
    submit = SubmitField(_l("Save"))


class AbsenceForm(OnceForm, VersionedForm, FlaskForm):
    adviser_id = SelectField(_l("Adviser"), coerce=int)
    backup_id = SelectField(_l("Backup"), coerce=int)
    starts_on = DateField(_l("From"), validators=[DataRequired(), within_calendar])
    ends_on = DateField(_l("To"), validators=[DataRequired(), within_calendar])
    note = StringField(_l("Note"), validators=[Optional(), Length(max=200)])
    submit = SubmitField(_l("Save"))


class ConfirmForm(FlaskForm):
    """A bare form for buttons that post (close, reopen, delete)."""


class TargetForm(VersionedForm, FlaskForm):
    """One service target row (the page renders its inputs with per-row ids); ``version`` is empty for a row
    that still has the default targets."""

    first_hours = IntegerField(_l("First response (business hours)"), validators=[DataRequired(), NumberRange(1, 2000)])
    resolution_hours = IntegerField(
        _l("Resolution (business hours)"), validators=[DataRequired(), NumberRange(1, 5000)]
    )
