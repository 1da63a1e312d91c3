"""Input shapes of the member register's staff forms."""

from __future__ import annotations

from datetime import date

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired, FileSize
from stdnum.no import orgnr as stdnum_orgnr
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    EmailField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    URLField,
    ValidationError,
    widgets,
)
from wtforms.validators import AnyOf, DataRequired, Email, Length, NumberRange, Optional, Regexp

from crm.forms import OnceForm, VersionedForm, within_calendar
from crm.members.models import ContactRole, MembershipStatus, OrganisationKind, TransparencyScope


def _today() -> date:
    from crm.members.services import today  # the date in Oslo, not the server's zone

    return today()


def valid_orgnr(form, field) -> None:
    if field.data and not stdnum_orgnr.is_valid(field.data):
        raise ValidationError(_l("Not a valid Norwegian organisation number."))


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class ValuesForm(FlaskForm):
    """A form whose ``values()`` are the data of the fields named in ``VALUE_FIELDS``, for a service call."""

    VALUE_FIELDS: tuple[str, ...] = ()

    def values(self) -> dict:
        return {name: getattr(self, name).data for name in self.VALUE_FIELDS}


# The fields of a contact person, the same on the staff form, the portal form and the portal invitation.
def _name_field() -> StringField:
    return StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])


def _title_field() -> StringField:
    return StringField(_l("Title"), validators=[Optional(), Length(max=200)])


def _phone_field(**kwargs) -> StringField:
    return StringField(_l("Phone"), validators=[Optional(), Length(max=30)], **kwargs)


def _roles_field() -> MultiCheckboxField:
    return MultiCheckboxField(_l("Roles"), choices=lambda: [(r.value, r.label) for r in ContactRole])


def _newsletter_field() -> BooleanField:
    return BooleanField(_l("Consents to the newsletter"))


def _kind_choices():
    return [(kind.value, kind.label) for kind in OrganisationKind]


def _scope_choices():
    return [(scope.value, scope.label) for scope in TransparencyScope]


class OrganisationForm(OnceForm, VersionedForm, ValuesForm):
    """Staff register (``submission``) or edit (``version``) an organisation."""

    orgnr = StringField(_l("Organisation number"), validators=[Optional(), Length(max=20), valid_orgnr])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    kind = SelectField(_l("Kind"), choices=_kind_choices, validators=[DataRequired()])
    country = StringField(
        _l("Country code"),
        default="NO",
        validators=[DataRequired(), Regexp(r"^[A-Za-z]{2}$", message=_l("Two letters, e.g. NO or SE."))],
    )
    foreign_id = StringField(
        _l("Foreign registration number"),
        validators=[Optional(), Length(max=50)],
        description=_l("Only for organisations without a Norwegian organisation number."),
    )
    is_contracting_authority = BooleanField(_l("Contracting authority (public buyer)"))
    sectors = MultiCheckboxField(_l("Sectors"), coerce=str, validate_choice=False)
    new_sectors = StringField(
        _l("Other sectors"), validators=[Optional(), Length(max=300)], description=_l("Separate with commas.")
    )
    employees = IntegerField(_l("Employees"), validators=[Optional(), NumberRange(min=0)])
    inhabitants = IntegerField(_l("Inhabitants"), validators=[Optional(), NumberRange(min=0)])
    annual_turnover_nok = IntegerField(_l("Annual turnover (NOK)"), validators=[Optional(), NumberRange(min=0)])
    visiting_street = StringField(_l("Visiting address"), validators=[Optional(), Length(max=200)])
    visiting_postcode = StringField(_l("Postcode"), validators=[Optional(), Length(max=10)])
    visiting_city = StringField(_l("City"), validators=[Optional(), Length(max=100)])
    visiting_country = StringField(_l("Country code"), default="NO", validators=[Optional(), Length(min=2, max=2)])
    postal_street = StringField(_l("Postal address"), validators=[Optional(), Length(max=200)])
    postal_postcode = StringField(_l("Postcode"), validators=[Optional(), Length(max=10)])
    postal_city = StringField(_l("City"), validators=[Optional(), Length(max=100)])
    postal_country = StringField(_l("Country code"), default="NO", validators=[Optional(), Length(min=2, max=2)])
    website = URLField(_l("Website"), validators=[Optional(), Length(max=255)])
    parent_orgnr = StringField(
        _l("Parent organisation (organisation number)"),
        validators=[Optional(), Length(max=20), valid_orgnr],
        description=_l("For group discounts: the parent company must be registered here."),
    )
    transparency_act_scope = SelectField(
        _l("Covered by the Transparency Act"), choices=_scope_choices, default=TransparencyScope.UNKNOWN.value
    )
    invoice_email = EmailField(_l("Invoice email"), validators=[Optional(), Email(), Length(max=254)])
    buyer_reference_required = BooleanField(_l("Requires a buyer reference on invoices"))
    default_buyer_reference = StringField(_l("Default buyer reference"), validators=[Optional(), Length(max=100)])
    ehf_receiver = BooleanField(_l("Receives invoices as EHF"))
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=5000)])
    submit = SubmitField(_l("Save"))

    VALUE_FIELDS = (
        "orgnr", "name", "kind", "country", "foreign_id", "is_contracting_authority", "employees", "inhabitants",
        "annual_turnover_nok", "visiting_street", "visiting_postcode", "visiting_city", "visiting_country",
        "postal_street", "postal_postcode", "postal_city", "postal_country", "website", "parent_orgnr",
        "transparency_act_scope", "invoice_email", "buyer_reference_required", "default_buyer_reference",
        "ehf_receiver", "notes",
    )  # fmt: skip

    def sector_names(self) -> list[str]:
        extra = [name.strip() for name in (self.new_sectors.data or "").split(",")]
        return [name for name in [*(self.sectors.data or []), *extra] if name]


