"""Staff screens of the member register under /staff/members."""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("members", __name__, url_prefix="/staff/members")


def init_app(app: Flask) -> None:
    from crm.members.cli import register_commands

    register_commands()
