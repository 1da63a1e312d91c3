"""The member register's blueprints: staff screens, the public application form and the member portal."""

from flask import Blueprint

bp = Blueprint("members", __name__, url_prefix="/staff/members")
public_bp = Blueprint("membership", __name__, url_prefix="/apply")
portal_bp = Blueprint("member_portal", __name__, url_prefix="/portal/organisation")
