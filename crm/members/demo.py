"""Demo data for the member register: 60+ organisations of every kind, contacts and memberships.

Call ``load_members_demo()`` inside an app context after the demo's staff users exist (advisers are
assigned round-robin among enabled users with the adviser role), then commit. It is idempotent.
"""

from __future__ import annotations

import logging
import random
import re
import unicodedata
from datetime import date, timedelta

from sqlalchemy import select

from crm.auth.models import Role, User, UserRole
from crm.extensions import db
from crm.members.fees import seed_fee_schedules
from crm.members.models import (
    Contact,
    ContactRole,
    MembershipStatus,
    Organisation,
    OrganisationKind,
    TransparencyScope,
)
from crm.members.orgnr import generate_orgnr
from crm.members.services import (
    add_contact,
    assign_adviser,
    change_membership_status,
    create_organisation,
    today,
    update_contact,
    update_membership_details,
)

logger = logging.getLogger(__name__)

K = OrganisationKind
S = MembershipStatus

SECTORS = (
    "Tekstil og klær",
    "Mat og drikke",
    "IKT og elektronikk",
    "Bygg og anlegg",
    "Helse og medisinsk utstyr",
    "Møbler og interiør",
    "Leker og sportsutstyr",
    "Kontorrekvisita",
    "Sjømat",
    "Dagligvare",
)

ORGANISATIONS: tuple[tuple[str, OrganisationKind, str, str], ...] = (
    # name, kind, postcode, city
    ("Viken Dagligvare ASA", K.COMPANY, "0150", "Oslo"),
    ("Viken Dagligvare Logistikk AS", K.COMPANY, "2000", "Lillestrøm"),
    ("Fjordmat AS", K.COMPANY, "5003", "Bergen"),
    ("Nordlys Tekstil AS", K.COMPANY, "9008", "Tromsø"),
    ("Bergen Arbeidsklær AS", K.COMPANY, "5020", "Bergen"),
    ("Vestkyst Sjømat AS", K.COMPANY, "6002", "Ålesund"),
    ("Polar Sport AS", K.COMPANY, "9405", "Harstad"),
    ("Trondheim IKT-Service AS", K.COMPANY, "7011", "Trondheim"),
    ("Lofoten Kaffebrenneri AS", K.COMPANY, "8300", "Svolvær"),
    ("Grønn Byggvare AS", K.COMPANY, "3015", "Drammen"),
    ("Helsevare Norge AS", K.COMPANY, "1366", "Lysaker"),
    ("Møbelhuset Oslo AS", K.COMPANY, "0484", "Oslo"),
    ("Leketøyskroken AS", K.COMPANY, "4006", "Stavanger"),
    ("Kontorpartner Norge AS", K.COMPANY, "0661", "Oslo"),
    ("Solkraft Montasje AS", K.COMPANY, "4614", "Kristiansand"),
    ("Telemark Sko AS", K.COMPANY, "3717", "Skien"),
    ("Nordisk Hanskefabrikk AS", K.COMPANY, "2815", "Gjøvik"),
    ("Havbris Klær AS", K.COMPANY, "1606", "Fredrikstad"),
    ("Fjellsport Utstyr AS", K.COMPANY, "2609", "Lillehammer"),
    ("Smart Elektronikk Norge AS", K.COMPANY, "0581", "Oslo"),
    ("Nordic Cobalt Trading AS", K.COMPANY, "0250", "Oslo"),
    ("Bakeriet på Hjørnet AS", K.COMPANY, "7030", "Trondheim"),
    ("Skog og Tre Interiør AS", K.COMPANY, "2317", "Hamar"),
    ("Medisinsk Forbruk AS", K.COMPANY, "1337", "Sandvika"),
    ("Urban Interiør AS", K.COMPANY, "0557", "Oslo"),
    ("Kystkjøkken Grossist AS", K.COMPANY, "8006", "Bodø"),
    ("Rogaland Byggmateriell AS", K.COMPANY, "4307", "Sandnes"),
    ("Arktisk Te og Krydder AS", K.COMPANY, "9510", "Alta"),
    ("Norsk Kontorrekvisita AS", K.COMPANY, "1530", "Moss"),
    ("Bølge Badetøy AS", K.COMPANY, "3211", "Sandefjord"),
    ("Nordvind Reiseutstyr AS", K.COMPANY, "6800", "Førde"),
    ("Askvoll kommune", K.MUNICIPALITY, "6980", "Askvoll"),
    ("Fjordby kommune", K.MUNICIPALITY, "5700", "Voss"),
    ("Nordvik kommune", K.MUNICIPALITY, "8800", "Sandnessjøen"),
    ("Sørstrand kommune", K.MUNICIPALITY, "4876", "Grimstad"),
    ("Østdal kommune", K.MUNICIPALITY, "2450", "Rena"),
    ("Vestheia kommune", K.MUNICIPALITY, "4400", "Flekkefjord"),
    ("Midtbygda kommune", K.MUNICIPALITY, "7300", "Orkanger"),
    ("Kystbyen kommune", K.MUNICIPALITY, "3470", "Slemmestad"),
    ("Innlandsbyen kommune", K.MUNICIPALITY, "2800", "Gjøvik"),
    ("Nordkapp-nabo kommune", K.MUNICIPALITY, "9750", "Honningsvåg"),
    ("Elvebyen kommune", K.MUNICIPALITY, "3500", "Hønefoss"),
    ("Storøya kommune", K.MUNICIPALITY, "5380", "Tælavåg"),
    ("Vestland fylkeskommune", K.COUNTY, "5020", "Bergen"),
    ("Innlandet fylkeskommune", K.COUNTY, "2317", "Hamar"),
    ("Nordland fylkeskommune", K.COUNTY, "8048", "Bodø"),
    ("Agder fylkeskommune", K.COUNTY, "4630", "Kristiansand"),
    ("Troms fylkeskommune", K.COUNTY, "9296", "Tromsø"),
    ("Statlig Innkjøpssenter", K.STATE_BODY, "0032", "Oslo"),
    ("Helseforetaket Nordvest HF", K.STATE_BODY, "6026", "Ålesund"),
    ("Helseforetaket Sørøst HF", K.STATE_BODY, "3004", "Drammen"),
    ("Direktoratet for grønn omstilling", K.STATE_BODY, "0185", "Oslo"),
    ("Forsvarets innkjøpsverk", K.STATE_BODY, "2007", "Kjeller"),
    ("Universitetet i Fjordby", K.STATE_BODY, "5007", "Bergen"),
    ("Fairtrade-vennene", K.ORGANISATION, "0182", "Oslo"),
    ("Forbrukerforeningen Rettferdig Handel", K.ORGANISATION, "0154", "Oslo"),
    ("Norsk Solidaritetsfond", K.ORGANISATION, "0563", "Oslo"),
    ("Kirkenes Innkjøpsforum", K.ORGANISATION, "9900", "Kirkenes"),
    ("Studentsamskipnaden i Fjordby", K.ORGANISATION, "5015", "Bergen"),
    ("Idrettslaget Ballspark", K.ORGANISATION, "7045", "Trondheim"),
    ("Miljøstiftelsen Blå Hav", K.ORGANISATION, "4010", "Stavanger"),
    ("Foreningen for Anstendig Arbeid", K.ORGANISATION, "0187", "Oslo"),
    ("Stiftelsen Barnas Rettigheter", K.ORGANISATION, "0370", "Oslo"),
    ("Handelsforbundet for Etisk Import", K.ORGANISATION, "0158", "Oslo"),
)

