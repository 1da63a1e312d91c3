from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from crm.advisory import services
from crm.advisory.models import CaseStatus, Theme
from crm.advisory.queue import QueueFilter, dashboard_stats, portfolio, queue_counts, queue_stmt
from crm.extensions import db
from crm.members.services import get_or_create_sectors
from tests.advisory.helpers import build_world
from tests.factories import make_case

OSLO = ZoneInfo("Europe/Oslo")


def test_queue_sorts_by_what_is_due_first_and_counts():
    world = build_world(commit=False)
    base = datetime(2026, 3, 10, 9, 0, tzinfo=OSLO)
    late = make_case(world["a"], requester=world["req"], actor=world["req_user"], now=base, subject="Sen")
    early = make_case(world["a"], requester=world["req"], actor=world["req_user"], now=base - timedelta(days=7))
    paused = make_case(world["a"], requester=world["req"], actor=world["req_user"], now=base - timedelta(days=9))
    services.change_status(paused, CaseStatus.WAITING_FOR_MEMBER, actor=world["adviser"], now=base)
    unassigned = make_case(world["b"], requester=world["b_contact"], actor=world["b_user"], now=base)
    services.reassign_case(unassigned, assignee=None, note=None, actor=world["adviser"])
    closed = make_case(world["a"], requester=world["req"], actor=world["req_user"], now=base)
    services.change_status(closed, CaseStatus.CLOSED, actor=world["adviser"], now=base)
    now = base + timedelta(hours=1)
    order = list(db.session.scalars(queue_stmt(QueueFilter(), user=world["adviser"], now=now)))
    assert order[0] == early and order[-1] == paused and closed not in order
    assert order.index(late) < order.index(paused)
    counts = queue_counts(world["adviser"], now=now)
    assert counts["mine"] == 3 and counts["unassigned"] == 1 and counts["breached"] == 1
    breached = list(db.session.scalars(queue_stmt(QueueFilter(view="breached"), user=world["adviser"], now=now)))
    assert breached == [early]


def test_dashboard_counts_by_theme_step_sector_quarter_and_averages():
    world = build_world(commit=False)
    world["a"].sectors = get_or_create_sectors(["Tekstil og klær"])
    opened = datetime(2026, 2, 2, 9, 0, tzinfo=OSLO)
    case = make_case(
        world["a"],
        requester=world["req"],
        actor=world["req_user"],
        now=opened,
        themes=[Theme.CHILD_LABOUR],
        oecd_step=2,
    )
    services.add_staff_reply(
        case, "Svar", actor=world["adviser"], then=CaseStatus.RESOLVED, now=opened + timedelta(hours=3)
    )
    make_case(world["b"], requester=world["b_contact"], actor=world["b_user"], now=opened + timedelta(days=100))
    # Opened Friday 15:00, answered Monday 09:00 and resolved Monday 11:00: business hours, not clock hours.
    friday = datetime(2026, 2, 6, 15, 0, tzinfo=OSLO)
    weekend = make_case(world["b"], requester=world["b_contact"], actor=world["b_user"], now=friday)
    monday = friday + timedelta(days=2, hours=18)
    services.add_staff_reply(weekend, "Svar", actor=world["backup"], now=monday)
    services.change_status(weekend, CaseStatus.RESOLVED, actor=world["backup"], now=monday + timedelta(hours=2))
    stats = dashboard_stats(2026)
    assert stats["total"] == 3
    assert dict(stats["by_theme"])[Theme.CHILD_LABOUR] == 1
    assert dict(stats["by_step"])[2] == 1 and dict(stats["by_step"])[None] == 2
    assert stats["by_sector"] == [("Tekstil og klær", 1)]
    assert dict(stats["by_quarter"]) == {1: 2, 2: 1, 3: 0, 4: 0}
    # (3 + 2) / 2 and (3 + 4) / 2, where clock hours would give (3 + 66) / 2 and (3 + 68) / 2.
    assert stats["avg_first_response_hours"] == 2.5 and stats["avg_resolution_hours"] == 3.5
    assert dashboard_stats(2025)["total"] == 0


