from sqlalchemy import func, select
from stdnum.no import orgnr

from crm.auth.models import Role
from crm.extensions import db
from crm.members.demo import load_members_demo
from crm.members.fees import calculate_fee
from crm.members.models import Contact, Membership, MembershipStatus, Organisation, OrganisationKind
from tests.factories import make_staff


def test_demo_has_every_kind_and_status_with_valid_numbers_and_is_idempotent():
    advisers = [make_staff(Role.ADVISER), make_staff(Role.ADVISER)]
    result = load_members_demo()
    assert result["organisations"] >= 60
    organisations = db.session.scalars(select(Organisation)).all()
    assert len(organisations) >= 60
    assert all(orgnr.is_valid(o.orgnr) for o in organisations)
    assert {o.kind for o in organisations} == set(OrganisationKind)
    assert {m.status for m in db.session.scalars(select(Membership))} == set(MembershipStatus)
    assert db.session.scalar(select(func.count()).select_from(Contact)) >= 120
    active = db.session.scalars(select(Membership).where(Membership.status == MembershipStatus.ACTIVE)).all()
    assert {m.adviser_id for m in active} == {a.id for a in advisers}
    assert all(m.basic_level_deadline and m.principles_version == "2022" for m in active)
    # Every active member's 2026 fee can be calculated from the seeded schedules.
    assert all(calculate_fee(m, 2026).amount_ore > 0 for m in active)
    assert load_members_demo() == {"organisations": 0, "contacts": 0}
