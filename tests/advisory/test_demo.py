from sqlalchemy import select

from crm.advisory.demo import load_advisory_demo
from crm.advisory.models import Case, CaseStatus, ReplyTemplate
from crm.demo import load_demo
from crm.extensions import db
from crm.members.services import portal_contact_for
from crm.models import utcnow


def test_demo_cases_cover_every_status_several_themes_and_breaches_and_load_once():
    load_demo()  # loads the members demo and then the advisory cases
    cases = db.session.scalars(select(Case)).all()
    assert {c.status for c in cases} == set(CaseStatus)
    assert len({theme for c in cases for theme in c.themes}) >= 8
    now = utcnow()
    assert sum(c.is_breached(now) for c in cases) >= 2
    assert any(c.legal_deadline_on for c in cases)
    assert db.session.scalar(select(ReplyTemplate.id)) is not None
    # The demo member users can use the portal at their organisation.
    from crm.auth.services import find_user_by_email

    hanne = find_user_by_email("hanne.lunde@example.no")
    contact = portal_contact_for(hanne)
    assert contact is not None and any(c.organisation_id == contact.organisation_id for c in cases)
    assert load_advisory_demo() == {"cases": 0}
