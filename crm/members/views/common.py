"""What the member register's views share: one service call, committed, or its refusal shown to the user."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import request

from crm.errors import DomainError, Outcome, PermissionDenied, StaleEdit, commit_action, field_error
from crm.extensions import db
from crm.members.models import Contact, Organisation
from crm.members.services.common import DuplicateContact, DuplicateOrganisation


def _existing_record(exc: DomainError) -> Organisation | Contact | None:
    if isinstance(exc, DuplicateOrganisation):
        return db.session.get(Organisation, exc.existing_id)
    if isinstance(exc, DuplicateContact):
        return db.session.get(Contact, exc.existing_id)
    return None


def contact_form(form_class, contact: Contact, *, current: bool = False):
    """A contact's edit form (staff or portal): the posted values, or (on GET, or ``current`` after a refused
    save) the saved ones."""
    form = form_class(formdata=None, obj=contact) if current else form_class(obj=contact)
    if current or request.method == "GET":
        form.roles.data = [role.value for role in contact.sorted_roles]
        form.phone.data = contact.phone_display
    return form


def save_form(form, action: Callable[[], Any]) -> Outcome:
    """Run ``action`` (one service call for a validated form) and commit it.

    A ``DomainError`` (``StaleEdit`` included) is undone and shown on its field (``field_error``); a duplicate
    refusal also loads the record it names, for the form's link to it. ``PermissionDenied`` is no form error: it
    propagates (403).
    """
    try:
        result = commit_action(action)
    except PermissionDenied:
        raise
    except DomainError as exc:
        duplicate = _existing_record(exc)
        field_error(form, exc)
        return Outcome(ok=False, duplicate=duplicate, stale=isinstance(exc, StaleEdit))
    return Outcome(ok=True, result=result)
