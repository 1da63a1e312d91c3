from datetime import date

import pytest
from sqlalchemy import select

from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.errors import DomainError
from crm.extensions import db
from crm.members import services
from crm.members.models import (
    Contact,
    ContactRole,
    MembershipEvent,
    MembershipStatus,
    Organisation,
    OrganisationKind,
    TransparencyScope,
)
from crm.members.services import (
    DuplicateContact,
    DuplicateOrganisation,
    add_contact,
    change_membership_status,
    create_organisation,
    deactivate_contact,
    update_contact,
    update_organisation,
)
from tests.factories import make_contact, make_organisation, make_staff

S = MembershipStatus


def audit_actions(target_type=None):
    stmt = select(AuditEntry.action).order_by(AuditEntry.id)
    if target_type:
        stmt = stmt.where(AuditEntry.target_type == target_type)
    return list(db.session.scalars(stmt))


# --- organisations ---------------------------------------------------------------------------------------


def test_create_organisation_normalises_orgnr_and_opens_a_prospect_membership():
    staff = make_staff()
    org = create_organisation(
        {"name": " Fjordmat AS ", "orgnr": "974 760 673", "kind": "company", "role": "admin"},
        actor=staff,
        sectors=["Tekstil", "Mat og drikke"],
    )
    assert org.orgnr == "974760673"
    assert org.orgnr_display == "974 760 673"
    assert org.name == "Fjordmat AS"
    assert [s.name for s in org.sectors] == ["Mat og drikke", "Tekstil"]
    assert org.membership.status is S.PROSPECT
    assert org.membership.category.code == "company"
    assert org.transparency_act_scope is TransparencyScope.UNKNOWN
    assert [e.to_status for e in org.membership.events] == [S.PROSPECT]
    assert "members.organisation.created" in audit_actions("organisations")


@pytest.mark.parametrize("orgnr", ["974760674", "12345678", "abc", "97476067a"])
def test_invalid_orgnr_is_refused(orgnr):
    with pytest.raises(DomainError) as exc:
        create_organisation({"name": "X", "orgnr": orgnr, "kind": "company"}, actor=None)
    assert exc.value.field == "orgnr"
    assert db.session.scalar(select(Organisation).where(Organisation.name == "X")) is None


def test_duplicate_orgnr_carries_the_existing_id():
    existing = make_organisation(orgnr="988077917")
    with pytest.raises(DuplicateOrganisation) as exc:
        create_organisation({"name": "Copy", "orgnr": "988 077 917", "kind": "company"}, actor=None)
    assert exc.value.existing_id == existing.id
    assert exc.value.field == "orgnr"


def test_foreign_organisation_needs_foreign_id_unique_per_country():
    org = create_organisation(
        {"name": "Svensk AB", "country": "se", "foreign_id": "556000-0000", "kind": "company"}, actor=None
    )
    assert org.orgnr is None and org.country == "SE"
    assert org.identifier_display == "SE 556000-0000"
    with pytest.raises(DuplicateOrganisation) as exc:
        create_organisation(
            {"name": "Svensk 2", "country": "SE", "foreign_id": "556000-0000", "kind": "company"}, actor=None
        )
    assert exc.value.existing_id == org.id
    other_country = create_organisation(
        {"name": "Dansk", "country": "DK", "foreign_id": "556000-0000", "kind": "company"}, actor=None
    )
    assert other_country.id != org.id
    with pytest.raises(DomainError):
        create_organisation({"name": "Nobody", "country": "DE", "kind": "company"}, actor=None)


def test_norwegian_postcode_must_have_four_digits():
    with pytest.raises(DomainError) as exc:
        create_organisation(
            {"name": "X", "orgnr": "923609016", "kind": "company", "postal_postcode": "123"}, actor=None
        )
    assert exc.value.field == "postal_postcode"


def test_update_organisation_records_changed_fields_and_refuses_a_parent_cycle():
    staff = make_staff()
    parent = make_organisation()
    child = make_organisation(parent_id=parent.id)
    changed = update_organisation(
        child, {"name": child.name, "employees": 120, "transparency_act_scope": "yes"}, actor=staff, sectors=["IKT"]
    )
    assert sorted(changed) == ["employees", "sectors", "transparency_act_scope"]
    with pytest.raises(DomainError) as exc:
        update_organisation(parent, {"parent_id": child.id}, actor=staff)
    assert exc.value.field == "parent_id"
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "members.organisation.updated")).one()
    assert entry.actor_id == staff.id


def test_update_organisation_refuses_another_organisations_orgnr():
    make_organisation(orgnr="923609016")
    org = make_organisation()
    with pytest.raises(DuplicateOrganisation):
        update_organisation(org, {"orgnr": "923609016"}, actor=None)


