from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from crm.advisory import services
from crm.advisory.models import (
    Case,
    CaseStatus,
    CaseType,
    MessageKind,
    ReplyTemplate,
    Theme,
    Urgency,
    Visibility,
)
from crm.audit.models import AuditEntry
from crm.auth.models import Role
from crm.errors import DomainError, PermissionDenied
from crm.extensions import db
from crm.mail.models import OutboxMessage
from tests.advisory.helpers import build_world
from tests.factories import make_case, make_staff

S = CaseStatus
OSLO = ZoneInfo("Europe/Oslo")
TUESDAY_9 = datetime(2026, 3, 10, 9, 0, tzinfo=OSLO)


@pytest.fixture
def world():
    return build_world(commit=False)


def open_at(world, when=TUESDAY_9, **kw):
    kw.setdefault("requester", world["req"])
    return make_case(world["a"], actor=world["req_user"], now=when, **kw)


def test_open_case_goes_to_the_dedicated_adviser_with_business_hour_deadlines(world):
    case = open_at(world, themes=[Theme.CHILD_LABOUR, Theme.LIVING_WAGE, Theme.CHILD_LABOUR], oecd_step=2)
    assert case.assignee == world["adviser"]
    assert case.status is S.ASSIGNED
    assert case.themes == [Theme.CHILD_LABOUR, Theme.LIVING_WAGE]
    # Normal urgency by default: 8 h first response, 40 h resolution (five business days).
    assert case.first_response_due_at == datetime(2026, 3, 11, 9, 0, tzinfo=OSLO)
    assert case.resolution_due_at == datetime(2026, 3, 17, 9, 0, tzinfo=OSLO)
    templates = {m.template: m.to_address for m in db.session.scalars(select(OutboxMessage))}
    assert templates == {"advisory_receipt": world["req"].email, "advisory_new_case": world["adviser"].email}
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "advisory.case.opened"))


def test_service_target_per_category_and_urgency(world):
    admin = make_staff(Role.ADMIN)
    services.set_service_target(
        world["a"].membership.category_id, Urgency.HIGH, first_hours=2, resolution_hours=8, actor=admin
    )
    case = open_at(world, urgency=Urgency.HIGH)
    assert case.first_response_due_at == datetime(2026, 3, 10, 11, 0, tzinfo=OSLO)
    assert case.resolution_due_at == datetime(2026, 3, 11, 9, 0, tzinfo=OSLO)
    with pytest.raises(DomainError):
        services.set_service_target(1, Urgency.LOW, first_hours=8, resolution_hours=2, actor=admin)


def test_backup_adviser_when_away_else_unassigned(world):
    adviser, backup = world["adviser"], world["backup"]
    services.add_absence(
        adviser, starts_on=date(2026, 3, 9), ends_on=date(2026, 3, 13), backup=backup, note=None, actor=adviser
    )
    assert open_at(world).assignee == backup
    assert open_at(world, when=TUESDAY_9 + timedelta(days=7)).assignee == adviser
    services.add_absence(
        backup, starts_on=date(2026, 3, 10), ends_on=date(2026, 3, 10), backup=None, note=None, actor=backup
    )
    case = open_at(world)
    assert case.assignee is None and case.status is S.NEW
    with pytest.raises(DomainError):
        services.add_absence(
            adviser, starts_on=date(2026, 3, 9), ends_on=date(2026, 3, 1), backup=None, note=None, actor=adviser
        )


def test_no_adviser_means_unassigned(world):
    world["a"].membership.adviser = None
    case = open_at(world)
    assert case.assignee is None and case.status is S.NEW


def test_transparency_request_has_a_legal_deadline_three_weeks_after_receipt(world):
    case = open_at(world, case_type=CaseType.TRANSPARENCY_REQUEST, received_on=date(2026, 3, 2))
    assert case.legal_deadline_on == date(2026, 3, 23)
    with pytest.raises(DomainError) as exc:
        open_at(world, case_type=CaseType.TRANSPARENCY_REQUEST, received_on=None)
    assert exc.value.field == "received_on"
    with pytest.raises(DomainError):
        open_at(world, case_type=CaseType.TRANSPARENCY_REQUEST, received_on=date(2026, 4, 1))


