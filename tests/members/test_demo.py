from sqlalchemy import func, select
from stdnum.no import orgnr

from crm.audit.models import AuditEntry
from crm.auth.models import Role, User
from crm.extensions import db
from crm.members.demo import load_members_demo
from crm.members.fees import calculate_fee
from crm.members.models import Contact, ContactRole, Membership, MembershipStatus, Organisation, OrganisationKind
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
    by_name = {o.name: {s.name for s in o.sectors} for o in organisations}
    assert by_name["Nordlys Tekstil AS"] == {"Tekstil og klær"}  # a company's sectors fit what it does
    assert by_name["Rogaland Byggmateriell AS"] == {"Bygg og anlegg"}
    assert all(by_name[o.name] for o in organisations)
    assert load_members_demo() == {"organisations": 0, "contacts": 0}


def test_the_demo_member_logins_see_their_organisation_in_the_portal(client):
    from crm.demo import DEMO_LOGINS, load_demo
    from tests.helpers import login

    result = load_demo()
    assert result.organisations >= 60
    members = [lg for lg in DEMO_LOGINS if lg.roles == (Role.MEMBER,)]
    assert result.linked == len(members) >= 2
    db.session.commit()
    for demo in members:
        user = db.session.scalar(select(User).where(User.email == demo.email))
        contact = db.session.scalar(select(Contact).where(Contact.user_id == user.id))
        assert contact.organisation.name == demo.organisation
        assert contact.organisation.membership.status is MembershipStatus.ACTIVE
        assert ContactRole.MAIN_CONTACT in contact.roles
        assert (contact.name, contact.email) == (user.full_name, user.email)
    counts = (db.session.scalar(select(func.count(Contact.id))), db.session.scalar(select(func.count(AuditEntry.id))))
    again = load_demo()
    assert (again.created, again.organisations, again.linked) == ([], 0, 0)
    assert counts == (
        db.session.scalar(select(func.count(Contact.id))),
        db.session.scalar(select(func.count(AuditEntry.id))),
    )
    db.session.commit()

    hanne = next(lg for lg in members if lg.email == "hanne.lunde@example.no")
    login(client, db.session.scalar(select(User).where(User.email == hanne.email)), password=hanne.password)
    page = client.get("/portal/organisation/")
    assert page.status_code == 200
    assert "Nordlys Tekstil AS" in page.text and "Hanne Lunde" in page.text


def test_the_cli_reports_the_member_register(app):
    result = app.test_cli_runner().invoke(args=["crm", "demo"])
    assert result.exit_code == 0, result.output
    from crm.demo import DEMO_LOGINS
    from crm.members.demo import ORGANISATIONS

    linked = sum(1 for lg in DEMO_LOGINS if lg.organisation)
    expected = f"Member register: {len(ORGANISATIONS)} organisations created, {linked} member logins linked."
    assert expected in result.output
    assert "member (Nordlys Tekstil AS)" in result.output
