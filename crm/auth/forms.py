from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    EmailField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Email, EqualTo, Length
from wtforms.widgets import CheckboxInput, ListWidget

from crm.auth.models import STAFF_ROLES
from crm.auth.passwords import MAX_LENGTH
from crm.forms import OnceForm, VersionedForm


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])
    next = HiddenField()
    submit = SubmitField(_l("Log in"))


class CodeForm(FlaskForm):
    code = StringField(
        _l("Code from your authenticator app"),
        validators=[DataRequired(), Length(min=6, max=10)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True},
    )
    submit = SubmitField(_l("Continue"))


class ForgotPasswordForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Email(), Length(max=254)])
    submit = SubmitField(_l("Send link"))


class NewPasswordForm(FlaskForm):
    new_password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(max=MAX_LENGTH)],
        description=_l("At least 12 characters. A few unrelated words make a good password."),
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[DataRequired(), EqualTo("new_password", message=_l("The passwords do not match."))],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField(_l("Save password"))


class ChangePasswordForm(NewPasswordForm):
    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(), Length(max=MAX_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )


class PreferencesForm(FlaskForm):
    locale = RadioField(
        _l("Language"),
        choices=[
            SelectChoice("", _l("Default (Norwegian bokmål)")),
            SelectChoice("nb", "Norsk bokmål"),
            SelectChoice("en", "English"),
        ],
        default="",
        validate_choice=True,
    )
    submit = SubmitField(_l("Save"))


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


ROLE_LABELS = {
    "admin": _l("Administrator"),
    "adviser": _l("Adviser"),
    "coordinator": _l("Coordinator (membership and events)"),
    "finance": _l("Finance"),
    "member": _l("Member"),
}


def staff_role_choices() -> list[SelectChoice]:
    return [SelectChoice(role.value, ROLE_LABELS[role.value]) for role in sorted(STAFF_ROLES, key=lambda r: r.value)]


class StaffRolesForm(VersionedForm, FlaskForm):
    """A staff user's roles; ``version`` is the user's ``roles_version`` when the form was opened."""

    # The service checks the roles (at least one, staff only) with messages of its own.
    roles = MultiCheckboxField(_l("Roles"), choices=staff_role_choices, validate_choice=False)
    submit = SubmitField(_l("Save roles"))


class NewStaffUserForm(OnceForm, StaffRolesForm):
    version = None  # a new user has no roles to be outdated
    full_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    email = EmailField(_l("Email"), validators=[DataRequired(), Email(), Length(max=254)])
    submit = SubmitField(_l("Create and send invitation"))


class ActionForm(FlaskForm):
    """A button that posts: only the CSRF token."""
