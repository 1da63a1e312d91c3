"""Case emails go through the outbox and arrive at a real SMTP server; reminders are sent once."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from crm.advisory import services
from crm.advisory.jobs import send_deadline_reminders
from crm.advisory.models import CaseReminder, CaseStatus
from crm.extensions import db
from crm.mail.models import OutboxMessage
from tests.advisory.helpers import build_world
from tests.conftest import run_jobs
from tests.factories import make_case

OSLO = ZoneInfo("Europe/Oslo")


def test_receipt_notice_and_reply_arrive_by_smtp_without_internal_notes(app, smtp_server):
    world = build_world(commit=False)
    case = make_case(world["a"], requester=world["req"], actor=world["req_user"], subject="Levelønn i Vietnam")
    services.add_internal_note(case, "HEMMELIG vurdering", actor=world["adviser"])
    services.add_staff_reply(case, "Her er vårt råd om levelønn.", actor=world["adviser"])
    db.session.commit()
    run_jobs(app)

    [receipt, reply] = smtp_server.to(world["req"].email)
    assert receipt.subject == f"[Sak #{case.id}] Vi har mottatt henvendelsen: Levelønn i Vietnam"
    assert reply.subject == f"[Sak #{case.id}] Svar: Levelønn i Vietnam"
    assert "Her er vårt råd om levelønn." in reply.part("text/plain")
    assert "Her er vårt råd om levelønn." in reply.part("text/html")
    [notice] = smtp_server.to(world["adviser"].email)
    assert notice.subject == f"[Sak #{case.id}] Ny sak til deg: Levelønn i Vietnam"
    for received in smtp_server.messages:
        assert b"HEMMELIG" not in received.raw


def test_reminder_before_a_deadline_is_sent_once_per_case_and_deadline(app, smtp_server):
    world = build_world(commit=False)
    opened = datetime(2026, 3, 10, 9, 0, tzinfo=OSLO)  # first response due Wednesday 09:00
    case = make_case(world["a"], requester=world["req"], actor=world["req_user"], now=opened)
    waiting = make_case(world["a"], requester=world["req"], actor=world["req_user"], now=opened)
    services.change_status(waiting, CaseStatus.WAITING_FOR_MEMBER, actor=world["adviser"], now=opened)
    db.session.commit()

    assert send_deadline_reminders(now=datetime(2026, 3, 10, 15, 0, tzinfo=OSLO)) == 0  # 18 h before
    near = datetime(2026, 3, 11, 7, 30, tzinfo=OSLO)
    assert send_deadline_reminders(now=near) == 1  # the paused case gets none
    assert send_deadline_reminders(now=near + timedelta(minutes=10)) == 0
    db.session.commit()
    assert db.session.scalar(select(func.count(CaseReminder.id))) == 1

    # Once answered, the resolution deadline gets its own reminder when it comes near.
    services.add_staff_reply(case, "Svar", actor=world["adviser"], now=near)
    assert send_deadline_reminders(now=case.resolution_due_at - timedelta(hours=1)) == 1
    db.session.commit()
    run_jobs(app)
    subjects = [m.subject for m in smtp_server.to(world["adviser"].email)]
    assert sum("Fristen nærmer seg" in s for s in subjects) == 2
    assert (
        db.session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.template == "advisory_reminder"))
        == 2
    )
