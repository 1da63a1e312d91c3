"""A small world for advisory tests: two member organisations with portal users and advisers."""

from __future__ import annotations

from crm.auth.models import Role
from crm.extensions import db
from crm.members.models import ContactRole, MembershipStatus
from tests.factories import make_contact, make_organisation, make_staff, make_user


def member_at(org, *roles, **overrides):
    user = make_user(roles={Role.MEMBER})
    contact = make_contact(org, roles=list(roles), user_id=user.id, **overrides)
    return user, contact


def build_world(commit: bool = True) -> dict:
    adviser = make_staff(Role.ADVISER, full_name="Kari Rådgiver")
    backup = make_staff(Role.ADVISER, full_name="Ola Reserve")
    a = make_organisation(name="Alfa AS", status=MembershipStatus.ACTIVE)
    a.membership.adviser = adviser
    b = make_organisation(name="Beta AS", status=MembershipStatus.ACTIVE)
    b.membership.adviser = backup
    main_user, main = member_at(a, ContactRole.MAIN_CONTACT, name="Anne Hoved")
    req_user, req = member_at(a, ContactRole.TEAM_MEMBER, name="Per Spør")
    other_user, other = member_at(a, ContactRole.TEAM_MEMBER, name="Siri Kollega")
    b_user, b_contact = member_at(b, ContactRole.MAIN_CONTACT, name="Bente Beta")
    db.session.flush()
    if commit:
        db.session.commit()
    return {
        "adviser": adviser,
        "backup": backup,
        "a": a,
        "b": b,
        "main_user": main_user,
        "main": main,
        "req_user": req_user,
        "req": req,
        "other_user": other_user,
        "other": other,
        "b_user": b_user,
        "b_contact": b_contact,
    }
