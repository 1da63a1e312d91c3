"""Audit entries in the reader's language: features register labels for their actions, for the kinds of
record they act on, for the detail keys they write and for the codes stored in them (statuses, roles),
so the log never shows ``from: notice_given`` on a Norwegian page. What nobody registered is shown as
stored."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from flask_babel import gettext as _

from crm.i18n import format_date_no

Formatter = Callable[[Any], str] | Mapping[str, Any]

_ACTION_LABELS: dict[str, Any] = {}
_TARGET_LABELS: dict[str, Any] = {}
_KEY_LABELS: dict[str, Any] = {}
_VALUES: dict[str, Formatter] = {}
_HIDDEN: set[str] = set()
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def register_audit_details(
    *,
    actions: Mapping[str, Any] | None = None,
    targets: Mapping[str, Any] | None = None,
    labels: Mapping[str, Any] | None = None,
    values: Mapping[str, Formatter] | None = None,
    hidden=(),
) -> None:
    """``actions``: action code -> what happened, as a (lazy) label. ``targets``: table name -> the kind of
    record. ``labels``: detail key -> its label. ``values``: detail key, or ``"<action>:<key>"`` for one
    action only, -> a mapping of stored codes to labels or a function that formats the stored value.
    ``hidden``: keys (or ``"<action>:<key>"``) that mean nothing to a reader, such as internal ids."""
    _ACTION_LABELS.update(actions or {})
    _TARGET_LABELS.update(targets or {})
    _KEY_LABELS.update(labels or {})
    _VALUES.update(values or {})
    _HIDDEN.update(hidden)


def _format(value: Any, formatter: Formatter | None) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_format(item, formatter) for item in value)
    if callable(formatter):
        return formatter(value)
    if isinstance(formatter, Mapping) and str(value) in formatter:
        return str(formatter[str(value)])
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, str) and _ISO_DATE.match(value):
        return format_date_no(date.fromisoformat(value))
    return str(value)


def audit_details(entry) -> list[tuple[str, str]]:
    """(label, text) for each detail of an entry worth showing, in the order they were written."""
    shown = []
    for key, value in (entry.details or {}).items():
        if value is None or value == "" or key in _HIDDEN or f"{entry.action}:{key}" in _HIDDEN:
            continue
        formatter = _VALUES.get(f"{entry.action}:{key}", _VALUES.get(key))
        shown.append((str(_KEY_LABELS.get(key, key)), _format(value, formatter)))
    return shown


def audit_action_label(action: str) -> str:
    return str(_ACTION_LABELS.get(action, action))


def audit_target_label(target_type: str) -> str:
    return str(_TARGET_LABELS.get(target_type, target_type))


def audit_target_choices() -> list[tuple[str, str]]:
    """(stored table name, label) of every registered kind of record, sorted by label, for a filter."""
    return sorted(((key, str(label)) for key, label in _TARGET_LABELS.items()), key=lambda choice: choice[1].lower())
