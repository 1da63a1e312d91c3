"""The public membership application form under /apply."""

from __future__ import annotations

import logging
from functools import partial

from flask import (
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext

from crm.auth.access import public
from crm.errors import DomainError
from crm.extensions import db, limiter, minutes_until_retry
from crm.members import services
from crm.members.brreg import BrregSubUnit, lookup
from crm.members.forms import (
    ApplicationForm,
)
from crm.members.listing import filter_options
from crm.members.models import (
    MembershipCategory,
    Organisation,
    OrganisationKind,
    format_orgnr,
)
from crm.members.views.blueprints import public_bp
from crm.members.views.common import save_form
from crm.submissions import create_once

logger = logging.getLogger(__name__)


# --- the public application form -------------------------------------------------------------------------

# Only an accepted submission counts towards the limits: previews, register look-ups and forms sent back with a
# refusal are free (a bot filling the honeypot counts too). Colleagues share an office address, so the tight
# limit is per address *and* organisation number (the same organisation applied for again and again); a looser
# one per address alone stops a flood of organisations. Over either, the form comes back as it was typed.


def _not_a_submission() -> bool:
    return request.form.get("submit") is None


def _submitted(response) -> bool:
    return bool(g.get("application_submitted"))


def _organisation_key() -> str:
    digits = "".join(ch for ch in request.form.get("orgnr", "")[:20] if ch.isdigit())
    return f"apply-organisation:{request.remote_addr}:{digits}"


@public_bp.route("/", methods=["GET", "POST"])
@public
@limiter.limit(
    lambda: current_app.config["APPLICATION_LIMIT_PER_IP"],
    methods=["POST"],
    exempt_when=_not_a_submission,
    deduct_when=_submitted,
)
@limiter.limit(
    lambda: current_app.config["APPLICATION_LIMIT_PER_ORGANISATION"],
    methods=["POST"],
    key_func=_organisation_key,
    exempt_when=_not_a_submission,
    deduct_when=_submitted,
)
def apply():
    form, categories = _application_form()
    note = _prefill_application(form, categories) if request.method == "GET" and request.args.get("lookup") else None
    fee = problem = None
    if form.validate_on_submit():
        data = _application_data(form, categories[form.category_id.data])
        if form.submit.data:
            if form.homepage.data:  # the honeypot: answer as if all went well, store nothing
                logger.info("Application honeypot filled from %s", request.remote_addr)
                g.application_submitted = True
                return redirect(url_for("membership.thanks"))
            submit = partial(services.submit_application, data, ip_address=request.remote_addr)
            if save_form(form, lambda: create_once(form.submission.data, Organisation, submit)).ok:
                g.application_submitted = True  # only an accepted application counts towards the limits
                return redirect(url_for("membership.thanks"))
        fee, problem = _preview(data)
    return render_template("members/apply.html", form=form, note=note, fee=fee, problem=problem)


@public_bp.errorhandler(429)
def too_many_applications(exc):
    """Over a limit: the form again, with everything typed and its fee, and when to try again."""
    db.session.rollback()
    form, categories = _application_form()
    fee = problem = None
    if form.validate():
        fee, problem = _preview(_application_data(form, categories[form.category_id.data]))
    minutes = minutes_until_retry()
    flash(
        ngettext(
            "Many applications have been sent from your address in a short time. The application is not sent yet:"
            " try again in %(num)d minute. What you typed is kept.",
            "Many applications have been sent from your address in a short time. The application is not sent yet:"
            " try again in %(num)d minutes. What you typed is kept.",
            minutes,
        ),
        "danger",
    )
    return render_template("members/apply.html", form=form, note=None, fee=fee, problem=problem), 429


def _application_form() -> tuple[ApplicationForm, dict[int, MembershipCategory]]:
    form = ApplicationForm()
    categories = {c.id: c for c in filter_options()["categories"]}
    form.category_id.choices = [(c.id, c.name) for c in categories.values()]
    return form, categories


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
        main_orgnr = exc.main_orgnr if isinstance(exc, BrregSubUnit) else None
        return {
            "level": "warning",
            "message": exc.message,
            "main_orgnr": main_orgnr,
            "main_display": format_orgnr(main_orgnr),
        }
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
    return {
        "level": "warning" if unit.warnings else "success",
        "message": _("Filled in from the Brønnøysund register: %(name)s.", name=unit.name),
        "warnings": unit.warnings,
    }
