"""``flask crm billing ...``: reconciliation with Stripe."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from crm.extensions import db

billing_cli = AppGroup("billing", help="Billing through Stripe.")


@billing_cli.command("reconcile")
@click.option("--year", type=int, required=True, help="The invoice year to compare.")
@click.option("--fix", is_flag=True, help="Apply Stripe's state to the local invoices.")
def reconcile_command(year: int, fix: bool) -> None:
    """Compare local invoices of a year with Stripe and print every difference (safe to run again)."""
    from crm.billing.reconcile import reconcile

    differences = reconcile(year, fix=fix)
    for line in differences:
        click.echo(line)
    if fix:
        db.session.commit()
    click.echo(f"{len(differences)} differences" + (" fixed" if fix and differences else ""))


def register_commands() -> None:
    from crm.cli import crm_cli

    if "billing" not in crm_cli.commands:
        crm_cli.add_command(billing_cli)
