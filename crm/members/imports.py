"""Importing organisations and contacts from CSV or XLSX.

One row is an organisation (by organisation number) and optionally one of its contacts; more rows with
the same number add more contacts. Empty cells leave existing values alone, so importing the same file
again changes nothing. The dry run performs the whole import inside a savepoint that it rolls back,
so it reports exactly the errors the import would meet; the import writes everything or nothing.

Progress lives in Redis (``crm:members:import:<id>``) because the import's own transaction is not
committed until the end.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _

from crm.auth.models import User
from crm.errors import DomainError
from crm.extensions import db, redis
from crm.jobs import enqueue_after_commit
from crm.members.models import (
    Contact,
    ContactRole,
    ImportBatch,
    ImportStatus,
    Organisation,
    OrganisationKind,
)
from crm.members.services import (
    DuplicateContact,
    add_contact,
    create_organisation,
    find_active_contact_by_email,
    find_organisation_by_orgnr,
    normalise_orgnr,
    normalise_phone,
    update_contact,
    update_organisation,
)
from crm.members.services.common import clean_postcode
from crm.models import utcnow
from crm.web_urls import clean_web_url

logger = logging.getLogger(__name__)

MAX_ROWS = 5000
COLUMNS: dict[str, tuple[str, ...]] = {
    "orgnr": ("orgnr", "organisasjonsnummer", "organisation number", "org.nr.", "org.nr"),
    "name": ("name", "navn"),
    "kind": ("kind", "type"),
    "employees": ("employees", "ansatte"),
    "annual_turnover_nok": ("annual_turnover_nok", "annual turnover", "omsetning", "årsomsetning"),
    "inhabitants": ("inhabitants", "innbyggere"),
    "postal_street": ("postal_street", "postal address", "postadresse"),
    "postal_postcode": ("postal_postcode", "postcode", "postnummer"),
    "postal_city": ("postal_city", "city", "poststed"),
    "website": ("website", "nettsted"),
    "invoice_email": ("invoice_email", "invoice email", "e-post for faktura", "fakturaepost"),
    "sectors": ("sectors", "bransjer"),
    "contact_name": ("contact_name", "contact", "kontaktperson"),
    "contact_email": ("contact_email", "email", "e-post"),
    "contact_phone": ("contact_phone", "phone", "telefon"),
    "contact_title": ("contact_title", "title", "stilling"),
    "contact_roles": ("contact_roles", "roles", "roller"),
}
ALIASES = {alias: key for key, aliases in COLUMNS.items() for alias in aliases}
INTEGER_FIELDS = ("employees", "annual_turnover_nok", "inhabitants")
ORGANISATION_KEYS = ("name", "kind", *INTEGER_FIELDS, "postal_street", "postal_postcode", "postal_city", "website",
                     "invoice_email")  # fmt: skip


@dataclass
class RowError:
    row: int
    field: str | None
    message: str
    column: str | None = None  # the column's heading as written in the file

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "column": self.column, "message": self.message}


class ImportFileError(DomainError):
    """The file cannot be read as a table at all."""


# --- reading the file -------------------------------------------------------------------------------------


def _table(filename: str, content: bytes) -> list[list[Any]]:
    if filename.lower().endswith(".xlsx"):
        from openpyxl import load_workbook

        try:
            workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception:  # openpyxl raises many kinds for a broken file
            raise ImportFileError(_("The file is not a readable Excel workbook.")) from None
        sheet = workbook.worksheets[0]
        table = [list(row) for row in sheet.iter_rows(values_only=True)]
        workbook.close()
        return table
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode("cp1252")
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") >= first_line.count(",") else ","
    return [row for row in csv.reader(io.StringIO(text), delimiter=delimiter)]


def read_rows(
    filename: str, content: bytes, *, column_names: dict[str, str] | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """(spreadsheet row number, {column key: cell text}) for every non-empty data row. ``column_names``,
    when given, receives each key's heading as written in the file (``type`` for ``kind``)."""
    table = _table(filename, content)
    if not table:
        raise ImportFileError(_("The file is empty."))
    headers = [ALIASES.get(str(cell or "").strip().lower()) for cell in table[0]]
    if column_names is not None:
        for key, cell in zip(headers, table[0], strict=False):
            if key is not None:
                column_names.setdefault(key, str(cell).strip())
    if "orgnr" not in headers:
        raise ImportFileError(_("The first row must name the columns, including the organisation number."))
    if len(table) - 1 > MAX_ROWS:
        raise ImportFileError(_("The file has more than %(max)s rows.", max=MAX_ROWS))
    for number, row in enumerate(table[1:], start=2):
        values = {}
        for key, cell in zip(headers, row, strict=False):
            if key is None or cell is None:
                continue
            text = (f"{cell:.0f}" if isinstance(cell, float) and cell.is_integer() else str(cell)).strip()
            if text:
                values[key] = text
        if values:
            yield number, values


# --- one row ---------------------------------------------------------------------------------------------

