"""Emails about cases, written to the outbox in the caller's transaction. Member-facing emails carry
only what the member may see: the subject, status and staff replies, never internal notes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

from crm.mail.services import queue_email

if TYPE_CHECKING:
    from crm.advisory.models import Case, CaseMessage


def _base() -> str:
    return current_app.config["BASE_URL"].rstrip("/")


def member_url(case: Case) -> str:
    return f"{_base()}/portal/advisory/{case.id}"


def staff_url(case: Case) -> str:
    return f"{_base()}/staff/advisory/{case.id}"


def _to_member(case: Case, template: str, **context) -> None:
    from crm.advisory.services import case_recipients

    for address, name, user in case_recipients(case):
        queue_email(
            to=address,
            to_name=name,
            recipient_user_id=user.id if user else None,
            locale=user.locale if user else None,
            template=template,
            context={"case": case, "name": name, "url": member_url(case), **context},
            related=case,
        )


def _to_assignee(case: Case, template: str, **context) -> None:
    assignee = case.assignee
    if assignee is None or not assignee.is_enabled:
        return
    queue_email(
        to=assignee.email,
        to_name=assignee.full_name,
        recipient_user_id=assignee.id,
        locale=assignee.locale,
        template=template,
        context={"case": case, "name": assignee.full_name, "url": staff_url(case), **context},
        related=case,
    )


def case_opened(case: Case) -> None:
    """The receipt to the requester and the notice to the assignee."""
    _to_member(case, "advisory_receipt")
    _to_assignee(case, "advisory_new_case")


def case_assigned(case: Case) -> None:
    _to_assignee(case, "advisory_new_case")


def staff_replied(case: Case, message: CaseMessage) -> None:
    _to_member(case, "advisory_reply", message=message)


def member_replied(case: Case, message: CaseMessage) -> None:
    _to_assignee(case, "advisory_member_message")


def deadline_reminder(case: Case, kind: str, due_at) -> None:
    _to_assignee(case, "advisory_reminder", kind=kind, due_at=due_at)