def test_peppol_id_only_for_ehf_receivers():
    org = make_organisation(orgnr="974760673", kind=OrganisationKind.MUNICIPALITY)
    assert org.peppol_id is None
    org.ehf_receiver = True
    assert org.peppol_id == "0192:974760673"


# --- contacts --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored", "shown"),
    [
        ("+47 22 33 44 55", "+4722334455", "+47 22 33 44 55"),
        ("22334455", "+4722334455", "+47 22 33 44 55"),
        ("0047 22 33 44 55", "+4722334455", "+47 22 33 44 55"),
        ("+46 8 123 456 78", "+46812345678", "+46812345678"),
    ],
)
def test_phone_numbers_are_normalised(given, stored, shown):
    contact = add_contact(make_organisation(), {"name": "Kari", "phone": given}, actor=None)
    assert contact.phone == stored
    assert contact.phone_display == shown


@pytest.mark.parametrize("bad", ["1234", "+47 1234", "22 33 44 55 66", "tlf"])
def test_bad_phone_numbers_are_refused(bad):
    with pytest.raises(DomainError) as exc:
        add_contact(make_organisation(), {"name": "Kari", "phone": bad}, actor=None)
    assert exc.value.field == "phone"


def test_add_contact_with_roles_consent_and_audit():
    staff = make_staff()
    org = make_organisation()
    contact = add_contact(
        org,
        {"name": "Kari Nordmann", "email": " Kari@Fjordmat.NO ", "newsletter_consent": True},
        roles=[ContactRole.MAIN_CONTACT, "invoice_contact"],
        actor=staff,
    )
    assert contact.email == "kari@fjordmat.no"
    assert contact.roles == {ContactRole.MAIN_CONTACT, ContactRole.INVOICE_CONTACT}
    assert contact.newsletter_consented_at is not None
    assert "members.contact.created" in audit_actions("contacts")


def test_an_email_belongs_to_one_active_contact():
    org = make_organisation()
    first = make_contact(org, email="ola@example.no")
    other_org = make_organisation()
    with pytest.raises(DuplicateContact) as exc:
        add_contact(other_org, {"name": "Ola 2", "email": "OLA@example.no"}, actor=None)
    assert exc.value.existing_id == first.id
    assert exc.value.organisation_id == org.id
    second = make_contact(other_org, email="ola2@example.no")
    with pytest.raises(DuplicateContact):
        update_contact(second, {"email": "ola@example.no"}, actor=None)
    # Once the first has left, the address is free again.
    deactivate_contact(first, actor=None, left_on=date(2026, 5, 1))
    assert first.left_on == date(2026, 5, 1)
    again = add_contact(other_org, {"name": "Ola Again", "email": "ola@example.no"}, actor=None)
    assert again.is_active


def test_database_refuses_two_active_contacts_with_one_email():
    from sqlalchemy.exc import IntegrityError

    org = make_organisation()
    make_contact(org, email="dup@example.no")
    with pytest.raises(IntegrityError), db.session.begin_nested():
        db.session.add(Contact(organisation=org, name="Dup", email="dup@example.no", is_active=True))
        db.session.flush()
    # Inactive contacts may share it.
    db.session.add(Contact(organisation=org, name="Old", email="dup@example.no", is_active=False))
    db.session.flush()


def test_update_contact_audits_changed_fields_only():
    staff = make_staff()
    contact = make_contact(make_organisation(), roles=[ContactRole.TEAM_MEMBER])
    changed = update_contact(contact, {"name": contact.name, "title": "Innkjøpssjef"}, roles=["purchaser"], actor=staff)
    assert changed == ["title", "roles"]
    assert contact.roles == {ContactRole.PURCHASER}
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "members.contact.updated")).one()
    assert entry.details == {"fields": ["title", "roles"]}
    assert update_contact(contact, {"title": "Innkjøpssjef"}, actor=staff) == []


def test_deactivating_twice_is_refused():
    contact = make_contact(make_organisation())
    deactivate_contact(contact, actor=None)
    with pytest.raises(DomainError):
        deactivate_contact(contact, actor=None)


# --- membership lifecycle --------------------------------------------------------------------------------