def test_bad_input_is_refused(world):
    with pytest.raises(DomainError):
        open_at(world, subject="  ")
    with pytest.raises(DomainError):
        open_at(world, oecd_step=7)
    with pytest.raises(PermissionDenied):
        make_case(world["a"], requester=world["b_contact"], actor=world["b_user"])


def test_status_transitions_are_guarded_and_audited(world):
    case = open_at(world)
    adviser = world["adviser"]
    services.change_status(case, S.IN_PROGRESS, actor=adviser, now=TUESDAY_9)
    services.change_status(case, S.RESOLVED, actor=adviser, now=TUESDAY_9)
    assert case.resolved_at is not None
    services.change_status(case, S.CLOSED, actor=adviser, now=TUESDAY_9)
    with pytest.raises(DomainError):
        services.change_status(case, S.IN_PROGRESS, actor=adviser)
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.target_type == "cases", AuditEntry.target_id == str(case.id))
    ).all()
    assert actions.count("advisory.case.status_changed") == 3


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (S.NEW, S.RESOLVED, True),
        (S.IN_PROGRESS, S.ASSIGNED, False),
        (S.RESOLVED, S.WAITING_FOR_MEMBER, False),
        (S.CLOSED, S.REOPENED, False),
        (S.REOPENED, S.IN_PROGRESS, True),
    ],
)
def test_transition_table(world, old, new, allowed):
    case = open_at(world)
    case.status = old
    if allowed:
        services.change_status(case, new, actor=world["adviser"])
        assert case.status is new
    else:
        with pytest.raises(DomainError):
            services.change_status(case, new, actor=world["adviser"])


def test_staff_reply_sets_first_response_and_emails_the_member_with_the_case_number(world):
    case = open_at(world)
    services.add_staff_reply(case, "Her er svaret.", actor=world["adviser"], now=TUESDAY_9 + timedelta(hours=1))
    assert case.first_responded_at == TUESDAY_9 + timedelta(hours=1)
    assert case.status is S.IN_PROGRESS
    reply = db.session.scalar(select(OutboxMessage).where(OutboxMessage.template == "advisory_reply"))
    assert reply.to_address == world["req"].email
    assert f"[Sak #{case.id}]" in reply.subject
    assert "Her er svaret." in reply.body_text


def test_waiting_for_member_pauses_the_clock_and_a_member_reply_resumes_it(world):
    case = open_at(world)  # resolution due Tuesday 17 March 09:00
    adviser = world["adviser"]
    services.add_staff_reply(
        case, "Kan dere sende kontrakten?", actor=adviser, then=S.WAITING_FOR_MEMBER, now=TUESDAY_9 + timedelta(hours=2)
    )
    assert case.is_paused and case.next_due_at is None and not case.is_breached(TUESDAY_9 + timedelta(days=30))
    # The member answers two business days later (Thursday 11:00): the deadline moves by 16 business hours.
    services.add_member_reply(
        case, "Vedlagt.", contact=world["req"], actor=world["req_user"], now=datetime(2026, 3, 12, 11, 0, tzinfo=OSLO)
    )
    assert case.status is S.IN_PROGRESS and not case.is_paused
    assert case.resolution_due_at == datetime(2026, 3, 19, 9, 0, tzinfo=OSLO)
    assert case.paused_seconds == 16 * 3600


def test_member_reply_reopens_a_resolved_case(world):
    case = open_at(world)
    services.change_status(case, S.RESOLVED, actor=world["adviser"])
    services.add_member_reply(case, "Et oppfølgingsspørsmål.", contact=world["req"], actor=world["req_user"])
    assert case.status is S.REOPENED and case.resolved_at is None


