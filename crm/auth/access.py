"""Every view declares who may use it. A test walks ``app.url_map`` and fails on undeclared views."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, request
from flask_login import current_user

from crm.auth.models import STAFF_ROLES, Role

ACCESS_ATTRIBUTE = "crm_access"


def _declare(view: Callable[..., Any], declaration: str) -> None:
    setattr(view, ACCESS_ATTRIBUTE, declaration)


def public(view: Callable[..., Any]) -> Callable[..., Any]:
    """Anyone, logged in or not."""
    _declare(view, "public")
    return view


def _require(check: Callable[[Any], bool], declaration: str):
    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            if not current_user.is_authenticated:
                from crm.extensions import login_manager

                return login_manager.unauthorized()
            if not check(current_user):
                abort(403)
            return view(*args, **kwargs)

        _declare(wrapped, declaration)
        return wrapped

    return decorator


def authenticated(view: Callable[..., Any]) -> Callable[..., Any]:
    """Any logged-in user."""
    return _require(lambda user: True, "authenticated")(view)


# Features above auth decide whether a member user's organisation still lets them in (members: the
# membership is current). auth cannot import them, so they register a check: it returns None to let the
# user in, or the message to show instead of the page.
_member_access_checks: dict[str, Callable[[Any], str | None]] = {}


def register_member_access_check(name: str, check: Callable[[Any], str | None]) -> None:
    """Run ``check(user)`` before every ``member_required`` view (registering a name again replaces it)."""
    _member_access_checks[name] = check


def member_access_problem(user: Any) -> str | None:
    """The first registered check's refusal for this member user, or None when every check lets them in."""
    for check in _member_access_checks.values():
        problem = check(user)
        if problem:
            return problem
    return None


def member_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """A person at a member organisation (the portal). Every registered member access check runs on
    every portal page, so access ends with the membership on pages that later features add too."""

    def check(user: Any) -> bool:
        if not user.is_member:
            return False
        problem = member_access_problem(user)
        if problem:
            from crm.errors import PermissionDenied

            raise PermissionDenied(problem)
        return True

    return _require(check, "member")(view)


def staff_required(*roles: Role) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Staff; with roles, only staff holding one of them (admins always pass)."""
    wanted = frozenset(roles) or STAFF_ROLES

    def check(user: Any) -> bool:
        return user.is_staff and (Role.ADMIN in user.roles or bool(user.roles & wanted))

    label = "staff:" + ",".join(sorted(role.value for role in wanted))
    return _require(check, label)


def declared_access(view: Callable[..., Any]) -> str | None:
    return getattr(view, ACCESS_ATTRIBUTE, None)


def safe_next_url(default: str) -> str:
    """Only same-site relative paths are followed after login."""
    target = request.args.get("next") or request.form.get("next") or ""
    # Browsers drop tabs and newlines and read "\\" as "/", so "/\t/evil" would leave the site.
    if target.startswith("/") and not target.startswith("//") and "\\" not in target and target.isprintable():
        return target
    return default
