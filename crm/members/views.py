"""Staff screens of the member register under /staff/members."""

from __future__ import annotations

import logging
from decimal import Decimal

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
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
from sqlalchemy.orm import selectinload

from crm.auth.access import public, staff_required
from crm.auth.models import Role, User
from crm.errors import DomainError
from crm.extensions import db, limiter
from crm.members import services
from crm.members.brreg import BrregError, BrregUnavailable, lookup
from crm.members.fees import calculate_fee
from crm.members.forms import (
    ApplicationForm,
    ContactForm,
    DeactivateContactForm,
    FeeOverrideForm,
    LookupForm,
    MembershipForm,
    OrganisationForm,
    StatusForm,
)
from crm.members.listing import MemberFilters, filter_options, search_members
from crm.members.models import (
    Contact,
    Membership,
    MembershipCategory,
    MembershipStatus,
    Organisation,
    OrganisationKind,
    TransparencyScope,
)
from crm.members.panels import get_panel, panels, register_panel
from crm.ui import register_nav

logger = logging.getLogger(__name__)

bp = Blueprint("members", __name__, url_prefix="/staff/members")
# The public application form.
public_bp = Blueprint("membership", __name__, url_prefix="/apply")

EDITORS = (Role.ADVISER, Role.COORDINATOR)  # admins always pass
MEMBERSHIP_MANAGERS = (Role.COORDINATOR,)
FEE_MANAGERS = (Role.COORDINATOR, Role.FINANCE)


def _enum_arg(name: str, enum_cls):
    try:
        return enum_cls(request.args.get(name, ""))
    except ValueError:
        return None


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() else None


def _filters_from_args() -> MemberFilters:
    return MemberFilters(
        q=request.args.get("q", "")[:200],
        status=_enum_arg("status", MembershipStatus),
        kind=_enum_arg("kind", OrganisationKind),
        category_id=_int_arg("category"),
        adviser_id=_int_arg("adviser"),
        sector_id=_int_arg("sector"),
        transparency=_enum_arg("transparency", TransparencyScope),
        sort=request.args.get("sort", "name"),
    )


def _load_organisation(organisation_id: int) -> Organisation:
    organisation = db.session.get(Organisation, organisation_id)
    if organisation is None:
        abort(404)
    return organisation


def _field_error(form, exc: DomainError) -> None:
    """Show a refused operation's message next to its field (or as a flash) after undoing its flushes."""
    db.session.rollback()
    field = getattr(form, exc.field, None) if exc.field else None
    if field is not None:
        field.errors = [*field.errors, exc.message] if isinstance(field.errors, list) else [exc.message]
    else:
        flash(exc.message, "danger")


@bp.route("/")
@staff_required()
def index():
    filters = _filters_from_args()
    page_number = _int_arg("page") or 1
    page, counts = search_members(filters, page=page_number, per_page=current_app.config["PER_PAGE"])
    args = {key: value for key, value in request.args.items() if key != "page" and value}
    return render_template(
        "members/list.html",
        page=page,
        counts=counts,
        filters=filters,
        options=filter_options(),
        args=args,
        status_args={key: value for key, value in args.items() if key != "status"},
        can_edit=_can_edit(),
        statuses=list(MembershipStatus),
        kinds=list(OrganisationKind),
        scopes=list(TransparencyScope),
    )