def test_portfolio_lists_open_cases_and_last_contact():
    world = build_world(commit=False)
    at = datetime(2026, 3, 10, 9, 0, tzinfo=OSLO)
    case = make_case(world["a"], requester=world["req"], actor=world["req_user"], now=at)
    services.add_staff_reply(case, "Svar", actor=world["adviser"], now=at + timedelta(hours=2))
    services.add_internal_note(case, "Notat", actor=world["adviser"], now=at + timedelta(days=3))
    rows = portfolio(world["adviser"])
    assert [(r["organisation"].name, r["open_cases"]) for r in rows] == [("Alfa AS", 1)]
    assert rows[0]["last_contact"] == at + timedelta(hours=2)  # internal notes are not contact


def test_time_left_and_breach_use_a_decimal_comma(app):
    from flask import render_template_string

    world = build_world(commit=False)
    opened = datetime(2026, 3, 10, 9, 0, tzinfo=OSLO)  # a Tuesday
    case = make_case(world["a"], requester=world["req"], actor=world["req_user"], now=opened)
    case.first_response_due_at = due = datetime(2026, 3, 11, 12, 0, tzinfo=OSLO)
    source = '{% from "advisory/_macros.html" import due %}{{ due(case, now) }}'
    with app.test_request_context():
        early = render_template_string(source, case=case, now=due - timedelta(minutes=90))
        late = render_template_string(source, case=case, now=due + timedelta(minutes=90))
    assert "1,5 arbeidstimer igjen" in early
    assert "Første svar" in early  # which deadline it is
    assert "Overskredet med 1,5 arbeidstimer" in late
    with app.test_request_context():
        just = render_template_string(source, case=case, now=due + timedelta(minutes=2))
    assert "Fristbrudd" in just and "Overskredet med 0" not in just


def test_dashboard_averages_leave_out_the_time_waiting_for_the_member():
    world = build_world(commit=False)
    adviser, member, contact = world["adviser"], world["req_user"], world["req"]
    monday_9 = datetime(2026, 3, 2, 9, 0, tzinfo=OSLO)
    case = make_case(world["a"], requester=contact, actor=member, now=monday_9)
    # One hour's work, then waiting for the member (by phone, no written reply) until Wednesday 10:00.
    services.change_status(case, CaseStatus.WAITING_FOR_MEMBER, actor=adviser, now=monday_9 + timedelta(hours=1))
    services.add_member_reply(
        case, "Her er tallene.", contact=contact, actor=member, now=monday_9 + timedelta(days=2, hours=1)
    )
    # First written answer Wednesday 11:00, asking for more: waiting again until Thursday 11:00.
    services.add_staff_reply(
        case,
        "Takk, og kontrakten?",
        actor=adviser,
        then=CaseStatus.WAITING_FOR_MEMBER,
        now=monday_9 + timedelta(days=2, hours=2),
    )
    services.add_member_reply(
        case, "Vedlagt.", contact=contact, actor=member, now=monday_9 + timedelta(days=3, hours=2)
    )
    services.change_status(case, CaseStatus.RESOLVED, actor=adviser, now=monday_9 + timedelta(days=3, hours=3))
    stats = dashboard_stats(2026)
    # Worked 1 h + 1 h before the first answer (the 16 business hours of waiting left out, not 18 h);
    # resolution 27 business hours less 16 + 8 waiting: 3 h.
    assert stats["avg_first_response_hours"] == 2
    assert stats["avg_resolution_hours"] == 3


def test_due_today_is_what_falls_due_today_not_older_breaches():
    world = build_world(commit=False)
    now = datetime(2026, 3, 10, 10, 0, tzinfo=OSLO)  # Tuesday
    make_case(world["a"], requester=world["req"], actor=world["req_user"], now=now - timedelta(days=7))  # long breached
    today = make_case(world["a"], requester=world["req"], actor=world["req_user"], now=now - timedelta(hours=20))
    make_case(world["a"], requester=world["req"], actor=world["req_user"], now=now)  # due tomorrow
    assert today.first_response_due_at == datetime(2026, 3, 10, 14, 0, tzinfo=OSLO)
    due = list(db.session.scalars(queue_stmt(QueueFilter(view="due_today"), user=world["adviser"], now=now)))
    assert due == [today]
    counts = queue_counts(world["adviser"], now=now)
    assert counts["due_today"] == 1 and counts["breached"] == 1
