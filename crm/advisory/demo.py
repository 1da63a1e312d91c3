"""Demo advisory cases: every status, several themes, some past their deadline.

Call ``load_advisory_demo()`` inside an app context after the staff demo and ``load_members_demo()``
(it uses active member organisations with an adviser), then commit. Idempotent: it does nothing
when the first demo case exists. Demo member users named "Name (Organisation)" get a contact at
that organisation so they can use the portal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from sqlalchemy import select

from crm.advisory import services
from crm.advisory.deadlines import CALENDAR, OSLO
from crm.advisory.models import Case, CaseStatus, CaseType, ReplyTemplate, Theme, Urgency, Visibility
from crm.extensions import db
from crm.members.models import Contact, ContactRole, Membership, MembershipStatus, Organisation
from crm.models import utcnow

logger = logging.getLogger(__name__)

S = CaseStatus
T = Theme


@dataclass(frozen=True)
class DemoCase:
    subject: str
    description: str
    themes: tuple[Theme, ...]
    status: CaseStatus
    days_ago: int
    oecd_step: int | None = None
    urgency: Urgency = Urgency.NORMAL
    visibility: Visibility = Visibility.ORGANISATION
    transparency_received_days_ago: int | None = None
    reply: str = "Takk for spørsmålet. Her er våre første råd, og vi følger opp i møte om nødvendig."
    notes: tuple[str, ...] = field(default_factory=tuple)
    minutes: int = 0


DEMO_CASES: tuple[DemoCase, ...] = (
    DemoCase(
        "Risikovurdering av leverandører i Bangladesh",
        "Vi skal kartlegge risiko hos tekstilleverandørene våre i Bangladesh. Hvor bør vi begynne?",
        (T.HUMAN_RIGHTS, T.LIVING_WAGE, T.WORKING_HOURS),
        S.NEW,
        1,
        oecd_step=2,
    ),
    DemoCase(
        "Innsynskrav fra en journalist om arbeidsforhold",
        "Vi har fått et krav om informasjon etter åpenhetsloven om fabrikkene som lager arbeidsklærne våre.",
        (T.TRANSPARENCY_ACT,),
        S.ASSIGNED,
        2,
        oecd_step=5,
        urgency=Urgency.HIGH,
        transparency_received_days_ago=4,
    ),
    DemoCase(
        "Barnearbeid i kakaoleverandørkjeden",
        "En leverandør kan ikke dokumentere alderskontroll på kakaogårdene. Hva gjør vi nå?",
        (T.CHILD_LABOUR,),
        S.ASSIGNED,
        9,
        oecd_step=3,
        urgency=Urgency.HIGH,
        notes=("Ring innkjøpssjefen før vi svarer skriftlig.",),
    ),
    DemoCase(
        "Levelønn i revidert fabrikk",
        "Revisjonen viser lønn under levelønnsnivå. Hvordan følger vi opp uten å trekke oss ut?",
        (T.LIVING_WAGE, T.PURCHASING_PRACTICES),
        S.IN_PROGRESS,
        4,
        oecd_step=3,
        minutes=45,
    ),
    DemoCase(
        "Oppfølging av kontrakter på IKT-utstyr",
        "Vi trenger en mal for egenerklæringsskjema til leverandører av IKT-utstyr.",
        (T.PUBLIC_PROCUREMENT,),
        S.IN_PROGRESS,
        15,
        oecd_step=4,
        minutes=90,
    ),
    DemoCase(
        "Klimarisiko i sjømatproduksjon",
        "Hvordan tar vi klima og miljø inn i aktsomhetsvurderingen vår?",
        (T.ENVIRONMENT_CLIMATE,),
        S.WAITING_FOR_MEMBER,
        6,
        oecd_step=2,
        reply="Kan dere sende oss den siste risikovurderingen deres, så ser vi på den?",
    ),
    DemoCase(
        "Fagforeninger hos leverandør i Tyrkia",
        "Arbeiderne hos en leverandør sier de ikke får organisere seg. Hva kan vi kreve?",
        (T.FREEDOM_OF_ASSOCIATION, T.MIGRANT_WORKERS),
        S.WAITING_FOR_MEMBER,
        12,
        oecd_step=3,
        visibility=Visibility.PRIVATE,
        notes=("Sensitivt: nevn ikke leverandøren ved navn i eksterne kanaler.",),
    ),
    DemoCase(
        "Redegjørelse etter åpenhetsloven",
        "Kan dere se over utkastet til redegjørelsen vår før 30. juni?",
        (T.TRANSPARENCY_ACT,),
        S.RESOLVED,
        20,
        oecd_step=5,
        minutes=120,
    ),
    DemoCase(
        "Antikorrupsjonsrutiner for agenter",
        "Vi bruker agenter i Kina. Hvilke rutiner bør vi ha mot korrupsjon?",
        (T.ANTI_CORRUPTION,),
        S.CLOSED,
        40,
        oecd_step=1,
        minutes=30,
    ),
    DemoCase(
        "Dyrevelferd i kjøttinnkjøp",
        "Hvilke krav om dyrevelferd er vanlige i innkjøp av kjøtt?",
        (T.ANIMAL_WELFARE,),
        S.CLOSED,
        60,
        urgency=Urgency.LOW,
    ),
    DemoCase(
        "Gjenoppretting for arbeidere etter brann",
        "Etter en brann hos en underleverandør: hvordan bidrar vi til gjenoppretting for de berørte?",
        (T.HEALTH_SAFETY, T.HUMAN_RIGHTS),
        S.REOPENED,
        25,
        oecd_step=6,
        urgency=Urgency.HIGH,
    ),
    DemoCase(
        "Diskriminering av gravide arbeidere",
        "Vi har fått varsel om at gravide blir sagt opp hos en leverandør. Hva gjør vi?",
        (T.DISCRIMINATION,),
        S.IN_PROGRESS,
        14,
        oecd_step=3,
        urgency=Urgency.HIGH,
    ),
)

REPLY_TEMPLATES = (
    (
        "Kvittering og neste steg",
        "Hei {contact},\n\nTakk for henvendelsen fra {organisation}. Jeg ser på saken og kommer tilbake "
        "med råd innen fristen.\n\nVennlig hilsen\n{adviser}\nEtisk handel Norge",
    ),
    (
        "Invitasjon til rådgivningsmøte",
        "Hei {contact},\n\nDette er enklest å ta i et møte. Kan {organisation} foreslå et par tidspunkt "
        "neste uke?\n\nVennlig hilsen\n{adviser}",
    ),
)


def load_advisory_demo() -> dict[str, int]:
    """Load the demo cases and reply templates; flushes, the caller commits."""
    if db.session.scalar(select(Case.id).where(Case.subject == DEMO_CASES[0].subject)) is not None:
        return {"cases": 0}
    organisations = db.session.scalars(
        select(Organisation)
        .join(Membership)
        .where(Membership.status == MembershipStatus.ACTIVE, Membership.adviser_id.is_not(None))
        .order_by(Organisation.name)
    ).all()
    if not organisations:
        logger.warning("No active member organisations with an adviser: load the members demo first")
        return {"cases": 0}
    any_adviser = organisations[0].membership.adviser
    for name, body in REPLY_TEMPLATES:
        if not db.session.scalar(select(ReplyTemplate.id).where(ReplyTemplate.name == name)):
            services.save_reply_template(None, name=name, body=body, actor=any_adviser)
    now = utcnow()
    # Put the portal demo users' organisations first, so their portal shows cases.
    linked = {c.organisation_id for c in db.session.scalars(select(Contact).where(Contact.user_id.is_not(None)))}
    organisations = sorted(organisations, key=lambda o: (o.id not in linked, o.name))
    for index, demo in enumerate(DEMO_CASES):
        organisation = organisations[index % len(organisations)]
        _create(demo, organisation, _working_morning(now - timedelta(days=demo.days_ago), index))
    db.session.flush()
    logger.info("Loaded %s demo advisory cases", len(DEMO_CASES))
    return {"cases": len(DEMO_CASES)}


def _working_morning(moment: datetime, index: int) -> datetime:
    """A morning of the last business day up to ``moment`` (08:30 to 10:30 Oslo): the demo's requests,
    replies and notes then fall in working hours, as real ones mostly do, not on a Sunday night."""
    day = moment.astimezone(OSLO).date()
    while not CALENDAR.is_business_day(day):
        day -= timedelta(days=1)
    return datetime.combine(day, time(8, 30), tzinfo=OSLO) + timedelta(hours=index % 3)


def _requester(organisation: Organisation) -> Contact | None:
    contacts = [c for c in organisation.contacts if c.is_active]
    with_user = [c for c in contacts if c.user_id]
    main = [c for c in contacts if ContactRole.MAIN_CONTACT in c.roles]
    return (with_user or main or contacts or [None])[0]


def _create(demo: DemoCase, organisation: Organisation, opened) -> None:
    requester = _requester(organisation)
    member_user = requester.user if requester and requester.user else None
    received = (
        opened.date() - timedelta(days=demo.transparency_received_days_ago)
        if demo.transparency_received_days_ago is not None
        else None
    )
    case = services.open_case(
        organisation=organisation,
        requester=requester,
        subject=demo.subject,
        description=demo.description,
        themes=demo.themes,
        oecd_step=demo.oecd_step,
        urgency=demo.urgency,
        visibility=demo.visibility,
        case_type=CaseType.TRANSPARENCY_REQUEST if received else CaseType.ORDINARY,
        received_on=received,
        actor=member_user,
        now=opened,
    )
    adviser = case.assignee or organisation.membership.adviser
    step = timedelta(minutes=90)  # the day's work: reply, close, the member's follow-up
    for note in demo.notes:
        services.add_internal_note(case, note, actor=adviser, now=opened + timedelta(hours=1))
    if demo.status is S.NEW:
        services.reassign_case(case, assignee=None, note=None, actor=adviser)
        return
    if demo.status is S.ASSIGNED:
        return
    then = {S.WAITING_FOR_MEMBER: S.WAITING_FOR_MEMBER, S.RESOLVED: S.RESOLVED, S.CLOSED: S.RESOLVED}.get(
        demo.status, S.REOPENED if demo.status is S.REOPENED else None
    )
    services.add_staff_reply(
        case,
        demo.reply,
        actor=adviser,
        then=S.RESOLVED if then is S.REOPENED else then,
        now=opened + step,
    )
    if demo.minutes:
        services.add_time_entry(
            case, minutes=demo.minutes, spent_on=(opened + step).date(), note="Rådgivning", actor=adviser
        )
    if demo.status is S.CLOSED:
        services.change_status(case, S.CLOSED, actor=adviser, now=opened + 2 * step)
    elif demo.status is S.REOPENED and requester is not None:
        if member_user is not None:
            services.add_member_reply(
                case,
                "Vi har et oppfølgingsspørsmål om hvem som skal betale for tiltakene.",
                contact=requester,
                actor=member_user,
                now=opened + 3 * step,
            )
        else:
            services.reopen_by_member(case, contact=requester, actor=adviser, now=opened + 3 * step)
