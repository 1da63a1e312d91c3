"""Advisory views: ``bp`` (staff, /staff/advisory) is registered by the app factory, ``portal_bp``
(/portal/advisory) by ``init_app``."""

from flask import Flask

from crm.advisory.views import portal, staff
from crm.advisory.views.common import bp, portal_bp

__all__ = ["bp", "init_app", "portal", "portal_bp", "staff"]


def init_app(app: Flask) -> None:
    app.register_blueprint(portal_bp)