class ContactForm(OnceForm, VersionedForm, ValuesForm):
    """Staff add (``submission``) or edit (``version``) a contact person."""

    name = _name_field()
    title = _title_field()
    email = EmailField(_l("Work email"), validators=[Optional(), Email(), Length(max=254)])
    phone = _phone_field(description="+47 22 33 44 55")
    roles = _roles_field()
    newsletter_consent = _newsletter_field()
    submit = SubmitField(_l("Save"))

    VALUE_FIELDS = ("name", "title", "email", "phone", "newsletter_consent")


class DeactivateContactForm(FlaskForm):
    left_on = DateField(_l("Left on"), default=_today, validators=[DataRequired(), within_calendar])
    submit = SubmitField(_l("Mark as left"))


class StatusForm(FlaskForm):
    # Any value is passed on: the service refuses a transition the lifecycle does not allow, with its reason.
    to_status = SelectField(_l("New status"), validators=[DataRequired()], validate_choice=False)
    on_date = DateField(_l("Date"), default=_today, validators=[DataRequired(), within_calendar])
    end_on = DateField(
        _l("Membership ends on"),
        validators=[Optional(), within_calendar],
        description=_l("Only when notice is given; default 31 December."),
    )
    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=2000)])
    # The membership's status when the form was opened: a change by a colleague since makes the form outdated.
    status_was = HiddenField(validators=[Optional(), AnyOf([s.value for s in MembershipStatus])])
    submit = SubmitField(_l("Change status"))

    def set_choices(self, allowed: list[MembershipStatus]) -> None:
        self.to_status.choices = [(s.value, s.label) for s in allowed]


class MembershipForm(VersionedForm, FlaskForm):
    category_id = SelectField(_l("Category"), coerce=int)
    adviser_id = SelectField(_l("Adviser"), coerce=int)
    principles_version = StringField(_l("Principles version"), validators=[Optional(), Length(max=20)])
    principles_accepted_on = DateField(_l("Principles accepted on"), validators=[Optional(), within_calendar])
    submit = SubmitField(_l("Save"))


class FeeOverrideForm(VersionedForm, FlaskForm):
    """A membership's fee override; ``version`` is the membership's when the form was opened."""

    amount_nok = DecimalField(
        _l("Fee (NOK)"),
        places=2,
        validators=[Optional(), NumberRange(min=0)],
        description=_l("Leave empty to remove the override."),
    )
    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=2000)])
    submit = SubmitField(_l("Save fee"))


class LookupForm(FlaskForm):
    """The register look-up on the new-organisation page: a GET form that changes nothing."""

    class Meta:
        csrf = False

    lookup = StringField(_l("Organisation number"), validators=[DataRequired(), Length(max=20), valid_orgnr])
    submit = SubmitField(_l("Look up in the Brønnøysund register"))