@bp.route("/export.<fmt>")
@staff_required()
def export(fmt: str):
    from crm.members.export import export_rows, record_export, to_csv, to_xlsx

    if fmt not in ("csv", "xlsx"):
        abort(404)
    filters = _filters_from_args()
    headers, rows = export_rows(filters)
    record_export(filters, fmt=fmt, count=len(rows), actor=current_user)
    db.session.commit()
    body = to_csv(headers, rows) if fmt == "csv" else to_xlsx(headers, rows)
    mimetype = (
        "text/csv; charset=utf-8"
        if fmt == "csv"
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    filename = f"medlemmer-{services.today().isoformat()}.{fmt}"
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


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
        try:
            organisation = services.create_organisation(form.values(), actor=current_user, sectors=form.sector_names())
        except services.DuplicateOrganisation as exc:
            duplicate = db.session.get(Organisation, exc.existing_id)
            _field_error(form, exc)
        except DomainError as exc:
            _field_error(form, exc)
        else:
            db.session.commit()
            flash(_("%(name)s was registered.", name=organisation.name), "success")
            return redirect(url_for("members.show", organisation_id=organisation.id))
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
    except BrregError as exc:
        return {"level": "danger", "message": exc.message}
    for key, value in unit.form_values().items():
        getattr(form, key).data = value
    return {"level": "success", "message": _("Filled in from the Brønnøysund register: %(name)s.", name=unit.name)}


def _sector_choices(form: OrganisationForm, organisation: Organisation | None = None) -> None:
    from crm.members.listing import filter_options as options

    form.sectors.choices = [(s.name, s.name) for s in options()["sectors"]]
    if organisation is not None and request.method == "GET":
        form.sectors.data = [s.name for s in organisation.sectors]


@bp.route("/<int:organisation_id>")
@staff_required()
def show(organisation_id: int):
    organisation = _load_organisation(organisation_id)
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
    organisation = _load_organisation(organisation_id)
    form = OrganisationForm(obj=organisation)
    _sector_choices(form, organisation)
    if request.method == "GET":
        form.parent_orgnr.data = organisation.parent.orgnr if organisation.parent else None
        form.kind.data = organisation.kind.value
        form.transparency_act_scope.data = organisation.transparency_act_scope.value
    duplicate = None
    if form.validate_on_submit():
        try:
            changed = services.update_organisation(
                organisation, form.values(), actor=current_user, sectors=form.sector_names()
            )
        except services.DuplicateOrganisation as exc:
            duplicate = db.session.get(Organisation, exc.existing_id)
            _field_error(form, exc)
        except DomainError as exc:
            _field_error(form, exc)
        else:
            db.session.commit()
            flash(_("Saved.") if changed else _("Nothing was changed."), "success" if changed else "info")
            return redirect(url_for("members.show", organisation_id=organisation.id))
    return render_template(
        "members/organisation_form.html",
        form=form,
        lookup_form=None,
        register_note=None,
        duplicate=duplicate,
        organisation=organisation,
    )


@bp.route("/<int:organisation_id>/contacts/new", methods=["GET", "POST"])
@staff_required(*EDITORS)
def new_contact(organisation_id: int):
    organisation = _load_organisation(organisation_id)
    form = ContactForm()
    duplicate = None
    if form.validate_on_submit():
        try:
            contact = services.add_contact(organisation, form.values(), roles=form.roles.data, actor=current_user)
        except services.DuplicateContact as exc:
            duplicate = db.session.get(Contact, exc.existing_id)
            _field_error(form, exc)
        except DomainError as exc:
            _field_error(form, exc)
        else:
            db.session.commit()
            flash(_("%(name)s was added.", name=contact.name), "success")
            return redirect(url_for("members.show", organisation_id=organisation.id, tab="contacts"))
    return render_template(
        "members/contact_form.html", form=form, organisation=organisation, contact=None, duplicate=duplicate
    )


def _load_contact(contact_id: int) -> Contact:
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        abort(404)
    return contact


@bp.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@staff_required(*EDITORS)
def edit_contact(contact_id: int):
    contact = _load_contact(contact_id)
    form = ContactForm(obj=contact)
    if request.method == "GET":
        form.roles.data = [role.value for role in contact.sorted_roles]
        form.phone.data = contact.phone_display
    duplicate = None
    if form.validate_on_submit():
        try:
            changed = services.update_contact(contact, form.values(), roles=form.roles.data, actor=current_user)
        except services.DuplicateContact as exc:
            duplicate = db.session.get(Contact, exc.existing_id)
            _field_error(form, exc)
        except DomainError as exc:
            _field_error(form, exc)
        else:
            db.session.commit()
            flash(_("Saved.") if changed else _("Nothing was changed."), "success" if changed else "info")
            return redirect(url_for("members.show", organisation_id=contact.organisation_id, tab="contacts"))
    return render_template(
        "members/contact_form.html",
        form=form,
        organisation=contact.organisation,
        contact=contact,
        duplicate=duplicate,
        deactivate_form=DeactivateContactForm(),
    )


@bp.route("/contacts/<int:contact_id>/deactivate", methods=["POST"])
@staff_required(*EDITORS)
def deactivate_contact(contact_id: int):
    contact = _load_contact(contact_id)
    form = DeactivateContactForm()
    if form.validate_on_submit():
        try:
            services.deactivate_contact(contact, actor=current_user, left_on=form.left_on.data)
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        else:
            db.session.commit()
            flash(_("%(name)s is marked as having left.", name=contact.name), "success")
    else:
        flash(_("Check the date."), "danger")
    return redirect(url_for("members.show", organisation_id=contact.organisation_id, tab="contacts"))


@bp.route("/<int:organisation_id>/status", methods=["GET", "POST"])
@staff_required(*MEMBERSHIP_MANAGERS)
def change_status(organisation_id: int):
    organisation = _load_organisation(organisation_id)
    membership = organisation.membership
    form = StatusForm()
    form.set_choices(services.allowed_transitions(membership.status))
    if form.validate_on_submit():
        try:
            services.change_membership_status(
                membership,
                _status_from_form(form.to_status.data),
                actor=current_user,
                reason=form.reason.data,
                on_date=form.on_date.data,
                end_on=form.end_on.data,
            )
        except DomainError as exc:
            _field_error(form, exc)
        else:
            db.session.commit()
            flash(_("The membership is now: %(status)s.", status=membership.status.label), "success")
            return redirect(url_for("members.show", organisation_id=organisation.id, tab="membership"))
    return render_template("members/status_form.html", form=form, organisation=organisation, membership=membership)


def _status_from_form(value: str) -> MembershipStatus:
    try:
        return MembershipStatus(value)
    except ValueError:
        raise DomainError(_("Choose a status from the list."), field="to_status") from None


@bp.route("/<int:organisation_id>/membership", methods=["POST"])
@staff_required(*MEMBERSHIP_MANAGERS)
def update_membership(organisation_id: int):
    organisation = _load_organisation(organisation_id)
    membership = organisation.membership
    form = _membership_form(membership)
    if form.validate_on_submit():
        try:
            services.update_membership_details(
                membership,
                actor=current_user,
                category=db.session.get(MembershipCategory, form.category_id.data),
                principles_version=form.principles_version.data or "",
                principles_accepted_on=form.principles_accepted_on.data,
                change_adviser=True,
                adviser=db.session.get(User, form.adviser_id.data) if form.adviser_id.data else None,
            )
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        else:
            db.session.commit()
            flash(_("Saved."), "success")
    else:
        flash(_("Check the membership details."), "danger")
    return redirect(url_for("members.show", organisation_id=organisation.id, tab="membership"))


@bp.route("/<int:organisation_id>/fee-override", methods=["POST"])
@staff_required(*FEE_MANAGERS)
def fee_override(organisation_id: int):
    organisation = _load_organisation(organisation_id)
    form = FeeOverrideForm()
    if form.validate_on_submit():
        amount = form.amount_nok.data
        try:
            services.set_fee_override(
                organisation.membership,
                None if amount is None else int((Decimal(amount) * 100).to_integral_value()),
                reason=form.reason.data,
                actor=current_user,
            )
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        else:
            db.session.commit()
            flash(_("The fee was saved."), "success")
    else:
        flash(_("Check the amount."), "danger")
    return redirect(url_for("members.show", organisation_id=organisation.id, tab="fee"))


def _membership_form(membership: Membership) -> MembershipForm:
    options = filter_options()
    form = MembershipForm(
        data=None
        if request.method == "POST"
        else {
            "category_id": membership.category_id,
            "adviser_id": membership.adviser_id or 0,
            "principles_version": membership.principles_version,
            "principles_accepted_on": membership.principles_accepted_on,
        }
    )
    form.category_id.choices = [(c.id, c.name) for c in options["categories"]]
    form.adviser_id.choices = [(0, _("No adviser")), *((u.id, u.full_name) for u in options["advisers"])]
    return form


# --- the organisation page's own tabs ---------------------------------------------------------------------

AUDIT_ACTION_LABELS = {
    "members.organisation.created": _l("Organisation registered"),
    "members.organisation.updated": _l("Organisation changed"),
    "members.contact.created": _l("Contact added"),
    "members.contact.updated": _l("Contact changed"),
    "members.contact.deactivated": _l("Contact marked as left"),
    "members.contact.reactivated": _l("Contact reactivated"),
    "members.membership.status_changed": _l("Membership status changed"),
    "members.membership.updated": _l("Membership changed"),
    "members.membership.adviser_assigned": _l("Adviser assigned"),
    "members.membership.fee_overridden": _l("Fee overridden"),
    "members.membership.fee_override_removed": _l("Fee override removed"),
}


def _can_edit() -> bool:
    return current_user.has_role(Role.ADMIN, *EDITORS)


def _profile_panel(organisation: Organisation) -> str:
    return render_template("members/_profile.html", organisation=organisation, can_edit=_can_edit())


def _contacts_panel(organisation: Organisation) -> str:
    contacts = db.session.scalars(
        db.select(Contact)
        .where(Contact.organisation_id == organisation.id)
        .options(selectinload(Contact.role_links))
        .order_by(Contact.is_active.desc(), Contact.name)
    ).all()
    return render_template("members/_contacts.html", organisation=organisation, contacts=contacts, can_edit=_can_edit())


def _membership_panel(organisation: Organisation) -> str:
    membership = organisation.membership
    return render_template(
        "members/_membership.html",
        organisation=organisation,
        membership=membership,
        form=_membership_form(membership),
        can_manage=current_user.has_role(Role.ADMIN, *MEMBERSHIP_MANAGERS),
    )


def _fee_panel(organisation: Organisation) -> str:
    from crm.members.services import today

    year = request.args.get("year", type=int) or today().year
    try:
        calculation, problem = calculate_fee(organisation.membership, year), None
    except DomainError as exc:
        calculation, problem = None, exc.message
    membership = organisation.membership
    form = FeeOverrideForm(
        data={
            "amount_nok": Decimal(membership.fee_override_ore) / 100
            if membership.fee_override_ore is not None
            else None,
            "reason": membership.fee_override_reason,
        }
    )
    return render_template(
        "members/_fee.html",
        organisation=organisation,
        year=year,
        calculation=calculation,
        problem=problem,
        form=form,
        can_override=current_user.has_role(Role.ADMIN, *FEE_MANAGERS),
    )


def _audit_panel(organisation: Organisation) -> str:
    entries = services.organisation_audit_trail(organisation)
    return render_template(
        "members/_audit.html", organisation=organisation, entries=entries, action_labels=AUDIT_ACTION_LABELS
    )


register_panel("profile", _l("Profile"), _profile_panel, order=10)
register_panel("contacts", _l("Contacts"), _contacts_panel, order=20)
register_panel("membership", _l("Membership"), _membership_panel, order=30)
register_panel("fee", _l("Fee"), _fee_panel, order=40)
register_panel("audit", _l("Audit trail"), _audit_panel, order=900)
register_nav(_l("Members"), "members.index", audience="staff", order=10)


# --- the public application form -------------------------------------------------------------------------


@public_bp.route("/", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["APPLICATION_LIMIT_PER_IP"], methods=["POST"])
def apply():
    form = ApplicationForm()
    categories = {c.id: c for c in filter_options()["categories"]}
    form.category_id.choices = [(c.id, c.name) for c in categories.values()]
    note = _prefill_application(form, categories) if request.method == "GET" and request.args.get("lookup") else None
    fee = problem = None
    if form.validate_on_submit():
        data = _application_data(form, categories[form.category_id.data])
        if form.submit.data:
            if form.homepage.data:  # the honeypot: answer as if all went well, store nothing
                logger.info("Application honeypot filled from %s", request.remote_addr)
                return redirect(url_for("membership.thanks"))
            try:
                services.submit_application(data, ip_address=request.remote_addr)
            except DomainError as exc:
                _field_error(form, exc)
            else:
                db.session.commit()
                return redirect(url_for("membership.thanks"))
        fee, problem = _preview(data)
    return render_template("members/apply.html", form=form, note=note, fee=fee, problem=problem)


@public_bp.route("/thanks")
@public
def thanks():
    return render_template("members/apply_thanks.html")


def _kind_for(category: MembershipCategory) -> OrganisationKind:
    try:
        return OrganisationKind(category.code)
    except ValueError:
        return OrganisationKind.COMPANY


def _application_data(form: ApplicationForm, category: MembershipCategory) -> services.ApplicationData:
    fields = services.ApplicationData.__dataclass_fields__
    values = {name: getattr(form, name).data for name in fields if hasattr(form, name) and name != "category"}
    return services.ApplicationData(**values, category=category, kind=_kind_for(category))


def _preview(data: services.ApplicationData):
    from crm.members.fees import preview_fee

    try:
        calculation = preview_fee(
            data.category,
            kind=data.kind,
            annual_turnover_nok=data.annual_turnover_nok,
            employees=data.employees,
            inhabitants=data.inhabitants,
            start_on=services.today(),
        )
    except DomainError as exc:
        return None, exc.message
    return calculation, None


def _prefill_application(form: ApplicationForm, categories: dict[int, MembershipCategory]) -> dict | None:
    try:
        unit = lookup(request.args["lookup"])
    except DomainError as exc:
        form.orgnr.data = request.args["lookup"][:20]
        return {"level": "warning", "message": exc.message}
    form.orgnr.data, form.name.data, form.employees.data = unit.orgnr, unit.name, unit.employees
    address = unit.postal_address or unit.business_address
    if address is not None:
        form.postal_street.data, form.postal_postcode.data, form.postal_city.data = (
            address.street,
            address.postcode,
            address.city,
        )
    by_code = {c.code: c.id for c in categories.values()}
    form.category_id.data = by_code.get(unit.suggested_kind.value, form.category_id.data)
    return {"level": "success", "message": _("Filled in from the Brønnøysund register: %(name)s.", name=unit.name)}


def init_app(app: Flask) -> None:
    from crm.members.cli import register_commands

    register_commands()
    app.register_blueprint(public_bp)