# A company's sectors follow from what it does (a pattern in its name), so the demo reads true.
SECTORS_BY_WORD = (
    ("Dagligvare", ("Dagligvare", "Mat og drikke")),
    ("Sjømat", ("Sjømat", "Mat og drikke")),
    (r"mat\b", ("Mat og drikke",)),
    ("Kjøkken", ("Mat og drikke",)),
    ("Bakeri", ("Mat og drikke",)),
    ("Kaffe", ("Mat og drikke",)),
    ("Te og Krydder", ("Mat og drikke",)),
    ("Tekstil", ("Tekstil og klær",)),
    ("Klær", ("Tekstil og klær",)),
    (r"\bSko\b", ("Tekstil og klær",)),
    ("Hanske", ("Tekstil og klær", "Helse og medisinsk utstyr")),
    ("Badetøy", ("Tekstil og klær",)),
    ("Sport", ("Leker og sportsutstyr", "Tekstil og klær")),
    ("Reiseutstyr", ("Leker og sportsutstyr",)),
    ("Leketøy", ("Leker og sportsutstyr",)),
    ("IKT", ("IKT og elektronikk",)),
    ("Elektronikk", ("IKT og elektronikk",)),
    ("Cobalt", ("IKT og elektronikk",)),
    ("Bygg", ("Bygg og anlegg",)),
    ("Solkraft", ("Bygg og anlegg",)),
    ("Helsevare", ("Helse og medisinsk utstyr",)),
    ("Medisinsk", ("Helse og medisinsk utstyr",)),
    ("Møbel", ("Møbler og interiør",)),
    ("Interiør", ("Møbler og interiør",)),
    ("Kontor", ("Kontorrekvisita",)),
)


def company_sectors(name: str) -> list[str]:
    found: list[str] = []
    for pattern, sectors in SECTORS_BY_WORD:
        if re.search(pattern, name, re.IGNORECASE):
            found += [sector for sector in sectors if sector not in found]
    return found


