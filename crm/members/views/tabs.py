"""The organisation page's own tabs (registered in the panel registry like any later feature's)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import (
    render_template,
    request,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import selectinload

from crm.audit.details import names_from, register_audit_details
from crm.auth.models import Role
from crm.errors import DomainError
from crm.extensions import db
from crm.i18n import format_money
from crm.members import services
from crm.members.fees import calculate_fee
from crm.members.forms import (
    ContactForm,
    FeeOverrideForm,
    MembershipForm,
    OrganisationForm,
)
from crm.members.listing import filter_options
from crm.members.models import (
    Contact,
    ContactRole,
    Membership,
    MembershipStatus,
    Organisation,
    OrganisationKind,
    format_orgnr,
)
from crm.members.panels import register_panel
from crm.members.views.staff import FEE_MANAGERS, MEMBERSHIP_MANAGERS, can_edit
from crm.request_args import year_arg


def membership_form(membership: Membership) -> MembershipForm:
    options = filter_options()
    # A post without the version field (a page from before) is checked against the row's own version.
    form = MembershipForm(
        data={"version": membership.version}
        if request.method == "POST"
        else {
            "category_id": membership.category_id,
            "adviser_id": membership.adviser_id or 0,
            "principles_version": membership.principles_version,
            "principles_accepted_on": membership.principles_accepted_on,
            "version": membership.version,
        }
    )
    form.category_id.choices = [(c.id, c.name) for c in options["categories"]]
    form.adviser_id.choices = [(0, _("No adviser")), *((u.id, u.full_name) for u in options["advisers"])]
    return form


# --- the organisation page's own tabs ---------------------------------------------------------------------


def _field_labels(*form_classes) -> dict[str, object]:
    """A form field's label for each field name, so that ``fields: website`` reads "Nettsted"."""
    labels: dict[str, object] = {}
    for form_class in form_classes:
        for name in dir(form_class):
            field = getattr(form_class, name, None)
            label = getattr(field, "args", None) and field.args[0]
            if label and name not in labels:
                labels[name] = label
    return labels


_FIELD_LABELS = _field_labels(OrganisationForm, ContactForm, MembershipForm)
_STATUS_LABELS = {status.value: status.label for status in MembershipStatus}


def _describe_schedule_parts(parts: Any) -> str:
    """A fee schedule change's before or after (``fee_schedules._snapshot`` parts) in the reader's language."""
    if not isinstance(parts, dict):
        return str(parts)
    texts = []
    for key, value in parts.items():
        kind, _space, number = key.partition(" ")
        if value is None:
            text = _("none")
        elif kind == "step":
            upper, fee = value
            limit = _("up to %(amount)s", amount=format_money(upper * 100)) if upper is not None else _("no limit")
            text = f"{limit}: {format_money(fee)}"
        elif kind == "group":
            text = _(
                "%(name)s (turnover %(turnover)s, employees %(employees)s): %(fee)s",
                name=value.get("name"),
                turnover=_("up to %(amount)s", amount=format_money(value["max_turnover_nok"] * 100))
                if value.get("max_turnover_nok") is not None
                else _("no limit"),
                employees=_("up to %(count)s", count=value["max_employees"])
                if value.get("max_employees") is not None
                else _("no limit"),
                fee=format_money(value.get("fee_ore")),
            )
        elif key in ("rate_ore", "min_ore", "max_ore"):
            text = format_money(value)
        elif key == "pro_rata":
            text = ", ".join(f"{day:02d}.{month:02d}: {percent} %" for month, day, percent in value) or _("none")
        elif key == "group_discount_percent":
            text = f"{value} %"
        else:
            text = str(value)
        texts.append(f"{_part_label(kind, number, key)}: {text}")
    return "; ".join(texts)


def _part_label(kind: str, number: str, key: str) -> str:
    if kind == "step":
        return _("Step %(number)s", number=number)
    if kind == "group":
        return _("Group %(number)s", number=number)
    labels = {
        "rate_ore": _("Rate per inhabitant"),
        "min_ore": _("Minimum fee"),
        "max_ore": _("Maximum fee"),
        "pro_rata": _("Pro rata"),
        "group_discount_percent": _("Group discount"),
    }
    return labels.get(key, key)


