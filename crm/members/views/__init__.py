"""Views of the member register; ``bp`` (staff) is registered by the app factory, the others by ``init_app``."""

from flask import Flask

from crm.members.views import fees, imports, portal, public, staff, tabs
from crm.members.views.blueprints import bp, portal_bp, public_bp

__all__ = ["bp", "fees", "imports", "init_app", "portal", "public", "staff", "tabs"]


def init_app(app: Flask) -> None:
    from crm.members.cli import register_commands

    register_commands()
    app.register_blueprint(public_bp)
    app.register_blueprint(portal_bp)
