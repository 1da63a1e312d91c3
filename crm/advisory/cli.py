"""``flask crm advisory-demo``: load the demo advisory cases (after the staff and members demo)."""

from __future__ import annotations

import click
from flask import current_app

from crm.extensions import db


@click.command("advisory-demo")
def advisory_demo_command() -> None:
    """Load demo advisory cases and reply templates (idempotent); needs the members demo first."""
    from crm.advisory.demo import load_advisory_demo

    if current_app.config.get("ENV_NAME") == "production":
        raise click.ClickException("Refusing to load demo data in production.")
    result = load_advisory_demo()
    db.session.commit()
    click.echo(f"Demo advisory cases loaded: {result['cases']}.")


def register_commands() -> None:
    from crm.cli import crm_cli

    if "advisory-demo" not in crm_cli.commands:
        crm_cli.add_command(advisory_demo_command)