register_audit_details(
    actions={
        "members.application.submitted": _l("Membership application submitted"),
        "members.organisation.created": _l("Organisation registered"),
        "members.organisation.updated": _l("Organisation changed"),
        "members.contact.created": _l("Contact added"),
        "members.contact.updated": _l("Contact changed"),
        "members.contact.deactivated": _l("Contact marked as left"),
        "members.contact.reactivated": _l("Contact reactivated"),
        "members.contact.login_linked": _l("Contact given a portal login"),
        "members.membership.updated": _l("Membership changed"),
        "members.membership.status_changed": _l("Membership status changed"),
        "members.membership.adviser_assigned": _l("Adviser assigned"),
        "members.membership.fee_overridden": _l("Fee overridden"),
        "members.membership.fee_override_removed": _l("Fee override removed"),
        "members.fees.copied": _l("Fee schedules copied to a new year"),
        "members.fees.schedule_created": _l("Fee schedule created"),
        "members.fees.schedule_updated": _l("Fee schedule changed"),
        "members.list.exported": _l("Member list exported"),
        "members.emails.viewed": _l("Organisation's email history viewed"),
    },
    targets={
        "organisations": _l("Organisation"),
        "contacts": _l("Contact person"),
        "memberships": _l("Membership"),
        "fee_schedules": _l("Fee schedules"),
    },
    namers={
        "organisations": names_from(Organisation.id, Organisation.name),
        "contacts": names_from(Contact.id, Contact.name),
        "memberships": names_from(Membership.id, Organisation.name, join=Membership.organisation),
    },
    labels={
        "from": _l("From"),
        "to": _l("To"),
        "on_date": _l("Date"),
        "reason": _l("Reason"),
        "fields": _l("Fields"),
        "roles": _l("Roles"),
        "name": _l("Name"),
        "orgnr": _l("Organisation number"),
        "left_on": _l("Left on"),
        "format": _l("Format"),
        "rows": _l("Rows"),
        "q": _l("Search"),
        "status": _l("Status"),
        "kind": _l("Kind"),
        "index_percent": _l("Index (%)"),
        "year": _l("Year"),
        "category": _l("Category"),
    },
    values={
        "members.membership.status_changed:from": _STATUS_LABELS,
        "members.membership.status_changed:to": _STATUS_LABELS,
        "members.membership.fee_overridden:from": format_money,
        "members.membership.fee_overridden:to": format_money,
        "members.organisation.created:orgnr": format_orgnr,
        "members.list.exported:status": _STATUS_LABELS,
        "members.list.exported:kind": {kind.value: kind.label for kind in OrganisationKind},
        "members.organisation.updated:fields": _FIELD_LABELS,
        "members.contact.updated:fields": _FIELD_LABELS,
        "members.membership.updated:fields": _FIELD_LABELS,
        "members.contact.created:roles": {role.value: role.label for role in ContactRole},
        "members.fees.schedule_created:after": _describe_schedule_parts,
        "members.fees.schedule_updated:before": _describe_schedule_parts,
        "members.fees.schedule_updated:after": _describe_schedule_parts,
    },
    hidden=(
        *("membership_id", "organisation_id", "category_id", "adviser_id", "sector_id", "user_id"),
        # user ids mean nothing to a reader; the entry's label says an adviser was assigned
        *("members.membership.adviser_assigned:from", "members.membership.adviser_assigned:to"),
    ),
)


def _profile_panel(organisation: Organisation) -> str:
    return render_template("members/_profile.html", organisation=organisation, can_edit=can_edit())


def _contacts_panel(organisation: Organisation) -> str:
    contacts = db.session.scalars(
        db.select(Contact)
        .where(Contact.organisation_id == organisation.id)
        .options(selectinload(Contact.role_links))
        .order_by(Contact.is_active.desc(), Contact.name)
    ).all()
    return render_template("members/_contacts.html", organisation=organisation, contacts=contacts, can_edit=can_edit())


def _membership_panel(organisation: Organisation) -> str:
    membership = organisation.membership
    return render_template(
        "members/_membership.html",
        organisation=organisation,
        membership=membership,
        form=membership_form(membership),
        can_manage=current_user.has_role(Role.ADMIN, *MEMBERSHIP_MANAGERS),
    )


def _fee_panel(organisation: Organisation) -> str:
    from crm.members.services import today

    year = year_arg(default=today().year)
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
            "version": membership.version,
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
    # Entries about contact people name the person: "Kontaktperson endret" alone does not say who.
    contact_names = {
        str(contact_id): name
        for contact_id, name in db.session.execute(
            db.select(Contact.id, Contact.name).where(Contact.organisation_id == organisation.id)
        )
    }
    return render_template(
        "members/_audit.html",
        organisation=organisation,
        entries=entries,
        contact_names=contact_names,
    )


register_panel("profile", _l("Profile"), _profile_panel, order=10)
register_panel("contacts", _l("Contacts"), _contacts_panel, order=20)
register_panel("membership", _l("Membership"), _membership_panel, order=30)
register_panel("fee", _l("Fee"), _fee_panel, order=40)


def _email_panel(organisation: Organisation) -> str:
    services.record_email_history_viewed(organisation, actor=current_user, ip_address=request.remote_addr)
    # Commit before loading the messages: a commit afterwards would expire every row and reload each one.
    db.session.commit()
    messages = services.organisation_email_history(organisation)
    return render_template("members/_emails.html", organisation=organisation, messages=messages)


register_panel("emails", _l("Email"), _email_panel, order=800)
register_panel("audit", _l("Audit trail"), _audit_panel, order=900)
