"""The Brønnøysund register (Enhetsregisteret) adapter: look up an organisation by its number.

The only module that talks to the register. ``BRREG_API_URL`` (config) is the ``enheter`` endpoint;
``GET {BRREG_API_URL}/{orgnr}`` answers 200 with the unit, 404 for an unknown number and 410 Gone
(with ``slettedato``) for a deleted unit. A unit's record says whether it is bankrupt (``konkurs``), under
liquidation (``underAvvikling``) or forced liquidation or dissolution
(``underTvangsavviklingEllerTvangsopplosning``). A number that is not a unit may be a sub-unit (a branch,
``underenhet``): the sibling ``underenheter`` endpoint has it, with its main unit in ``overordnetEnhet``.
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
from crm.members.models import OrganisationKind, format_orgnr
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


class BrregSubUnit(BrregError):
    """The number is a sub-unit's; organisations are registered by their main unit (``main_orgnr``)."""

    status_code = 404

    def __init__(self, message: str, *, name: str, main_orgnr: str | None) -> None:
        super().__init__(message, field="orgnr")
        self.name = name
        self.main_orgnr = main_orgnr


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
    bankrupt: bool = False
    under_liquidation: bool = False
    under_forced_dissolution: bool = False
    deleted_on: date | None = None

    @property
    def warnings(self) -> list[str]:
        """What staff (and an applicant) should know before registering this unit as a member."""
        found = []
        if self.bankrupt:
            found.append(_("The Brønnøysund register says %(name)s is bankrupt (konkurs).", name=self.name))
        if self.under_liquidation:
            found.append(
                _("The Brønnøysund register says %(name)s is being wound up (under avvikling).", name=self.name)
            )
        if self.under_forced_dissolution:
            found.append(
                _(
                    "The Brønnøysund register says %(name)s is under forced liquidation or dissolution "
                    "(tvangsavvikling eller tvangsoppløsning).",
                    name=self.name,
                )
            )
        if self.deleted_on is not None:
            found.append(
                _(
                    "%(name)s was deleted from the Brønnøysund register on %(date)s.",
                    name=self.name,
                    date=_date(self.deleted_on),
                )
            )
        return found

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
        bankrupt=data.get("konkurs") is True,
        under_liquidation=data.get("underAvvikling") is True,
        under_forced_dissolution=data.get("underTvangsavviklingEllerTvangsopplosning") is True,
        deleted_on=_iso_date(data.get("slettedato")),
    )


def _iso_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value)
    except (ValueError, TypeError):
        return None


def _deleted_on(body: bytes) -> date | None:
    try:
        return _iso_date(json.loads(body).get("slettedato"))
    except (ValueError, AttributeError):
        return None


def _sub_units_url() -> str:
    """``.../enheter`` -> ``.../underenheter``, the register's sibling endpoint for sub-units."""
    head, _slash, _enheter = current_app.config["BRREG_API_URL"].rstrip("/").rpartition("/")
    return f"{head}/underenheter"


def _get_json(url: str) -> tuple[int, Any]:
    """(200, the parsed body) or (the HTTP error status, the raw error body). Connection errors, timeouts and
    unreadable answers propagate."""
    timeout = current_app.config.get("BRREG_TIMEOUT_SECONDS", 3)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - URL from config
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return 200, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def _not_a_unit(orgnr: str) -> BrregError:
    """After a 404 on ``enheter``: the number's sub-unit, if it is one, else "not found"."""
    status, data = _get_json(f"{_sub_units_url()}/{orgnr}")
    if status == 200 and isinstance(data, dict):
        name = data.get("navn") or orgnr
        main = data.get("overordnetEnhet")
        main = main if isinstance(main, str) and len(main) == 9 and main.isascii() and main.isdigit() else None
        if main:
            message = _(
                "%(orgnr)s is a sub-unit (underenhet) of another organisation: %(name)s. Members are registered "
                "by their main unit, %(main)s.",
                orgnr=format_orgnr(orgnr),
                name=name,
                main=format_orgnr(main),
            )
        else:
            message = _("%(orgnr)s is a sub-unit (underenhet): %(name)s.", orgnr=format_orgnr(orgnr), name=name)
        return BrregSubUnit(message, name=name, main_orgnr=main)
    if status not in (200, 404, 410):
        logger.warning("Brreg answered %s for sub-unit %s", status, orgnr)
    return BrregNotFound(_("The Brønnøysund register has no organisation with this number."))


def lookup(orgnr: str) -> BrregUnit:
    """The register's record of ``orgnr``.

    Raises ``DomainError`` (invalid number), ``BrregNotFound``, ``BrregSubUnit`` (the number is a
    sub-unit's, with its ``main_orgnr``), ``BrregDeleted`` (with ``deleted_on``) or ``BrregUnavailable``
    (timeout, connection error, server error, unreadable answer). A unit that is bankrupt or being wound up
    is returned; its ``warnings`` say so.
    """
    orgnr = normalise_orgnr(orgnr)
    url = f"{current_app.config['BRREG_API_URL'].rstrip('/')}/{orgnr}"
    try:
        status, data = _get_json(url)
        if status == 200:
            return parse_unit(data)
        if status == 404:
            raise _not_a_unit(orgnr) from None
        if status == 410:
            deleted_on = _deleted_on(data)
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
