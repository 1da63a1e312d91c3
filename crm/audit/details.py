"""Audit entries in the reader's language: features register labels for their actions, for the kinds of
record they act on, for the detail keys they write and for the codes stored in them (statuses, roles),
so the log never shows ``from: notice_given`` on a Norwegian page, and how to name their records
("EHN-00032", the person's name). Money (keys ending ``_ore``) reads "5 000 kr". What nobody registered
is shown as stored."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from crm.extensions import db
from crm.i18n import format_date_no, format_money

Formatter = Callable[[Any], str] | Mapping[str, Any]
# Names a batch of records of one kind in one query: their ids -> their names (ids it cannot name are left out).
Namer = Callable[[Sequence[int]], Mapping[int, str]]

_ACTION_LABELS: dict[str, Any] = {}
_TARGET_LABELS: dict[str, Any] = {}
_KEY_LABELS: dict[str, Any] = {}
_VALUES: dict[str, Formatter] = {}
_HIDDEN: set[str] = set()
_NAMERS: dict[str, Namer] = {}
_NAME_BATCH = 500  # ids per query: well under SQLite's and PostgreSQL's bound-parameter limits
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def register_audit_details(
    *,
    actions: Mapping[str, Any] | None = None,
    targets: Mapping[str, Any] | None = None,
    labels: Mapping[str, Any] | None = None,
    values: Mapping[str, Formatter] | None = None,
    hidden=(),
    namers: Mapping[str, Namer] | None = None,
) -> None:
    """``actions``: action code -> what happened, as a (lazy) label. ``targets``: table name -> the kind of
    record. ``labels``: detail key -> its label. ``values``: detail key, or ``"<action>:<key>"`` for one
    action only, -> a mapping of stored codes to labels or a function that formats the stored value.
    ``hidden``: keys (or ``"<action>:<key>"``) that mean nothing to a reader, such as internal ids.
    ``namers``: table name -> a function naming a batch of its records (see ``names_from``)."""
    _ACTION_LABELS.update(actions or {})
    _TARGET_LABELS.update(targets or {})
    _KEY_LABELS.update(labels or {})
    _VALUES.update(values or {})
    _HIDDEN.update(hidden)
    _NAMERS.update(namers or {})


def names_from(id_column, name_expression, *, join=None, fmt: Callable[[int, Any], str] | None = None) -> Namer:
    """A namer that selects ``name_expression`` (through the relationship ``join`` if given) for the rows whose
    ``id_column`` is among the ids; ``fmt(id, value)`` shapes the name (default: the value)."""

    def name(ids: Sequence[int]) -> Mapping[int, str]:
        stmt = select(id_column, name_expression).where(id_column.in_(ids))
        if join is not None:
            stmt = stmt.join(join)
        rows = db.session.execute(stmt)
        return {row_id: fmt(row_id, value) if fmt else str(value) for row_id, value in rows if value}

    return name


def _format(value: Any, formatter: Formatter | None, key: str = "") -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_format(item, formatter, key) for item in value)
    if callable(formatter):
        return formatter(value)
    if isinstance(formatter, Mapping) and str(value) in formatter:
        return str(formatter[str(value)])
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if key.endswith("_ore") and isinstance(value, int):
        return format_money(value)
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
        shown.append((str(_KEY_LABELS.get(key, key)), _format(value, formatter, key)))
    return shown


def audit_details_text(entry) -> str:
    """The details on one line, for an export: "Amount: 5 000 kr; Reason: ..."."""
    return "; ".join(f"{label}: {text}" for label, text in audit_details(entry))


def audit_target_names(entries: Iterable[Any]) -> dict[tuple[str, str], str]:
    """(target type, target id) -> the record's name, for every entry whose kind has a registered namer and
    whose record still exists: one query per kind of record (per 500 ids), however many entries."""
    wanted: dict[str, set[int]] = {}
    for entry in entries:
        if entry.target_type in _NAMERS and (entry.target_id or "").isascii() and (entry.target_id or "").isdigit():
            wanted.setdefault(entry.target_type, set()).add(int(entry.target_id))
    names: dict[tuple[str, str], str] = {}
    for target_type, ids in wanted.items():
        ordered = sorted(i for i in ids if i < 2**63)
        for start in range(0, len(ordered), _NAME_BATCH):
            found = _NAMERS[target_type](ordered[start : start + _NAME_BATCH])
            names.update({(target_type, str(row_id)): text for row_id, text in found.items()})
    return names


def audit_target_text(entry, names: Mapping[tuple[str, str], str]) -> str:
    """ "Invoice EHN-00032", or "Invoice #7" when the record has no name (or no longer exists)."""
    if not entry.target_type:
        return ""
    kind = audit_target_label(entry.target_type)
    name = names.get((entry.target_type, entry.target_id or ""))
    if name:
        return f"{kind} {name}"
    return f"{kind} #{entry.target_id}" if entry.target_id else kind


def audit_action_label(action: str) -> str:
    return str(_ACTION_LABELS.get(action, action))


def audit_target_label(target_type: str) -> str:
    return str(_TARGET_LABELS.get(target_type, target_type))


def audit_target_choices() -> list[tuple[str, str]]:
    """(stored table name, label) of every registered kind of record, sorted by label, for a filter."""
    return sorted(((key, str(label)) for key, label in _TARGET_LABELS.items()), key=lambda choice: choice[1].lower())
