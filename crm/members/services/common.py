"""Errors, input normalising and dates shared by the member services."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from flask_babel import gettext as _
from stdnum.exceptions import ValidationError
from stdnum.no import orgnr as stdnum_orgnr

from crm.errors import Conflict, DomainError
from crm.i18n import oslo_date
from crm.models import utcnow

logger = logging.getLogger(__name__)


class DuplicateOrganisation(Conflict):
    """The organisation number (or foreign id) is already registered; ``existing_id`` names the record."""

    def __init__(self, message: str, *, existing_id: int, field: str | None = "orgnr") -> None:
        super().__init__(message, field=field)
        self.existing_id = existing_id


class DuplicateContact(Conflict):
    """The email belongs to another active contact; ``existing_id`` and ``organisation_id`` name it."""

    def __init__(self, message: str, *, existing_id: int, organisation_id: int) -> None:
        super().__init__(message, field="email")
        self.existing_id = existing_id
        self.organisation_id = organisation_id


# --- normalising input ----------------------------------------------------------------------------------


def normalise_orgnr(value: str) -> str:
    """Nine digits from ``974 760 673`` / ``974760673``; ``DomainError`` (field ``orgnr``) if invalid."""
    try:
        return stdnum_orgnr.validate(value)
    except ValidationError:
        raise DomainError(_("Not a valid Norwegian organisation number."), field="orgnr") from None


def normalise_phone(value: str | None) -> str | None:
    """``+4722334455`` from ``+47 22 33 44 55``, ``22334455`` or ``0047 22 33 44 55``; other countries'
    numbers are kept as ``+<digits>``. ``DomainError`` (field ``phone``) for anything else."""
    if value is None or not value.strip():
        return None
    compact = re.sub(r"[\s\-().]", "", value)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if re.fullmatch(r"\d{8}", compact):
        return "+47" + compact
    if re.fullmatch(r"\+47\d{8}", compact):
        return compact
    if re.fullmatch(r"\+(?!47)[1-9]\d{6,14}", compact):
        return compact
    raise DomainError(_("Enter a phone number with 8 digits, e.g. +47 22 33 44 55."), field="phone")


def normalise_email(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value.strip().lower()


def clean_text_values(values: Mapping[str, Any], fields: Iterable[str], *, missing_name: str) -> dict[str, Any]:
    """The entries of ``values`` named in ``fields``, text stripped and blank text made None.

    Raises DomainError (on ``name``) with ``missing_name`` when a name is given but blank.
    """
    clean = {key: value for key, value in values.items() if key in fields}
    for key, value in list(clean.items()):
        if isinstance(value, str):
            clean[key] = value.strip() or None
    if "name" in clean and not clean["name"]:
        raise DomainError(missing_name, field="name")
    return clean


def clean_postcode(values: dict[str, Any], prefix: str) -> None:
    code = values.get(f"{prefix}_postcode")
    if code is None:
        return
    code = str(code).strip() or None
    values[f"{prefix}_postcode"] = code
    country = values.get(f"{prefix}_country") or "NO"
    if code and country == "NO" and not re.fullmatch(r"\d{4}", code):
        raise DomainError(_("A Norwegian postcode has 4 digits."), field=f"{prefix}_postcode")


# --- dates ---


def today() -> date:
    return oslo_date(utcnow())


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)
