"""Locale selection and Norwegian formatting of dates and amounts."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Flask, current_app, has_request_context, session
from flask_babel import format_decimal
from flask_login import current_user

OSLO = ZoneInfo("Europe/Oslo")


def select_locale() -> str:
    """The user's choice (this session's, else the one saved on the account), else bokmål.

    The browser's Accept-Language is deliberately not consulted: many Norwegian staff run English
    browsers, and the organisation works in bokmål unless someone picks English themselves.
    """
    if not has_request_context():  # CLI commands and jobs: callers force a locale when they need one
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    languages = current_app.config["LANGUAGES"]
    chosen = session.get("locale")
    if not chosen and current_user and getattr(current_user, "is_authenticated", False):
        chosen = current_user.locale
    if chosen in languages:
        return chosen
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def select_timezone() -> str:
    return "Europe/Oslo"


def to_oslo(value: datetime) -> datetime:
    return value.astimezone(OSLO)


def oslo_date(value: datetime) -> date:
    """The Europe/Oslo calendar day of an aware moment: the one day a Norwegian reads off it (a Stripe timestamp at
    23:30 UTC is already the next day in Oslo, winter and summer time alike). Every date taken from a timestamp
    (a due date, an invoice date, the day something was paid) goes through here."""
    return to_oslo(value).date()


def format_date_no(value: date | datetime | None) -> str:
    """``31.12.2026``; datetimes are shown in Europe/Oslo."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = to_oslo(value)
    return value.strftime("%d.%m.%Y")


def format_datetime_no(value: datetime | None) -> str:
    """``31.12.2026 14:30`` in Europe/Oslo."""
    if value is None:
        return ""
    return to_oslo(value).strftime("%d.%m.%Y %H:%M")


def format_time_no(value: datetime | None) -> str:
    """``14:30`` in Europe/Oslo."""
    if value is None:
        return ""
    return to_oslo(value).strftime("%H:%M")


def format_money(amount_ore: int | None, currency: str = "NOK") -> str:
    """``137 800 kr`` from integer øre; øre are shown only when there are any."""
    if amount_ore is None:
        return ""
    kroner, ore = divmod(abs(int(amount_ore)), 100)
    sign = "−" if amount_ore < 0 else ""
    grouped = f"{kroner:,}".replace(",", "\u00a0")
    text = f"{sign}{grouped},{ore:02d}" if ore else f"{sign}{grouped}"
    return f"{text}\u00a0kr" if currency == "NOK" else f"{text}\u00a0{currency}"


def register_template_helpers(app: Flask) -> None:
    app.jinja_env.filters["date_no"] = format_date_no
    app.jinja_env.filters["datetime_no"] = format_datetime_no
    app.jinja_env.filters["time_no"] = format_time_no
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["number"] = format_decimal


def compile_catalogs(translations_dir: Path) -> None:
    """Compile each ``messages.po`` whose ``.mo`` is missing or older, so a fresh checkout runs
    without a separate build step (the ``.mo`` files are build output, not committed)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po_path in translations_dir.glob("*/LC_MESSAGES/messages.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=po_path.parent.parent.name)
        with mo_path.open("wb") as mo_file:
            write_mo(mo_file, catalog)
