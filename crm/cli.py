"""``flask crm ...`` commands."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from crm.errors import DomainError
from crm.extensions import db

logger = logging.getLogger(__name__)

crm_cli = AppGroup("crm", help="Etisk handel Norge CRM commands.")


@contextmanager
def committed() -> Iterator[None]:
    """Commit what the block did; a ``DomainError`` rolls it back and becomes a one-line error
    with a non-zero exit."""
    try:
        yield
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None


@crm_cli.command("worker")
@click.option("--queues", default="emails,billing,default", show_default=True, help="Comma-separated queue names.")
@click.option("--burst", is_flag=True, help="Run until the queues are empty, then stop.")
@click.option("--no-scheduler", is_flag=True, help="Do not run periodic jobs in this worker.")
def worker_command(queues: str, burst: bool, no_scheduler: bool) -> None:
    """Run an RQ worker with the scheduler (retries, periodic jobs) in an app context."""
    from crm.jobs import QUEUE_NAMES, enqueue_due_periodic_jobs, make_worker, use_worker_redis

    names = tuple(name.strip() for name in queues.split(",") if name.strip())
    unknown = [name for name in names if name not in QUEUE_NAMES]
    if unknown:
        raise click.UsageError(f"Unknown queue(s): {', '.join(unknown)}")
    app = current_app._get_current_object()
    use_worker_redis(app)
    worker = make_worker(app, names)
    stop = threading.Event()

    def periodic_loop() -> None:
        while not stop.wait(15):
            try:
                with app.app_context():
                    enqueue_due_periodic_jobs()
            except Exception:
                logger.exception("Periodic scheduling failed")

    if not no_scheduler and not burst:
        with app.app_context():
            enqueue_due_periodic_jobs()
        threading.Thread(target=periodic_loop, name="crm-periodic", daemon=True).start()
    click.echo(f"Worker listening on {', '.join(names)}")
    try:
        worker.work(burst=burst, with_scheduler=not no_scheduler)
    finally:
        stop.set()


@crm_cli.command("create-admin")
@click.option("--email", prompt=True)
@click.option("--name", "full_name", prompt="Full name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_admin_command(email: str, full_name: str, password: str) -> None:
    """Create an administrator account."""
    from crm.auth.models import Role
    from crm.auth.services import create_user

    with committed():
        create_user(email=email, full_name=full_name, password=password, roles={Role.ADMIN})
    click.echo(f"Administrator {email} created.")


@crm_cli.command("set-password")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def set_password_command(email: str, password: str) -> None:
    """Set a user's password (ends their sessions)."""
    from crm.auth.services import find_user_by_email, set_password

    user = find_user_by_email(email)
    if user is None:
        raise click.ClickException(f"No user has the email address {email.strip()!r}.")
    with committed():
        set_password(user, password, actor=None, reason="cli")
    click.echo(f"Password set for {user.email}.")


def register_cli(app: Flask) -> None:
    app.cli.add_command(crm_cli)


@crm_cli.command("send-test-email")
@click.option("--to", "address", required=True, help="The address to send a test email to.")
def send_test_email_command(address: str) -> None:
    """Queue a test email; a worker (`flask crm worker`) sends it."""
    from crm.mail.services import queue_email

    with committed():
        message = queue_email(
            to=address, template="test_message", context={"requested_by": "flask crm send-test-email"}
        )
    click.echo(f"Test email {message.message_id} queued for {message.to_address}.")


@crm_cli.command("demo")
@click.option("--print-logins", is_flag=True, help="Only print the demo logins; load nothing.")
def demo_command(print_logins: bool) -> None:
    """Load the Norwegian demo data (idempotent) and print the demo logins."""
    from crm.demo import format_logins, load_demo

    if not print_logins:
        if current_app.config.get("ENV_NAME") == "production":
            raise click.ClickException("Refusing to load demo accounts with public passwords in production.")
        result = load_demo()
        db.session.commit()
        click.echo(f"Demo data loaded: {len(result.created)} accounts created, {len(result.existing)} already there.")
        click.echo(
            f"Member register: {result.organisations} organisations created, {result.linked} member logins linked."
        )
    click.echo(format_logins())


storage_cli = AppGroup("storage", help="Stored files (CRM_STORAGE_URL).")
crm_cli.add_command(storage_cli)


@storage_cli.command("copy-attachments")
@click.option(
    "--from",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The folder the attachments are in today (default: CRM_ATTACHMENTS_DIR).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be copied.")
def copy_attachments_command(folder: Path | None, dry_run: bool) -> None:
    """Copy case attachments from a local folder into the configured storage; files already there are
    skipped, so it can run again after an interruption."""
    from crm.advisory.attachments import copy_attachments_to_storage
    from crm.storage import storage

    folder = folder or Path(current_app.config["ATTACHMENTS_DIR"])
    count = copy_attachments_to_storage(folder, dry_run=dry_run)
    verb = "would copy" if dry_run else "copied"
    click.echo(f"{verb} {count.copied}, already in {storage()!r}: {count.present}, missing: {len(count.missing)}")
    for stored_name in count.missing:
        click.echo(f"missing: {stored_name} (no file in {folder} nor in the storage)", err=True)
    if count.missing:
        raise SystemExit(1)