def test_member_close_and_reopen_within_30_days(world):
    case = open_at(world)
    closed = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    services.close_by_member(case, contact=world["req"], actor=world["req_user"], now=closed)
    assert case.status is S.CLOSED and case.closed_at == closed
    with pytest.raises(DomainError):
        services.add_member_reply(case, "Hei", contact=world["req"], actor=world["req_user"])
    with pytest.raises(DomainError):
        services.reopen_by_member(case, contact=world["req"], actor=world["req_user"], now=closed + timedelta(days=31))
    services.reopen_by_member(case, contact=world["req"], actor=world["req_user"], now=closed + timedelta(days=29))
    assert case.status is S.REOPENED and case.closed_at is None


def test_private_cases_are_for_the_requester_and_main_contact(world):
    private = open_at(world, visibility=Visibility.PRIVATE)
    shared = open_at(world)
    assert services.member_can_see(private, world["req"])
    assert services.member_can_see(private, world["main"])
    assert not services.member_can_see(private, world["other"])
    assert services.member_can_see(shared, world["other"])
    assert not services.member_can_see(shared, world["b_contact"])
    visible = set(db.session.scalars(services.visible_cases_stmt(world["other"])))
    assert visible == {shared}
    assert set(db.session.scalars(services.visible_cases_stmt(world["main"]))) == {private, shared}
    assert list(db.session.scalars(services.visible_cases_stmt(world["b_contact"]))) == []
    with pytest.raises(PermissionDenied):
        services.add_member_reply(private, "Hei", contact=world["other"], actor=world["other_user"])


def test_internal_notes_stay_out_of_the_member_thread_and_emails(world):
    case = open_at(world)
    services.add_internal_note(case, "HEMMELIG NOTAT", actor=world["adviser"])
    services.add_staff_reply(case, "Offentlig svar", actor=world["adviser"])
    thread = services.member_messages(case)
    assert [m.kind for m in thread] == [MessageKind.STAFF_REPLY]
    for message in db.session.scalars(select(OutboxMessage)):
        assert "HEMMELIG" not in message.body_text and "HEMMELIG" not in message.body_html


def test_reassign_with_note_notifies_the_new_assignee(world):
    case = open_at(world)
    services.reassign_case(case, assignee=world["backup"], note="Ola kan tekstil.", actor=world["adviser"])
    assert case.assignee == world["backup"]
    assert case.messages[-1].kind is MessageKind.INTERNAL_NOTE
    notices = db.session.scalars(select(OutboxMessage.to_address).where(OutboxMessage.template == "advisory_new_case"))
    assert world["backup"].email in list(notices)
    with pytest.raises(DomainError):
        services.reassign_case(case, assignee=make_staff(Role.FINANCE), note=None, actor=world["adviser"])


def test_time_entries_and_yearly_total(world):
    case = open_at(world)
    services.add_time_entry(case, minutes=45, spent_on=date(2026, 3, 10), note="Telefon", actor=world["adviser"])
    services.add_time_entry(case, minutes=30, spent_on=date(2026, 3, 11), note=None, actor=world["adviser"])
    services.add_time_entry(case, minutes=15, spent_on=date(2025, 12, 31), note=None, actor=world["adviser"])
    assert services.yearly_minutes(world["a"].id, 2026) == 75
    assert services.yearly_minutes(world["b"].id, 2026) == 0
    with pytest.raises(DomainError):
        services.add_time_entry(case, minutes=0, spent_on=date(2026, 3, 10), note=None, actor=world["adviser"])


def test_reply_template_placeholders(world):
    case = open_at(world)
    template = services.save_reply_template(
        None, name="Takk", body="Hei {contact} i {organisation}! Hilsen {adviser} {ukjent}", actor=world["adviser"]
    )
    text = services.render_reply_template(template, case, actor=world["adviser"])
    assert text == "Hei Per Spør i Alfa AS! Hilsen Kari Rådgiver {ukjent}"
    with pytest.raises(DomainError):
        services.save_reply_template(None, name="takk", body="x", actor=world["adviser"])
    assert db.session.scalar(select(ReplyTemplate).where(ReplyTemplate.name == "Takk"))