KIND_WORDS = {
    **{kind.value: kind for kind in OrganisationKind},
    "bedrift": OrganisationKind.COMPANY,
    "kommune": OrganisationKind.MUNICIPALITY,
    "fylkeskommune": OrganisationKind.COUNTY,
    "fylke": OrganisationKind.COUNTY,
    "statlig virksomhet": OrganisationKind.STATE_BODY,
    "stat": OrganisationKind.STATE_BODY,
    "organisasjon": OrganisationKind.ORGANISATION,
}
ROLE_WORDS = {
    **{role.value: role for role in ContactRole},
    "hovedkontakt": ContactRole.MAIN_CONTACT,
    "fakturakontakt": ContactRole.INVOICE_CONTACT,
    "rapporteringskontakt": ContactRole.REPORTING_CONTACT,
    "bærekraftsansvarlig": ContactRole.SUSTAINABILITY_LEAD,
    "innkjøper": ContactRole.PURCHASER,
    "leder": ContactRole.MANAGER,
    "teammedlem": ContactRole.TEAM_MEMBER,
}


def _organisation_values(cells: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {key: cells[key] for key in ORGANISATION_KEYS if key in cells}
    if "kind" in values:
        kind = KIND_WORDS.get(values["kind"].lower())
        if kind is None:
            raise DomainError(_("Unknown kind of organisation: %(value)s.", value=values["kind"]), field="kind")
        values["kind"] = kind
    for key in INTEGER_FIELDS:
        if key in values:
            digits = values[key].replace(" ", "").replace("\u00a0", "")
            if not digits.isdigit():
                raise DomainError(_("Not a whole number: %(value)s.", value=values[key]), field=key)
            values[key] = int(digits)
    return values


def _roles(text: str | None) -> list[ContactRole] | None:
    if not text:
        return None
    roles = []
    for word in (part.strip().lower() for part in text.replace(";", ",").split(",")):
        if word:
            if word not in ROLE_WORDS:
                raise DomainError(_("Unknown contact role: %(value)s.", value=word), field="contact_roles")
            roles.append(ROLE_WORDS[word])
    return roles


def _cell_errors(number: int, cells: dict[str, str]) -> list[RowError]:
    """The errors of the row's cells that can be judged one by one, so that a row with several mistakes
    reports them all at once (the import itself stops at the first)."""
    checks = [
        ("orgnr", lambda: normalise_orgnr(cells.get("orgnr", ""))),
        ("kind", lambda: _organisation_values({"kind": cells["kind"]}) if "kind" in cells else None),
        *(
            (key, lambda key=key: _organisation_values({key: cells[key]}) if key in cells else None)
            for key in INTEGER_FIELDS
        ),
        ("postal_postcode", lambda: clean_postcode({"postal_postcode": cells.get("postal_postcode")}, "postal")),
        ("website", lambda: clean_web_url(cells.get("website"), field="website")),
        ("contact_phone", lambda: normalise_phone(cells.get("contact_phone"))),
        ("contact_roles", lambda: _roles(cells.get("contact_roles"))),
    ]
    errors = []
    for field, check in checks:
        try:
            check()
        except DomainError as exc:
            errors.append(RowError(number, field, exc.message))
    return errors


def _row_errors(number: int, cells: dict[str, str], first: DomainError) -> list[RowError]:
    """The error that stopped the row, followed by its other cells' errors."""
    field = "contact_email" if first.field == "email" else first.field  # a contact's email is its own column
    errors = [RowError(number, field, first.message)]
    errors += [error for error in _cell_errors(number, cells) if error.field != field]
    return errors


def import_row(cells: dict[str, str], *, actor: User | None, summary: dict[str, int]) -> None:
    """Create or update the row's organisation and contact through the member services."""
    orgnr = normalise_orgnr(cells.get("orgnr", ""))
    values = _organisation_values(cells)
    sectors = [s.strip() for s in cells["sectors"].split(",")] if "sectors" in cells else None
    organisation = find_organisation_by_orgnr(orgnr)
    if organisation is None:
        if "name" not in values:
            raise DomainError(_("A new organisation needs a name."), field="name")
        values.setdefault("kind", OrganisationKind.COMPANY)
        organisation = create_organisation({**values, "orgnr": orgnr}, actor=actor, sectors=sectors or ())
        summary["organisations_created"] = summary.get("organisations_created", 0) + 1
    elif update_organisation(organisation, values, actor=actor, sectors=sectors):
        summary["organisations_updated"] = summary.get("organisations_updated", 0) + 1
    if "contact_name" in cells or "contact_email" in cells:
        _import_contact(organisation, cells, actor=actor, summary=summary)


def _import_contact(organisation: Organisation, cells: dict[str, str], *, actor, summary: dict[str, int]) -> None:
    contact_values = {
        key: cells[f"contact_{key}"] for key in ("name", "email", "phone", "title") if f"contact_{key}" in cells
    }
    roles = _roles(cells.get("contact_roles"))
    existing: Contact | None = None
    if "email" in contact_values:
        existing = find_active_contact_by_email(contact_values["email"])
        if existing is not None and existing.organisation_id != organisation.id:
            raise DuplicateContact(
                _("%(email)s belongs to a contact at another organisation.", email=contact_values["email"]),
                existing_id=existing.id,
                organisation_id=existing.organisation_id,
            )
    else:
        existing = next(
            (c for c in organisation.contacts if c.is_active and c.name == contact_values.get("name")), None
        )
    try:
        if existing is None:
            add_contact(organisation, contact_values, roles=roles or (), actor=actor)
            summary["contacts_created"] = summary.get("contacts_created", 0) + 1
        elif update_contact(existing, contact_values, roles=roles, actor=actor):
            summary["contacts_updated"] = summary.get("contacts_updated", 0) + 1
    except DomainError as exc:
        raise DomainError(exc.message, field=f"contact_{exc.field}" if exc.field else None) from None


# --- the batch -------------------------------------------------------------------------------------------


def progress_key(batch_id: int) -> str:
    return f"crm:members:import:{batch_id}"


def get_progress(batch: ImportBatch) -> tuple[int, int]:
    """Rows done and rows in the file of the check or import now running. The job writes them to Redis as it
    goes, because its database transaction (and so ``batch.total_rows``) is only visible when it ends."""
    value = redis().get(progress_key(batch.id))
    if not value:
        return 0, batch.total_rows
    done, _slash, total = (value.decode() if isinstance(value, bytes) else str(value)).partition("/")
    try:
        return int(done), int(total or batch.total_rows)
    except ValueError:
        return 0, batch.total_rows


def _report_progress(batch_id: int, done: int, total: int) -> None:
    redis().set(progress_key(batch_id), f"{done}/{total}", ex=86_400)


def _process(batch: ImportBatch, actor: User | None) -> tuple[list[RowError], dict[str, int]]:
    """Run every row, each in its own savepoint; returns the row errors and the counts."""
    errors: list[RowError] = []
    summary: dict[str, int] = {}
    column_names: dict[str, str] = {}
    try:
        rows = list(read_rows(batch.filename, batch.content, column_names=column_names))
    except DomainError as exc:
        return [RowError(1, None, exc.message)], summary
    batch.total_rows = len(rows)
    _report_progress(batch.id, 0, len(rows))  # the import after the check starts from zero again
    for index, (number, cells) in enumerate(rows, start=1):
        savepoint = db.session.begin_nested()
        try:
            import_row(cells, actor=actor, summary=summary)
        except DomainError as exc:
            savepoint.rollback()
            for error in _row_errors(number, cells, exc):
                error.column = column_names.get(error.field or "", error.field)
                errors.append(error)
        else:
            savepoint.commit()
        if index % 25 == 0 or index == len(rows):
            _report_progress(batch.id, index, len(rows))
    return errors, summary


def start_import(filename: str, content: bytes, *, actor: User) -> ImportBatch:
    """Store the uploaded file and queue its dry run."""
    if not filename.lower().endswith((".csv", ".xlsx")):
        raise DomainError(_("Upload a CSV or XLSX file."), field="file")
    batch = ImportBatch(
        filename=filename[:255], content=content, sha256=hashlib.sha256(content).hexdigest(), created_by=actor
    )
    db.session.add(batch)
    db.session.flush()
    from crm.members.jobs import check_import

    enqueue_after_commit(check_import, batch.id, queue="default")
    return batch


def check_batch(batch: ImportBatch) -> None:
    """The dry run: perform the import in a savepoint, record the errors and counts, roll it all back."""
    if batch.status is not ImportStatus.UPLOADED:
        return  # already checked (a job run twice)
    outer = db.session.begin_nested()
    errors, summary = _process(batch, batch.created_by)
    total = batch.total_rows
    outer.rollback()
    batch.total_rows = total
    batch.errors = [error.as_dict() for error in errors]
    batch.summary = summary
    batch.status = ImportStatus.REFUSED if errors else ImportStatus.CHECKED
    db.session.flush()


def confirm_import(batch: ImportBatch, *, actor: User) -> None:
    """Queue the import of a file whose dry run was clean."""
    if batch.status is not ImportStatus.CHECKED:
        raise DomainError(_("Only a file that passed the check without errors can be imported."))
    batch.status = ImportStatus.CONFIRMED
    batch.confirmed_by = actor
    batch.confirmed_at = utcnow()
    db.session.flush()
    from crm.members.jobs import run_import

    enqueue_after_commit(run_import, batch.id, queue="default")


def import_batch(batch: ImportBatch) -> bool:
    """Write the confirmed file: every row or, if any row now fails, none. Returns whether it was written."""
    if batch.status is not ImportStatus.CONFIRMED:
        return False
    outer = db.session.begin_nested()
    errors, summary = _process(batch, batch.confirmed_by)
    if errors:
        outer.rollback()
        batch.errors = [error.as_dict() for error in errors]
        batch.status = ImportStatus.FAILED
    else:
        outer.commit()
        batch.summary = summary
        batch.status = ImportStatus.IMPORTED
    batch.finished_at = utcnow()
    db.session.flush()
    logger.info("Import %s: %s %s", batch.id, batch.status.value, summary)
    return not errors
