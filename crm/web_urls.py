"""Web addresses people store (an organisation's website): only ``http://`` and ``https://`` are accepted, and
only those are ever rendered as links.

A ``javascript:`` or ``data:`` address in an ``href`` runs in our origin when clicked; the Content Security
Policy is the last line, not the first. Services check every stored URL with ``clean_web_url``; templates
link a stored URL only through the ``web_link`` filter (or test it with ``is web_url``).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask_babel import gettext as _
from markupsafe import Markup, escape

from crm.errors import DomainError

WEB_SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 255
# Browsers drop tabs and newlines inside a scheme ("java\tscript:"), so no whitespace or control character
# is allowed anywhere in a stored address.
_UNSAFE_CHARACTER = re.compile(r"[\s\x00-\x1f\x7f]")
# "www.example.no" or "example.no/om-oss": a host with no scheme at all, which people type and registers hold.
_BARE_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+(?:[/?#].*)?")


def is_web_url(value: object) -> bool:
    """``value`` is an absolute ``http(s)://host...`` address, safe to put in an ``href``."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH or _UNSAFE_CHARACTER.search(value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in WEB_SCHEMES and bool(parts.hostname)


def clean_web_url(value: str | None, *, field: str) -> str | None:
    """``value`` stripped, as an ``http(s)://`` address (``https://`` is added to a bare host such as
    ``www.example.no``), or None when blank. ``DomainError`` on ``field`` for anything else (``javascript:``,
    ``ftp://``, spaces inside, longer than 255 characters)."""
    if value is None or not str(value).strip():
        return None
    url = str(value).strip()
    if _BARE_HOST.fullmatch(url) and not _UNSAFE_CHARACTER.search(url):
        url = f"https://{url}"
    if not is_web_url(url):
        raise DomainError(_("Enter a web address that starts with https:// or http://."), field=field)
    scheme, rest = url.split(":", 1)
    return f"{scheme.lower()}:{rest}"


def web_link(value: object, label: object = None, rel: str = "noopener noreferrer") -> Markup:
    """A link to ``value`` when it is an http(s) address, else the stored text as plain text. With a
    ``label`` (a "Pay" button) an unsafe address renders nothing: a label without its link means nothing.
    Links to another site send no referrer unless ``rel`` says otherwise (Stripe's pages: ``noopener``)."""
    if not value:
        return Markup("")
    if is_web_url(value):
        text = escape(label if label is not None else value)
        return Markup('<a href="{}" rel="{}">{}</a>').format(value, rel, text)
    return Markup("") if label is not None else escape(str(value))