FIRST_NAMES = (
    "Kari", "Ola", "Ingrid", "Lars", "Sofie", "Magnus", "Nora", "Henrik", "Emma", "Jonas", "Ida", "Sindre",
    "Maja", "Eirik", "Hanne", "Tor", "Aisha", "Ahmed", "Marta", "Piotr", "Linh", "Sara", "Anders", "Silje",
)  # fmt: skip
LAST_NAMES = (
    "Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
    "Jensen", "Karlsen", "Berg", "Haugen", "Hagen", "Bakken", "Solberg", "Ali", "Nowak", "Nguyen", "Dahl",
)  # fmt: skip
STREETS = ("Storgata", "Kirkegata", "Havnegata", "Fjordveien", "Industriveien")
TITLES = ("Daglig leder", "Innkjøpssjef", "Bærekraftsansvarlig", "Økonomisjef", "Kvalitetsleder", "Rådgiver")

# Status of the i-th organisation: mostly active members, and every other status present.
STATUS_CYCLE = (
    S.ACTIVE, S.ACTIVE, S.ACTIVE, S.ACTIVE, S.ACTIVE, S.ACTIVE, S.APPLIED, S.BOARD_REVIEW, S.NOTICE_GIVEN,
    S.PROSPECT, S.ACTIVE, S.ACTIVE, S.ENDED, S.ACTIVE, S.REJECTED, S.ACTIVE, S.EXCLUDED,
)  # fmt: skip
PATHS = {
    S.PROSPECT: (),
    S.APPLIED: (S.APPLIED,),
    S.BOARD_REVIEW: (S.APPLIED, S.BOARD_REVIEW),
    S.ACTIVE: (S.APPLIED, S.BOARD_REVIEW, S.ACTIVE),
    S.NOTICE_GIVEN: (S.APPLIED, S.BOARD_REVIEW, S.ACTIVE, S.NOTICE_GIVEN),
    S.ENDED: (S.APPLIED, S.BOARD_REVIEW, S.ACTIVE, S.NOTICE_GIVEN, S.ENDED),
    S.REJECTED: (S.APPLIED, S.BOARD_REVIEW, S.REJECTED),
    S.EXCLUDED: (S.APPLIED, S.BOARD_REVIEW, S.ACTIVE, S.EXCLUDED),
}
REASONS = {
    S.ACTIVE: "Godkjent i styremøte",
    S.NOTICE_GIVEN: "Endrede prioriteringer i virksomheten",
    S.ENDED: "Oppsigelsestiden er ute",
    S.REJECTED: "Oppfyller ikke kravene til medlemskap",
    S.EXCLUDED: "Har ikke rapportert på tre år",
}

DEMO_ORGNR_BASE = 91_000_000


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name.lower().replace("ø", "o").replace("æ", "ae"))
    ascii_name = ascii_name.encode("ascii", "ignore").decode()
    words = [w for w in re.split(r"[^a-z0-9]+", ascii_name) if w and w not in {"as", "asa", "hf"}]
    return "-".join(words[:3])


def _advisers() -> list[User]:
    stmt = (
        select(User).join(UserRole).where(UserRole.role == Role.ADVISER, User.is_enabled).order_by(User.id).distinct()
    )
    return list(db.session.scalars(stmt))


