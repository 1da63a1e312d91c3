"""The member portal's organisation pages: a member sees and keeps up to date their own organisation only."""

from __future__ import annotations

from functools import partial

from flask import abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from crm.auth.access import member_required, register_member_access_check
from crm.errors import DomainError, Outcome, attempt
from crm.extensions import db
from crm.members import services
from crm.members.fees import calculate_fee
from crm.members.forms import PortalContactForm, PortalInviteForm, PortalProfileForm
from crm.members.models import Contact
from crm.members.services.portal import colleague_for, is_main_contact
from crm.members.views.blueprints import portal_bp
from crm.members.views.common import contact_form, save_form
from crm.submissions import create_once
from crm.ui import register_nav


def _portal_access(user) -> str | None:
    """Runs before every ``member_required`` view (any feature's): a member user whose organisation's
    membership is not current, or who has left it, gets a page saying so instead of the page asked for."""
    contact = services.portal_contact_for(user)
    g.portal_contact = contact
    return services.portal_access_problem(user, contact)


register_member_access_check("members", _portal_access)


def _me() -> Contact:
    """The logged-in member's contact record (``member_required`` has checked the membership is current)."""
    contact = g.get("portal_contact") or services.portal_contact_for(current_user)
    if contact is None:
        abort(403)
    return contact


def _colleague(me: Contact, contact_id: int) -> Contact:
    contact = colleague_for(me, contact_id)
    if contact is None:
        abort(404)
    return contact


@portal_bp.route("/")
@member_required
def organisation():
    me = _me()
    organisation = me.organisation
    try:
        fee, fee_problem = calculate_fee(organisation.membership, services.today().year), None
    except DomainError as exc:
        fee, fee_problem = None, exc.message
    contacts = db.session.scalars(
        select(Contact)
        .where(Contact.organisation_id == organisation.id, Contact.is_active)
        .options(selectinload(Contact.role_links))
        .order_by(Contact.name)
    ).all()
    return render_template(
        "members/portal_organisation.html",
        me=me,
        organisation=organisation,
        membership=organisation.membership,
        fee=fee,
        fee_problem=fee_problem,
        contacts=contacts,
        is_main=is_main_contact(me),
    )


@portal_bp.route("/edit", methods=["GET", "POST"])
@member_required
def edit_profile():
    me = _me()
    if not is_main_contact(me):
        abort(403)
    form = PortalProfileForm(obj=me.organisation)
    saved = Outcome(ok=False)
    if form.validate_on_submit():
        saved = save_form(
            form,
            lambda: services.update_profile_by_member(
                me, form.values(), actor=current_user, version=form.opened_version
            ),
        )
        if saved.ok:
            flash(_("Saved."), "success")
            return redirect(url_for("member_portal.organisation"))
        if saved.stale:
            form = PortalProfileForm(formdata=None, obj=me.organisation)
    return render_template("members/portal_profile_form.html", form=form, organisation=me.organisation), saved.status


@portal_bp.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@member_required
def edit_contact(contact_id: int):
    me = _me()
    contact = _colleague(me, contact_id)
    main = is_main_contact(me)
    if contact.id != me.id and not main:
        abort(403)
    form = contact_form(PortalContactForm, contact)
    saved = Outcome(ok=False)
    if form.validate_on_submit():
        saved = save_form(
            form,
            lambda: services.update_contact_by_member(
                me,
                contact,
                form.values(),
                roles=form.roles.data if main else None,
                actor=current_user,
                version=form.opened_version,
            ),
        )
        if saved.ok:
            flash(_("Saved."), "success")
            return redirect(url_for("member_portal.organisation"))
        if saved.stale:
            form = contact_form(PortalContactForm, contact, current=True)
    return render_template(
        "members/portal_contact_form.html", form=form, contact=contact, me=me, is_main=main
    ), saved.status


@portal_bp.route("/contacts/new", methods=["GET", "POST"])
@member_required
def invite_contact():
    me = _me()
    if not is_main_contact(me):
        abort(403)
    form = PortalInviteForm()
    if form.validate_on_submit():
        invite = partial(
            services.invite_colleague_by_member, me, form.values(), roles=form.roles.data or [], actor=current_user
        )
        saved = save_form(form, lambda: create_once(form.submission.data, Contact, invite))
        if saved.ok:
            flash(_("%(name)s is added and invited to the portal by email.", name=saved.result.name), "success")
            return redirect(url_for("member_portal.organisation"))
    return render_template("members/portal_invite_form.html", form=form), 400 if form.errors else 200


@portal_bp.route("/contacts/<int:contact_id>/deactivate", methods=["POST"])
@member_required
def deactivate_contact(contact_id: int):
    me = _me()
    contact = _colleague(me, contact_id)
    if attempt(lambda: services.deactivate_contact_by_member(me, contact, actor=current_user)).ok:
        flash(_("%(name)s is marked as having left.", name=contact.name), "success")
    return redirect(url_for("member_portal.organisation"))


register_nav(
    _l("Our organisation"),
    "member_portal.organisation",
    audience="member",
    order=10,
    description=_l("Your membership, fee and adviser, and your organisation's details and contact people."),
)
