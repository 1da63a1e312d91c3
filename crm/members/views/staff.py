"""Staff screens of the member register under /staff/members."""

from __future__ import annotations

import logging
from decimal import Decimal
from functools import partial

from flask import (
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup

from crm.auth.access import staff_required
from crm.auth.models import Role, User
from crm.errors import UNCHECKED, DomainError, Outcome, attempt
from crm.extensions import db
from crm.members import services
from crm.members.brreg import BrregError, BrregSubUnit, BrregUnavailable, lookup
from crm.members.forms import (
    ContactForm,
    DeactivateContactForm,
    FeeOverrideForm,
    LookupForm,
    OrganisationForm,
    StatusForm,
)
from crm.members.listing import MemberFilters, filter_options, search_members
from crm.members.models import (
    Contact,
    MembershipCategory,
    MembershipStatus,
    Organisation,
    OrganisationKind,
    TransparencyScope,
    format_orgnr,
)
from crm.members.panels import get_panel, panels
from crm.members.views.blueprints import bp
from crm.members.views.common import contact_form, save_form
from crm.request_args import ID_MAX, int_arg
from crm.submissions import create_once
from crm.ui import register_nav

logger = logging.getLogger(__name__)


EDITORS = (Role.ADVISER, Role.COORDINATOR)  # admins always pass
MEMBERSHIP_MANAGERS = (Role.COORDINATOR,)
FEE_MANAGERS = (Role.COORDINATOR, Role.FINANCE)


def can_edit() -> bool:
    return current_user.has_role(Role.ADMIN, *EDITORS)


def _enum_arg(name: str, enum_cls):
    try:
        return enum_cls(request.args.get(name, ""))
    except ValueError:
        return None


def _filter_id(name: str) -> int | None:
    """An id filter; 0 asks for none (``?adviser=0``: members without an adviser)."""
    return int_arg(name, low=0, high=ID_MAX)


def _filters_from_args() -> MemberFilters:
    return MemberFilters(
        q=request.args.get("q", "")[:200],
        status=_enum_arg("status", MembershipStatus),
        kind=_enum_arg("kind", OrganisationKind),
        category_id=_filter_id("category"),
        adviser_id=_filter_id("adviser"),
        sector_id=_filter_id("sector"),
        transparency=_enum_arg("transparency", TransparencyScope),
        sort=request.args.get("sort", "name"),
    )


def _flash_saved(changed: bool) -> None:
    flash(_("Saved.") if changed else _("Nothing was changed."), "success" if changed else "info")


@bp.route("/")
@staff_required()
def index():
    filters = _filters_from_args()
    page, counts = search_members(filters)
    args = {key: value for key, value in request.args.items() if key != "page" and value}
    return render_template(
        "members/list.html",
        page=page,
        counts=counts,
        filters=filters,
        options=filter_options(),
        args=args,
        status_args={key: value for key, value in args.items() if key != "status"},
        can_edit=can_edit(),
        can_view_fees=current_user.has_role(Role.ADMIN, *FEE_MANAGERS),
        statuses=list(MembershipStatus),
        kinds=list(OrganisationKind),
        scopes=list(TransparencyScope),
    )


@bp.route("/export.<fmt>")
@staff_required()
def export(fmt: str):
    from crm.exports import FORMATS, table_response
    from crm.members.export import export_rows, record_export

    if fmt not in FORMATS:
        abort(404)
    filters = _filters_from_args()
    headers, rows = export_rows(filters)
    record_export(filters, fmt=fmt, count=len(rows), actor=current_user)
    db.session.commit()
    filename = f"medlemmer-{services.today().isoformat()}"
    return table_response(headers, rows, fmt=fmt, filename=filename, sheet_title=_("Members"))


@bp.route("/new", methods=["GET", "POST"])
@staff_required(*EDITORS)
def new_organisation():
    lookup_form = LookupForm(request.args)
    form = OrganisationForm()
    _sector_choices(form)
    register_note = None
    if request.method == "GET" and request.args.get("lookup"):
        register_note = _prefill_from_register(form, lookup_form)
    duplicate = None
    if form.validate_on_submit():
        create = partial(services.create_organisation, form.values(), actor=current_user, sectors=form.sector_names())
        saved = save_form(form, lambda: create_once(form.submission.data, Organisation, create))
        if saved.ok:
            flash(_("%(name)s was registered.", name=saved.result.name), "success")
            return redirect(url_for("members.show", organisation_id=saved.result.id))
        duplicate = saved.duplicate
    return render_template(
        "members/organisation_form.html",
        form=form,
        lookup_form=lookup_form,
        register_note=register_note,
        duplicate=duplicate,
        organisation=None,
    )


def _prefill_from_register(form: OrganisationForm, lookup_form: LookupForm) -> dict | None:
    if not lookup_form.validate():
        return None
    existing = services.find_organisation_by_orgnr(services.normalise_orgnr(lookup_form.lookup.data))
    if existing is not None:
        return {
            "level": "warning",
            "message": _("%(name)s is already registered.", name=existing.name),
            "existing": existing,
        }
    try:
        unit = lookup(lookup_form.lookup.data)
    except BrregUnavailable as exc:
        form.orgnr.data = services.normalise_orgnr(lookup_form.lookup.data)
        return {"level": "warning", "message": exc.message}
    except BrregSubUnit as exc:
        form.orgnr.data = services.normalise_orgnr(lookup_form.lookup.data)
        return {
            "level": "warning",
            "message": exc.message,
            "main_orgnr": exc.main_orgnr,
            "main_display": format_orgnr(exc.main_orgnr),
        }
    except BrregError as exc:
        return {"level": "danger", "message": exc.message}
    for key, value in unit.form_values().items():
        getattr(form, key).data = value
    return {
        "level": "warning" if unit.warnings else "success",
        "message": _("Filled in from the Brønnøysund register: %(name)s.", name=unit.name),
        "warnings": unit.warnings,
    }


def _sector_choices(form: OrganisationForm) -> None:
    form.sectors.choices = [(s.name, s.name) for s in filter_options()["sectors"]]


def _organisation_form(organisation: Organisation, *, current: bool = False) -> OrganisationForm:
    """The edit form: the posted values, or (on GET, or ``current`` after a refused save) the saved ones."""
    form = OrganisationForm(formdata=None, obj=organisation) if current else OrganisationForm(obj=organisation)
    _sector_choices(form)
    if current or request.method == "GET":
        form.sectors.data = [s.name for s in organisation.sectors]
        form.parent_orgnr.data = organisation.parent.orgnr if organisation.parent else None
        form.kind.data = organisation.kind.value
        form.transparency_act_scope.data = organisation.transparency_act_scope.value
    return form


@bp.route("/<int:organisation_id>")
@staff_required()
def show(organisation_id: int):
    organisation = db.get_or_404(Organisation, organisation_id)
    tabs = panels()
    key = request.args.get("tab") or (tabs[0].key if tabs else "")
    panel = get_panel(key)
    if panel is None or panel.is_endpoint:
        abort(404)
    return render_template(
        "members/organisation.html",
        organisation=organisation,
        tabs=tabs,
        active=panel,
        # Panel callables return HTML rendered by their own (autoescaped) templates.
        content=Markup(panel.target(organisation)),  # noqa: S704
    )


@bp.route("/<int:organisation_id>/edit", methods=["GET", "POST"])
@staff_required(*EDITORS)
def edit_organisation(organisation_id: int):
    organisation = db.get_or_404(Organisation, organisation_id)
    form = _organisation_form(organisation)
    saved = Outcome(ok=False)
    if form.validate_on_submit():
        saved = save_form(
            form,
            lambda: services.update_organisation(
                organisation,
                form.values(),
                actor=current_user,
                sectors=form.sector_names(),
                version=form.opened_version,
            ),
        )
        if saved.ok:
            _flash_saved(saved.result)
            return redirect(url_for("members.show", organisation_id=organisation.id))
        if saved.stale:
            form = _organisation_form(organisation, current=True)
    return render_template(
        "members/organisation_form.html",
        form=form,
        lookup_form=None,
        register_note=None,
        duplicate=saved.duplicate,
        organisation=organisation,
    ), saved.status


@bp.route("/<int:organisation_id>/contacts/new", methods=["GET", "POST"])
@staff_required(*EDITORS)
def new_contact(organisation_id: int):
    organisation = db.get_or_404(Organisation, organisation_id)
    form = ContactForm()
    duplicate = None
    if form.validate_on_submit():
        add = partial(services.add_contact, organisation, form.values(), roles=form.roles.data, actor=current_user)
        saved = save_form(form, lambda: create_once(form.submission.data, Contact, add))
        if saved.ok:
            flash(_("%(name)s was added.", name=saved.result.name), "success")
            return redirect(url_for("members.show", organisation_id=organisation.id, tab="contacts"))
        duplicate = saved.duplicate
    return render_template(
        "members/contact_form.html", form=form, organisation=organisation, contact=None, duplicate=duplicate
    )


@bp.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@staff_required(*EDITORS)
def edit_contact(contact_id: int):
    contact = db.get_or_404(Contact, contact_id)
    form = contact_form(ContactForm, contact)
    saved = Outcome(ok=False)
    if form.validate_on_submit():
        saved = save_form(
            form,
            lambda: services.update_contact(
                contact, form.values(), roles=form.roles.data, actor=current_user, version=form.opened_version
            ),
        )
        if saved.ok:
            _flash_saved(saved.result)
            return redirect(url_for("members.show", organisation_id=contact.organisation_id, tab="contacts"))
        if saved.stale:
            form = contact_form(ContactForm, contact, current=True)
    return render_template(
        "members/contact_form.html",
        form=form,
        organisation=contact.organisation,
        contact=contact,
        duplicate=saved.duplicate,
        deactivate_form=DeactivateContactForm(),
    ), saved.status


@bp.route("/contacts/<int:contact_id>/deactivate", methods=["POST"])
@staff_required(*EDITORS)
def deactivate_contact(contact_id: int):
    contact = db.get_or_404(Contact, contact_id)
    form = DeactivateContactForm()
    if form.validate_on_submit():
        if attempt(lambda: services.deactivate_contact(contact, actor=current_user, left_on=form.left_on.data)).ok:
            flash(_("%(name)s is marked as having left.", name=contact.name), "success")
    else:
        flash(_("Check the date."), "danger")
    return redirect(url_for("members.show", organisation_id=contact.organisation_id, tab="contacts"))


@bp.route("/contacts/<int:contact_id>/invite", methods=["POST"])
@staff_required(*EDITORS)
def invite_contact(contact_id: int):
    contact = db.get_or_404(Contact, contact_id)  # CSRFProtect has checked the form's token already
    invited = attempt(lambda: services.invite_contact_by_staff(contact, actor=current_user))
    if invited.ok:
        if invited.result:
            flash(_("A portal invitation was sent by email to %(names)s.", names=contact.name), "success")
        else:
            flash(_("%(name)s already has a password and can log in to the portal.", name=contact.name), "info")
    return redirect(url_for("members.edit_contact", contact_id=contact.id))


@bp.route("/<int:organisation_id>/status", methods=["GET", "POST"])
@staff_required(*MEMBERSHIP_MANAGERS)
def change_status(organisation_id: int):
    organisation = db.get_or_404(Organisation, organisation_id)
    membership = organisation.membership
    form = _membership_status_form(membership)
    saved = Outcome(ok=False)
    if form.validate_on_submit():
        saved = save_form(
            form,
            lambda: services.change_membership_status(
                membership,
                _status_from_form(form.to_status.data),
                actor=current_user,
                reason=form.reason.data,
                on_date=form.on_date.data,
                end_on=form.end_on.data,
                status_was=_status_from_form(form.status_was.data) if form.status_was.data else UNCHECKED,
            ),
        )
        if saved.ok:
            invited = ", ".join(contact.name for contact in saved.result.invited)
            flash(_("The membership is now: %(status)s.", status=membership.status.label), "success")
            if invited:
                flash(_("A portal invitation was sent by email to %(names)s.", names=invited), "info")
            return redirect(url_for("members.show", organisation_id=organisation.id, tab="membership"))
        if saved.stale:
            form = _membership_status_form(membership, current=True)
    return render_template(
        "members/status_form.html", form=form, organisation=organisation, membership=membership
    ), saved.status


def _membership_status_form(membership, *, current: bool = False) -> StatusForm:
    """The status form: the posted values, or (``current``: after a refused save) an empty one at the saved
    status. ``status_was`` is the status it was opened at; a post without it (a page from before the field) is
    checked against the membership's own status."""
    saved = {"status_was": membership.status.value}
    form = StatusForm(formdata=None, data=saved) if current else StatusForm(data=saved)
    form.set_choices(services.allowed_transitions(membership.status))
    return form


def _status_from_form(value: str) -> MembershipStatus:
    try:
        return MembershipStatus(value)
    except ValueError:
        raise DomainError(_("Choose a status from the list."), field="to_status") from None


@bp.route("/<int:organisation_id>/membership", methods=["POST"])
@staff_required(*MEMBERSHIP_MANAGERS)
def update_membership(organisation_id: int):
    organisation = db.get_or_404(Organisation, organisation_id)
    membership = organisation.membership
    from crm.members.views.tabs import membership_form

    form = membership_form(membership)
    if form.validate_on_submit():
        saved = attempt(
            lambda: services.update_membership_details(
                membership,
                actor=current_user,
                category=db.session.get(MembershipCategory, form.category_id.data),
                principles_version=form.principles_version.data or "",
                principles_accepted_on=form.principles_accepted_on.data,
                change_adviser=True,
                adviser=db.session.get(User, form.adviser_id.data) if form.adviser_id.data else None,
                version=form.opened_version,
            )
        )
        if saved.ok:
            flash(_("Saved."), "success")
    else:
        flash(_("Check the membership details."), "danger")
    return redirect(url_for("members.show", organisation_id=organisation.id, tab="membership"))


@bp.route("/<int:organisation_id>/fee-override", methods=["POST"])
@staff_required(*FEE_MANAGERS)
def fee_override(organisation_id: int):
    organisation = db.get_or_404(Organisation, organisation_id)
    # A post without the version field (a page from before) is checked against the membership's own version.
    form = FeeOverrideForm(data={"version": organisation.membership.version})
    if form.validate_on_submit():
        amount = form.amount_nok.data
        saved = attempt(
            lambda: services.set_fee_override(
                organisation.membership,
                None if amount is None else int((Decimal(amount) * 100).to_integral_value()),
                reason=form.reason.data,
                actor=current_user,
                version=form.opened_version,
            )
        )
        if saved.ok:
            flash(_("The fee was saved."), "success")
    else:
        flash(_("Check the amount."), "danger")
    return redirect(url_for("members.show", organisation_id=organisation.id, tab="fee"))


register_nav(_l("Members"), "members.index", audience="staff", order=10)
