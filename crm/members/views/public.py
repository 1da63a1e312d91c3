"""The public membership application form under /apply."""

from __future__ import annotations

import logging
from functools import partial

from flask import (
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from crm.auth.access import public
from crm.errors import DomainError
from crm.extensions import limiter
from crm.members import services
from crm.members.brreg import lookup
from crm.members.forms import (
    ApplicationForm,
)
from crm.members.listing import filter_options
from crm.members.models import (
    MembershipCategory,
    Organisation,
    OrganisationKind,
)
from crm.members.views.blueprints import public_bp
from crm.members.views.common import save_form
from crm.submissions import create_once

logger = logging.getLogger(__name__)


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
            submit = partial(services.submit_application, data, ip_address=request.remote_addr)
            if save_form(form, lambda: create_once(form.submission.data, Organisation, submit)).ok:
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