def test_the_access_log_has_one_row_per_person_case_and_kind_an_hour(world):
    """Reloading the case page is not a new look; another kind, another person or an hour later is."""
    from crm.advisory.models import CaseAccessLog
    from crm.models import utcnow

    case = open_at(world)
    other = make_staff(Role.ADVISER, email="annen.radgiver@etiskhandel.example")

    def rows():
        stmt = select(CaseAccessLog.user_id, CaseAccessLog.action).where(CaseAccessLog.case_id == case.id)
        return sorted(db.session.execute(stmt).all())

    for _ in range(3):
        services.log_access(case, user=world["adviser"], action="view")
    services.log_access(case, user=world["adviser"], action="export")
    services.log_access(case, user=other, action="view")
    assert rows() == sorted([(world["adviser"].id, "view"), (world["adviser"].id, "export"), (other.id, "view")])
    for row in db.session.scalars(select(CaseAccessLog).where(CaseAccessLog.case_id == case.id)):
        row.at = utcnow() - timedelta(minutes=61)
    db.session.flush()
    services.log_access(case, user=world["adviser"], action="view")
    assert rows().count((world["adviser"].id, "view")) == 2


def test_breach(world):
    case = open_at(world)
    assert not case.is_breached(TUESDAY_9 + timedelta(hours=1))
    assert case.is_breached(datetime(2026, 3, 11, 9, 1, tzinfo=OSLO))
    assert db.session.get(Case, case.id) is case


def test_reopening_an_unanswered_case_gives_fresh_targets(world):
    case = open_at(world)
    closed = datetime(2026, 3, 10, 10, 0, tzinfo=OSLO)
    services.close_by_member(case, contact=world["req"], actor=world["req_user"], now=closed)
    reopened = datetime(2026, 3, 16, 9, 0, tzinfo=OSLO)  # Monday
    services.reopen_by_member(case, contact=world["req"], actor=world["req_user"], now=reopened)
    assert case.first_response_due_at == datetime(2026, 3, 17, 9, 0, tzinfo=OSLO)
    assert case.resolution_due_at == datetime(2026, 3, 23, 9, 0, tzinfo=OSLO)
    assert not case.is_breached(reopened)


def test_every_status_change_is_audited_whoever_makes_it(world):
    """Members' replies, closing and reopening change the status too; each change is in the audit log
    with who made it, as are the changes a staff reply makes."""
    case = open_at(world)
    member, adviser = world["req_user"], world["adviser"]
    services.add_staff_reply(case, "Send kontrakten?", actor=adviser, then=S.WAITING_FOR_MEMBER, now=TUESDAY_9)
    services.add_member_reply(case, "Vedlagt.", contact=world["req"], actor=member, now=TUESDAY_9)
    services.change_status(case, S.RESOLVED, actor=adviser, now=TUESDAY_9)
    services.add_member_reply(case, "Et spørsmål til.", contact=world["req"], actor=member, now=TUESDAY_9)
    services.close_by_member(case, contact=world["req"], actor=member, now=TUESDAY_9)
    services.reopen_by_member(case, contact=world["req"], actor=member, now=TUESDAY_9)
    entries = db.session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == "advisory.case.status_changed", AuditEntry.target_id == str(case.id))
        .order_by(AuditEntry.id)
    ).all()
    assert [(e.details["from"], e.details["to"], e.actor_id) for e in entries] == [
        ("assigned", "waiting_for_member", adviser.id),
        ("waiting_for_member", "in_progress", member.id),
        ("in_progress", "resolved", adviser.id),
        ("resolved", "reopened", member.id),
        ("reopened", "closed", member.id),
        ("closed", "reopened", member.id),
    ]