def load_members_demo() -> dict[str, int]:
    """Load the demo register (idempotent: does nothing when the demo's first organisation exists).
    Flushes; the caller commits. Returns counts of what was created."""
    seed_fee_schedules(2026)
    seed_fee_schedules(today().year)
    first_orgnr = generate_orgnr(0, base=DEMO_ORGNR_BASE)
    if db.session.scalar(select(Organisation.id).where(Organisation.orgnr == first_orgnr)) is not None:
        return {"organisations": 0, "contacts": 0}
    rng = random.Random(2026)  # deterministic demo
    advisers = _advisers()
    created: dict[str, Organisation] = {}
    contacts = 0
    for index, (name, kind, postcode, city) in enumerate(ORGANISATIONS):
        slug = _slug(name)
        values = {
            "name": name,
            "orgnr": generate_orgnr(index, base=DEMO_ORGNR_BASE),
            "kind": kind,
            "is_contracting_authority": kind in (K.MUNICIPALITY, K.COUNTY, K.STATE_BODY),
            "postal_street": f"Postboks {100 + index * 7}",
            "postal_postcode": postcode,
            "postal_city": city,
            "visiting_street": f"{rng.choice(STREETS)} {rng.randint(1, 80)}",
            "visiting_postcode": postcode,
            "visiting_city": city,
            "website": f"https://www.{slug}.example",
            "invoice_email": f"faktura@{slug}.example",
        }
        if kind in (K.MUNICIPALITY, K.COUNTY):
            values["inhabitants"] = (
                rng.randint(3_000, 90_000) if kind is K.MUNICIPALITY else rng.randint(120_000, 650_000)
            )
            values["employees"] = values["inhabitants"] // 12
        else:
            values["employees"] = rng.randint(3, 4_000)
            values["annual_turnover_nok"] = rng.choice((2, 8, 25, 70, 180, 650, 2_400, 12_000)) * 1_000_000
        if values.get("is_contracting_authority"):
            values["ehf_receiver"] = True
            values["buyer_reference_required"] = True
            values["default_buyer_reference"] = f"{1000 + index}"
        if kind is K.COMPANY:
            values["transparency_act_scope"] = (
                TransparencyScope.YES if values["annual_turnover_nok"] >= 70_000_000 else TransparencyScope.NO
            )
        if name == "Viken Dagligvare Logistikk AS":
            values["parent_id"] = created["Viken Dagligvare ASA"].id
        sectors = rng.sample(SECTORS, k=rng.randint(1, 3))  # public buyers and organisations buy across sectors
        if kind is K.COMPANY:
            sectors = company_sectors(name) or sectors
        first_seen = date(2019, 1, 1) + timedelta(days=index * 37)
        organisation = create_organisation(values, actor=None, sectors=sectors, on_date=first_seen)
        created[name] = organisation
        contacts += _add_contacts(organisation, slug, rng)
        _run_lifecycle(organisation, STATUS_CYCLE[index % len(STATUS_CYCLE)], index, advisers)
    db.session.flush()
    logger.info("Loaded %s demo organisations with %s contacts", len(created), contacts)
    return {"organisations": len(created), "contacts": contacts}


def _add_contacts(organisation: Organisation, slug: str, rng: random.Random) -> int:
    role_sets = [
        [ContactRole.MAIN_CONTACT, ContactRole.MANAGER],
        [ContactRole.INVOICE_CONTACT],
        [ContactRole.SUSTAINABILITY_LEAD, ContactRole.REPORTING_CONTACT],
        [ContactRole.PURCHASER, ContactRole.TEAM_MEMBER],
    ]
    count = rng.randint(2, 4)
    for number in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        add_contact(
            organisation,
            {
                "name": f"{first} {last}",
                "title": rng.choice(TITLES),
                "email": f"{_slug(first)}.{_slug(last)}{number}@{slug}.example",
                "phone": f"{rng.choice((2, 4, 9))}{rng.randint(1000000, 9999999)}",
                "newsletter_consent": rng.random() < 0.6,
            },
            roles=role_sets[number],
            actor=None,
        )
    return count


def _run_lifecycle(organisation: Organisation, status: MembershipStatus, index: int, advisers: list[User]) -> None:
    membership = organisation.membership
    day = date(2019, 1, 15) + timedelta(days=index * 37)
    for step in PATHS[status]:
        if step is S.ACTIVE:
            update_membership_details(membership, actor=None, principles_version="2022", principles_accepted_on=day)
        if step is S.ENDED:
            day = membership.end_on or day
        change_membership_status(
            membership, step, actor=None, reason=REASONS.get(step), on_date=day, side_effects=False
        )
        day += timedelta(days=30 if step is not S.ACTIVE else 400)
    if advisers and status in (S.BOARD_REVIEW, S.ACTIVE, S.NOTICE_GIVEN):
        assign_adviser(membership, advisers[index % len(advisers)], actor=None)


def link_demo_member(user: User | None, organisation_name: str) -> bool:
    """Make the demo member login ``user`` the main contact of the demo organisation (its main contact takes
    the login's name and email), so the login sees that organisation in the portal. Idempotent: a login that
    is linked already, or an organisation that is missing or not a current member, is left alone.
    Returns whether it linked."""
    if user is None or db.session.scalar(select(Contact.id).where(Contact.user_id == user.id)) is not None:
        return False
    first_orgnr, last_orgnr = generate_orgnr(0, base=DEMO_ORGNR_BASE), generate_orgnr(999, base=DEMO_ORGNR_BASE)
    organisation = db.session.scalar(
        select(Organisation).where(
            Organisation.name == organisation_name, Organisation.orgnr.between(first_orgnr, last_orgnr)
        )
    )
    if organisation is None or organisation.membership is None or not organisation.membership.status.is_member:
        logger.warning("Demo login %s: no current member organisation %r", user.email, organisation_name)
        return False
    main = next(
        (c for c in organisation.contacts if c.is_active and ContactRole.MAIN_CONTACT in c.roles and c.user is None),
        None,
    )
    if main is None:
        logger.warning("Demo login %s: %s has no main contact to link", user.email, organisation_name)
        return False
    update_contact(main, {"name": user.full_name, "email": user.email}, actor=None)
    main.user = user
    db.session.flush()
    return True