def test_full_lifecycle_records_dates_events_and_audit():
    staff = make_staff(Role.COORDINATOR)
    membership = make_organisation().membership
    change_membership_status(membership, S.APPLIED, actor=staff, on_date=date(2026, 2, 1))
    change_membership_status(membership, S.BOARD_REVIEW, actor=staff, on_date=date(2026, 2, 10))
    change_membership_status(membership, S.ACTIVE, actor=staff, reason="Styrevedtak", on_date=date(2026, 3, 5))
    assert membership.applied_on == date(2026, 2, 1)
    assert membership.decision_on == membership.start_on == date(2026, 3, 5)
    assert membership.basic_level_deadline == date(2028, 3, 5)
    change_membership_status(membership, S.NOTICE_GIVEN, actor=staff, reason="Omorganisering", on_date=date(2027, 9, 1))
    assert membership.end_on == date(2027, 12, 31)
    change_membership_status(membership, S.ENDED, actor=staff, on_date=date(2027, 12, 31))
    assert membership.status is S.ENDED
    events = db.session.scalars(
        select(MembershipEvent).where(MembershipEvent.membership_id == membership.id).order_by(MembershipEvent.id)
    ).all()
    assert [(e.from_status, e.to_status) for e in events] == [
        (S.PROSPECT, S.APPLIED),
        (S.APPLIED, S.BOARD_REVIEW),
        (S.BOARD_REVIEW, S.ACTIVE),
        (S.ACTIVE, S.NOTICE_GIVEN),
        (S.NOTICE_GIVEN, S.ENDED),
    ]
    assert events[-1].actor_id == staff.id
    assert audit_actions("organisations").count("members.membership.status_changed") == 5


def test_notice_can_be_withdrawn_keeping_the_start_date():
    membership = make_organisation(status=S.ACTIVE).membership
    membership.start_on = date(2025, 1, 1)
    change_membership_status(membership, S.NOTICE_GIVEN, actor=None, reason="Budsjett", on_date=date(2026, 6, 1))
    change_membership_status(membership, S.ACTIVE, actor=None, reason="Trakk oppsigelsen", on_date=date(2026, 7, 1))
    assert membership.end_on is None
    assert membership.start_on == date(2025, 1, 1)


def test_basic_level_deadline_on_29_february():
    membership = make_organisation(status=S.BOARD_REVIEW).membership
    change_membership_status(membership, S.ACTIVE, actor=None, on_date=date(2028, 2, 29))
    assert membership.basic_level_deadline == date(2030, 2, 28)


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (S.PROSPECT, S.ACTIVE),
        (S.APPLIED, S.ACTIVE),
        (S.ACTIVE, S.APPLIED),
        (S.EXCLUDED, S.ACTIVE),
        (S.EXCLUDED, S.APPLIED),
        (S.ENDED, S.ACTIVE),
        (S.REJECTED, S.ACTIVE),
        (S.PROSPECT, S.EXCLUDED),
    ],
)
def test_invalid_transitions_are_refused_with_a_clear_message(start, target):
    membership = make_organisation(status=start).membership
    with pytest.raises(DomainError) as exc:
        change_membership_status(membership, target, actor=None, reason="x")
    assert "kan ikke gå fra" in exc.value.message
    assert membership.status is start
    assert db.session.scalars(select(MembershipEvent).where(MembershipEvent.membership_id == membership.id)).all() == []


def test_every_allowed_transition_is_accepted():
    for start, targets in services.ALLOWED_TRANSITIONS.items():
        for target in targets:
            membership = make_organisation(status=start).membership
            change_membership_status(membership, target, actor=None, reason="Begrunnelse")
            assert membership.status is target


@pytest.mark.parametrize(
    ("start", "target"), [(S.APPLIED, S.REJECTED), (S.ACTIVE, S.EXCLUDED), (S.ACTIVE, S.NOTICE_GIVEN)]
)
def test_rejection_exclusion_and_notice_need_a_reason(start, target):
    membership = make_organisation(status=start).membership
    with pytest.raises(DomainError) as exc:
        change_membership_status(membership, target, actor=None, reason="  ")
    assert exc.value.field == "reason"


def test_reapplying_after_ending_starts_a_new_cycle():
    membership = make_organisation(status=S.ENDED).membership
    membership.start_on, membership.end_on = date(2020, 1, 1), date(2024, 12, 31)
    change_membership_status(membership, S.APPLIED, actor=None, on_date=date(2026, 3, 1))
    assert membership.start_on is None and membership.end_on is None
    assert membership.applied_on == date(2026, 3, 1)


def test_assign_adviser_requires_the_adviser_role():
    admin = make_staff(Role.ADMIN)
    adviser = make_staff(Role.ADVISER)
    finance = make_staff(Role.FINANCE)
    membership = make_organisation().membership
    services.assign_adviser(membership, adviser, actor=admin)
    assert membership.adviser_id == adviser.id
    with pytest.raises(DomainError):
        services.assign_adviser(membership, finance, actor=admin)
    assert "members.membership.adviser_assigned" in audit_actions("organisations")


def test_status_counts_cover_every_status():
    make_organisation(status=S.ACTIVE)
    make_organisation(status=S.ACTIVE)
    make_organisation(status=S.APPLIED)
    counts = services.status_counts()
    assert counts[S.ACTIVE] == 2 and counts[S.APPLIED] == 1 and counts[S.EXCLUDED] == 0
