"""Shared UI plumbing: role-based navigation that features register into, and template globals."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flask import Flask, request, url_for
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm.auth.models import Role
from crm.web_urls import is_web_url, web_link


@dataclass(frozen=True)
class NavItem:
    label: object  # a lazy string
    endpoint: str
    audience: str  # "staff", "member" or "public"
    roles: frozenset[Role] = frozenset()
    order: int = 100
    description: object = None  # a lazy string; the portal's front page shows it under the link


NAV_ITEMS: list[NavItem] = []


def register_nav(
    label, endpoint: str, *, audience: str, roles: Iterable[Role] = (), order: int = 100, description=None
) -> None:
    """Features add their menu entries here; the base template shows those the user may use."""
    item = NavItem(label, endpoint, audience, frozenset(roles), order, description)
    if item not in NAV_ITEMS:
        NAV_ITEMS.append(item)


def _visible(item: NavItem) -> bool:
    if item.audience == "public":
        return True
    if not current_user.is_authenticated:
        return False
    if item.audience == "member":
        return current_user.is_member
    if not current_user.is_staff:
        return False
    return not item.roles or Role.ADMIN in current_user.roles or bool(current_user.roles & item.roles)


def nav_items(audience: str | None = None) -> list[dict[str, object]]:
    """The entries the current user may use (optionally of one audience); the entry whose URL is the
    longest prefix of the current path is the active one, so "/staff/" is not active on "/staff/audit"."""
    items = []
    for item in sorted(NAV_ITEMS, key=lambda i: i.order):
        if _visible(item) and (audience is None or item.audience == audience):
            items.append(
                {"label": item.label, "url": url_for(item.endpoint), "active": False, "description": item.description}
            )
    matches = [entry for entry in items if entry["url"] != "/" and request.path.startswith(str(entry["url"]))]
    if matches:
        max(matches, key=lambda entry: len(str(entry["url"])))["active"] = True
    return items


def ui_area() -> str:
    """Which layout a page uses: "staff" (side navigation), "portal" (member top navigation) or "public"."""
    if not current_user.is_authenticated:
        return "public"
    if request.path.startswith("/portal") and current_user.is_member:
        return "portal"
    if current_user.is_staff:
        return "staff"
    return "portal" if current_user.is_member else "public"


# Links on a user's administration page that features above auth add (mail: the person's email history),
# so auth never imports them. Each endpoint takes ``user_id``.
USER_LINKS: dict[str, object] = {}


def register_user_link(label, endpoint: str) -> None:
    """Show a link to ``url_for(endpoint, user_id=...)`` on every user's administration page."""
    USER_LINKS[endpoint] = label


def user_links(user_id: int) -> list[dict[str, object]]:
    return [{"label": label, "url": url_for(endpoint, user_id=user_id)} for endpoint, label in USER_LINKS.items()]


register_nav(_l("Dashboard"), "home.staff_dashboard", audience="staff", order=0)
register_nav(_l("Home"), "home.portal_home", audience="member", order=0)


def register_ui(app: Flask) -> None:
    app.jinja_env.filters["role_labels"] = role_labels
    # Every stored URL is linked through these: only http(s) becomes an href.
    app.jinja_env.filters["web_link"] = web_link
    app.jinja_env.tests["web_url"] = is_web_url

    @app.context_processor
    def inject_ui():
        return {"nav_items": nav_items, "ui_area": ui_area, "current_locale": str(get_locale() or "nb")}


ROLE_LABELS = {
    Role.ADMIN: _l("Administrator"),
    Role.ADVISER: _l("Adviser"),
    Role.COORDINATOR: _l("Coordinator"),
    Role.FINANCE: _l("Finance"),
    Role.MEMBER: _l("Member"),
}


def role_label(role: Role) -> str:
    return str(ROLE_LABELS.get(role, role.value))


def role_labels(roles: Iterable[Role]) -> list[str]:
    """Labels in a stable order (the order of ``Role``)."""
    return [role_label(role) for role in Role if role in set(roles)]
