"""Administrators manage staff users under /staff/users."""

from __future__ import annotations

from functools import partial

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm.auth import mfa, reset, services
from crm.auth.access import staff_required
from crm.auth.forms import ROLE_LABELS, ActionForm, NewStaffUserForm, StaffRolesForm
from crm.auth.models import STAFF_ROLES, Role, User
from crm.errors import DomainError, NotFound, StaleEdit, field_error
from crm.extensions import db
from crm.pagination import paginate
from crm.submissions import create_once
from crm.ui import register_nav, user_links

bp = Blueprint("users", __name__, url_prefix="/staff/users")

register_nav(_l("Users"), "users.index", audience="staff", roles={Role.ADMIN}, order=90)

admin_only = staff_required(Role.ADMIN)


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(_("No such user."))
    return user


def _roles_from(form: StaffRolesForm) -> set[Role]:
    known = {role.value: role for role in Role}
    return {known[value] for value in form.roles.data or [] if value in known}


@bp.route("/")
@admin_only
def index():
    search = request.args.get("q", "")[:100]
    page = paginate(services.users_query(search))
    return render_template("auth/users/index.html", page=page, search=search, role_labels=ROLE_LABELS)


@bp.route("/new", methods=["GET", "POST"])
@admin_only
def new():
    form = NewStaffUserForm()
    if form.validate_on_submit():
        create = partial(
            services.create_staff_user,
            email=form.email.data,
            full_name=form.full_name.data,
            roles=_roles_from(form),
            actor=current_user,
        )
        try:
            user = create_once(form.submission.data, User, create)
        except DomainError as exc:
            field_error(form, exc, default="email")
        else:
            db.session.commit()
            flash(_("%(name)s is created and has been sent an invitation.", name=user.full_name), "success")
            return redirect(url_for("users.edit", user_id=user.id))
    return render_template("auth/users/new.html", form=form), 400 if form.errors else 200


def _roles_form(user: User, *, current: bool = False) -> StaffRolesForm:
    """The posted roles form, or (``current``: the page, or after a refused save) the user's saved roles. A post
    without the version field (a page from before) is checked against the user's own ``roles_version``."""
    saved = {"version": user.roles_version}
    if not current:
        return StaffRolesForm(data=saved)
    roles = [role.value for role in sorted(user.roles & STAFF_ROLES, key=lambda r: r.value)]
    return StaffRolesForm(formdata=None, data={**saved, "roles": roles})


def _edit_page(user: User, roles_form: StaffRolesForm | None = None, status: int = 200):
    roles_form = roles_form or _roles_form(user, current=True)
    return render_template(
        "auth/users/edit.html",
        user=user,
        roles_form=roles_form,
        action_form=ActionForm(),
        mfa_enrolled=mfa.is_enrolled(user),
        mfa_locked_until=mfa.locked_until(user),
        role_labels=ROLE_LABELS,
        user_links=user_links(user.id),
    ), status


@bp.route("/<int:user_id>")
@admin_only
def edit(user_id: int):
    return _edit_page(_user_or_404(user_id))


@bp.route("/<int:user_id>/roles", methods=["POST"])
@admin_only
def update_roles(user_id: int):
    user = _user_or_404(user_id)
    form = _roles_form(user)
    if form.validate_on_submit():
        try:
            services.update_staff_roles(user, _roles_from(form), actor=current_user, version=form.opened_version)
        except StaleEdit as exc:
            db.session.rollback()
            form = _roles_form(user, current=True)
            field_error(form, exc, default="roles")
            return _edit_page(user, roles_form=form, status=exc.status_code)
        except DomainError as exc:
            field_error(form, exc, default="roles")
        else:
            db.session.commit()
            flash(_("The roles are saved."), "success")
            return redirect(url_for("users.edit", user_id=user.id))
    return _edit_page(user, roles_form=form, status=400)


def _action(user_id: int, do, message: str):
    user = _user_or_404(user_id)  # CSRFProtect has checked the form's token already
    try:
        do(user)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "danger")
    else:
        db.session.commit()
        flash(message, "success")
    return redirect(url_for("users.edit", user_id=user.id))


@bp.route("/<int:user_id>/disable", methods=["POST"])
@admin_only
def disable(user_id: int):
    return _action(
        user_id,
        lambda user: services.set_user_enabled(user, False, actor=current_user),
        _("The user is disabled and logged out everywhere."),
    )


@bp.route("/<int:user_id>/enable", methods=["POST"])
@admin_only
def enable(user_id: int):
    return _action(
        user_id, lambda user: services.set_user_enabled(user, True, actor=current_user), _("The user is enabled.")
    )


@bp.route("/<int:user_id>/reset-mfa", methods=["POST"])
@admin_only
def reset_mfa(user_id: int):
    return _action(
        user_id,
        lambda user: mfa.reset_mfa(user, actor=current_user),
        _("Two-factor login is reset. The user sets it up again at the next login."),
    )


@bp.route("/<int:user_id>/unlock-mfa", methods=["POST"])
@admin_only
def unlock_mfa(user_id: int):
    return _action(
        user_id,
        lambda user: mfa.unlock_second_factor(user, actor=current_user),
        _("The lock is lifted. The user can enter codes from their authenticator again."),
    )


@bp.route("/<int:user_id>/invite", methods=["POST"])
@admin_only
def resend_invitation(user_id: int):
    return _action(
        user_id,
        lambda user: reset.send_invitation(user, actor=current_user),
        _("A new invitation is on its way."),
    )
