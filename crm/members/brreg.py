"""The Brønnøysund register (Enhetsregisteret) adapter: look up an organisation by its number.

The only module that talks to the register. ``BRREG_API_URL`` (config) is the ``enheter`` endpoint;
``GET {BRREG_API_URL}/{orgnr}`` answers 200 with the unit, 404 for an unknown number and 410 Gone
(with ``slettedato``) for a deleted unit.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import current_app
from flask_babel import gettext as _

from crm.errors import DomainError
from crm.members.models import OrganisationKind
from crm.members.services import normalise_orgnr

logger = logging.getLogger(__name__)

# Organisation form codes (Enhetsregisteret) that tell us the kind of organisation.
KIND_BY_FORM = {
    "KOMM": OrganisationKind.MUNICIPALITY,
    "FYLK": OrganisationKind.COUNTY,
    "STAT": OrganisationKind.STATE_BODY,
    "ORGL": OrganisationKind.STATE_BODY,
    "SF": OrganisationKind.STATE_BODY,
    "HF": OrganisationKind.STATE_BODY,
    "FLI": OrganisationKind.ORGANISATION,
    "STI": OrganisationKind.ORGANISATION,
    "FORE": OrganisationKind.ORGANISATION,
}


class BrregError(DomainError):
    """The register gave no usable answer; the message is safe to show."""


class BrregNotFound(BrregError):
    status_code = 404


class BrregDeleted(BrregError):
    status_code = 410

    def __init__(self, message: str, *, deleted_on: date | None) -> None:
        super().__init__(message, field="orgnr")
        self.deleted_on = deleted_on


class BrregUnavailable(BrregError):
    status_code = 503


@dataclass(frozen=True)
class BrregAddress:
    street: str | None
    postcode: str | None
    city: str | None
    country_code: str | None


@dataclass(frozen=True)
class BrregUnit:
    orgnr: str
    name: str
    organisation_form_code: str | None
    organisation_form: str | None
    industry_code: str | None
    industry: str | None
    sector_code: str | None
    employees: int | None
    business_address: BrregAddress | None
    postal_address: BrregAddress | None
    vat_registered: bool
    website: str | None
    parent_orgnr: str | None

    @property
    def suggested_kind(self) -> OrganisationKind:
        return KIND_BY_FORM.get(self.organisation_form_code or "", OrganisationKind.COMPANY)

    def form_values(self) -> dict[str, Any]:
        """Values for the organisation form's fields (only what the register knows)."""
        values: dict[str, Any] = {
            "name": self.name,
            "orgnr": self.orgnr,
            "kind": self.suggested_kind.value,
            "employees": self.employees,
            "is_contracting_authority": self.suggested_kind is not OrganisationKind.COMPANY
            and self.suggested_kind is not OrganisationKind.ORGANISATION,
        }
        if self.website:
            values["website"] = self.website if "://" in self.website else f"https://{self.website}"
        for prefix, address in (("visiting", self.business_address), ("postal", self.postal_address)):
            if address is not None:
                values[f"{prefix}_street"] = address.street
                values[f"{prefix}_postcode"] = address.postcode
                values[f"{prefix}_city"] = address.city
                values[f"{prefix}_country"] = address.country_code or "NO"
        return {key: value for key, value in values.items() if value is not None}


def _address(data: dict[str, Any] | None) -> BrregAddress | None:
    if not data:
        return None
    lines = [line for line in data.get("adresse") or [] if line]
    return BrregAddress(
        street=", ".join(lines) or None,
        postcode=data.get("postnummer"),
        city=(data.get("poststed") or "").title() or None,
        country_code=data.get("landkode"),
    )


def _code(data: dict[str, Any], key: str) -> tuple[str | None, str | None]:
    value = data.get(key) or {}
    return value.get("kode"), value.get("beskrivelse")


def parse_unit(data: dict[str, Any]) -> BrregUnit:
    form_code, form = _code(data, "organisasjonsform")
    industry_code, industry = _code(data, "naeringskode1")
    sector_code, _sector = _code(data, "institusjonellSektorkode")
    return BrregUnit(
        orgnr=data["organisasjonsnummer"],
        name=data.get("navn") or "",
        organisation_form_code=form_code,
        organisation_form=form,
        industry_code=industry_code,
        industry=industry,
        sector_code=sector_code,
        employees=data.get("antallAnsatte"),
        business_address=_address(data.get("forretningsadresse")),
        postal_address=_address(data.get("postadresse")),
        vat_registered=bool(data.get("registrertIMvaregisteret")),
        website=data.get("hjemmeside"),
        parent_orgnr=data.get("overordnetEnhet"),
    )


def _deleted_on(body: bytes) -> date | None:
    try:
        return date.fromisoformat(json.loads(body)["slettedato"])
    except (ValueError, KeyError, TypeError):
        return None


def lookup(orgnr: str) -> BrregUnit:
    """The register's record of ``orgnr``.

    Raises ``DomainError`` (invalid number), ``BrregNotFound``, ``BrregDeleted`` (with ``deleted_on``)
    or ``BrregUnavailable`` (timeout, connection error, server error, unreadable answer).
    """
    orgnr = normalise_orgnr(orgnr)
    url = f"{current_app.config['BRREG_API_URL'].rstrip('/')}/{orgnr}"
    timeout = current_app.config.get("BRREG_TIMEOUT_SECONDS", 3)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - URL from config
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            data = json.loads(response.read())
        return parse_unit(data)
    except urllib.error.HTTPError as exc:
        with exc:
            status, body = exc.code, exc.read()
        if status == 404:
            raise BrregNotFound(_("The Brønnøysund register has no organisation with this number.")) from None
        if status == 410:
            deleted_on = _deleted_on(body)
            raise BrregDeleted(
                _("The organisation was deleted from the Brønnøysund register on %(date)s.", date=_date(deleted_on)),
                deleted_on=deleted_on,
            ) from None
        logger.warning("Brreg answered %s for %s", status, orgnr)
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        logger.warning("Brreg unreachable for %s: %s", orgnr, exc)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("Brreg gave an unreadable answer for %s: %s", orgnr, exc)
    raise BrregUnavailable(_("The Brønnøysund register cannot be reached right now. Fill in the details by hand."))


def _date(value: date | None) -> str:
    from crm.i18n import format_date_no

    return format_date_no(value) if value else "?"
