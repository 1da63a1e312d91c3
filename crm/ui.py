"""Shared UI plumbing: role-based navigation that features register into, and template globals."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flask import Flask, request, url_for
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm.auth.models import Role


@dataclass(frozen=True)
class NavItem:
    label: object  # a lazy string
    endpoint: str
    audience: str  # "staff", "member" or "public"
    roles: frozenset[Role] = frozenset()
    order: int = 100


NAV_ITEMS: list[NavItem] = []


def register_nav(label, endpoint: str, *, audience: str, roles: Iterable[Role] = (), order: int = 100) -> None:
    """Features add their menu entries here; the base template shows those the user may use."""
    item = NavItem(label, endpoint, audience, frozenset(roles), order)
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


def nav_items() -> list[dict[str, object]]:
    items = []
    for item in sorted(NAV_ITEMS, key=lambda i: i.order):
        if _visible(item):
            url = url_for(item.endpoint)
            items.append({"label": item.label, "url": url, "active": request.path.startswith(url) and url != "/"})
    return items


register_nav(_l("Dashboard"), "home.staff_dashboard", audience="staff", order=0)
register_nav(_l("My organisation"), "home.portal_home", audience="member", order=0)


def register_ui(app: Flask) -> None:
    @app.context_processor
    def inject_ui():
        return {"nav_items": nav_items, "current_locale": str(get_locale() or "nb")}
