"""``flask crm fees ...``: fee schedule commands."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import click
from flask.cli import AppGroup

from crm.errors import DomainError
from crm.extensions import db

fees_cli = AppGroup("fees", help="Membership fee schedules.")


@fees_cli.command("copy-year")
@click.option("--from", "from_year", type=int, required=True, help="The year to copy.")
@click.option("--to", "to_year", type=int, required=True, help="The new year; must not have schedules yet.")
@click.option("--index", "index_percent", required=True, help="Index adjustment in per cent, e.g. 3.5.")
def copy_year_command(from_year: int, to_year: int, index_percent: str) -> None:
    """Copy a year's fee schedules with an index percentage (fees rounded to whole hundreds of kroner,
    per-inhabitant rates to whole øre; turnover limits unchanged)."""
    from crm.members.fees import copy_fee_schedules

    try:
        index = Decimal(index_percent.replace(",", "."))
    except InvalidOperation:
        raise click.ClickException(f"Not a number: {index_percent}") from None
    try:
        copies = copy_fee_schedules(from_year, to_year, index)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    click.echo(f"Copied {len(copies)} fee schedules from {from_year} to {to_year} (index {index} %).")


@fees_cli.command("seed")
@click.option("--year", type=int, default=2026, show_default=True)
def seed_command(year: int) -> None:
    """Create the membership categories and the example fee schedules for a year (idempotent)."""
    from crm.members.fees import seed_fee_schedules

    created = seed_fee_schedules(year)
    db.session.commit()
    click.echo(f"Created {len(created)} fee schedules for {year}.")


def register_commands() -> None:
    from crm.cli import crm_cli

    if "fees" not in crm_cli.commands:
        crm_cli.add_command(fees_cli)