class ApplicationForm(OnceForm, FlaskForm):
    """The public membership application."""

    orgnr = StringField(_l("Organisation number"), validators=[DataRequired(), Length(max=20), valid_orgnr])
    name = StringField(_l("Name of the organisation"), validators=[DataRequired(), Length(max=200)])
    category_id = SelectField(_l("Membership category"), coerce=int, validators=[DataRequired()])
    annual_turnover_nok = IntegerField(
        _l("Annual turnover (NOK)"),
        validators=[Optional(), NumberRange(min=0)],
        description=_l("Companies, organisations and state bodies: the fee follows the turnover."),
    )
    employees = IntegerField(_l("Employees"), validators=[Optional(), NumberRange(min=0)])
    inhabitants = IntegerField(
        _l("Inhabitants"),
        validators=[Optional(), NumberRange(min=0)],
        description=_l("Municipalities and counties: the fee follows the number of inhabitants."),
    )
    postal_street = StringField(_l("Postal address"), validators=[Optional(), Length(max=200)])
    postal_postcode = StringField(
        _l("Postcode"), validators=[Optional(), Regexp(r"^\d{4}$", message=_l("A Norwegian postcode has 4 digits."))]
    )
    postal_city = StringField(_l("City"), validators=[Optional(), Length(max=100)])
    invoice_email = EmailField(_l("Invoice email"), validators=[Optional(), Email(), Length(max=254)])
    main_name = StringField(_l("Your name"), validators=[DataRequired(), Length(max=200)])
    main_title = StringField(_l("Your title"), validators=[Optional(), Length(max=200)])
    main_email = EmailField(_l("Your work email"), validators=[DataRequired(), Email(), Length(max=254)])
    main_phone = StringField(_l("Your phone"), validators=[Optional(), Length(max=30)])
    invoice_name = StringField(_l("Invoice contact's name"), validators=[Optional(), Length(max=200)])
    invoice_email_contact = EmailField(
        _l("Invoice contact's email"),
        validators=[Optional(), Email(), Length(max=254)],
        description=_l("Leave empty if you handle the invoices yourself."),
    )
    accepts_principles = BooleanField(
        _l("We accept the declaration of principles and commit to due diligence and yearly reporting.")
    )
    # A honeypot: people never see or fill it; bots fill every field.
    homepage = StringField(_l("Leave this field empty"), validators=[Optional()])
    preview = SubmitField(_l("Show the fee"))
    submit = SubmitField(_l("Send application"))

    def validate_accepts_principles(self, field) -> None:
        if self.submit.data and not field.data:
            raise ValidationError(_l("You must accept the declaration of principles."))


class PortalProfileForm(VersionedForm, ValuesForm):
    """What a member's main contact may change about the organisation."""

    website = URLField(_l("Website"), validators=[Optional(), Length(max=255)])
    employees = IntegerField(_l("Employees"), validators=[Optional(), NumberRange(min=0)])
    visiting_street = StringField(_l("Visiting address"), validators=[Optional(), Length(max=200)])
    visiting_postcode = StringField(_l("Postcode"), validators=[Optional(), Length(max=10)])
    visiting_city = StringField(_l("City"), validators=[Optional(), Length(max=100)])
    postal_street = StringField(_l("Postal address"), validators=[Optional(), Length(max=200)])
    postal_postcode = StringField(_l("Postcode"), validators=[Optional(), Length(max=10)])
    postal_city = StringField(_l("City"), validators=[Optional(), Length(max=100)])
    invoice_email = EmailField(_l("Invoice email"), validators=[Optional(), Email(), Length(max=254)])
    default_buyer_reference = StringField(_l("Default buyer reference"), validators=[Optional(), Length(max=100)])
    submit = SubmitField(_l("Save"))

    VALUE_FIELDS = (
        "website", "employees", "visiting_street", "visiting_postcode", "visiting_city", "postal_street",
        "postal_postcode", "postal_city", "invoice_email", "default_buyer_reference",
    )  # fmt: skip


class PortalContactForm(VersionedForm, ValuesForm):
    name = _name_field()
    title = _title_field()
    phone = _phone_field()
    roles = _roles_field()
    newsletter_consent = _newsletter_field()
    submit = SubmitField(_l("Save"))

    VALUE_FIELDS = ("name", "title", "phone", "newsletter_consent")


class PortalInviteForm(OnceForm, ValuesForm):
    """The main contact invites a colleague to the portal."""

    name = _name_field()
    title = _title_field()
    email = EmailField(_l("Work email"), validators=[DataRequired(), Email(), Length(max=254)])
    phone = _phone_field()
    roles = _roles_field()
    submit = SubmitField(_l("Send invitation"))

    VALUE_FIELDS = ("name", "title", "email", "phone")


class ImportForm(OnceForm, FlaskForm):
    file = FileField(
        _l("File (CSV or XLSX)"),
        validators=[
            FileRequired(),
            FileAllowed(["csv", "xlsx"], _l("Upload a CSV or XLSX file.")),
            FileSize(max_size=5 * 1024 * 1024, message=_l("The file may be at most 5 MB.")),
        ],
    )
    submit = SubmitField(_l("Check the file"))


class ConfirmImportForm(FlaskForm):
    submit = SubmitField(_l("Import"))
