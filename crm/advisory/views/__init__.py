"""Advisory views: ``bp`` (staff, /staff/advisory) is registered by the app factory, ``portal_bp``
(/portal/advisory) by ``init_app``."""

from flask import Flask

from crm.advisory.views import portal, staff
from crm.advisory.views.common import bp, portal_bp

__all__ = ["bp", "init_app", "portal", "portal_bp", "staff"]


def init_app(app: Flask) -> None:
    from crm.advisory.deadlines import business_seconds_between

    app.register_blueprint(portal_bp)
    # Time left on a deadline in business hours (negative once passed), as the targets count it.
    app.jinja_env.filters["business_hours_until"] = lambda due, now: round(business_seconds_between(now, due) / 3600, 1)
