"""A realistic Norwegian demo: staff for every role and member users, with known passwords.

Loading is idempotent: accounts that exist (by email) are left exactly as they are.
The passwords are public by design; the loader refuses to run in production.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from crm.auth.models import Role, User
from crm.auth.services import create_user, find_user_by_email

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoLogin:
    email: str
    full_name: str
    password: str
    roles: tuple[Role, ...]
    organisation: str | None = None  # member logins: the demo organisation whose main contact they are

    @property
    def role_names(self) -> str:
        names = ", ".join(role.value for role in self.roles)
        return f"{names} ({self.organisation})" if self.organisation else names


# Member logins are the main contacts of active demo organisations (crm.members.demo).
DEMO_LOGINS: tuple[DemoLogin, ...] = (
    DemoLogin("ingrid.solberg@etiskhandel.example", "Ingrid Solberg", "Nordlys-over-Tromso-2026", (Role.ADMIN,)),
    DemoLogin("kristian.bakke@etiskhandel.example", "Kristian Bakke", "Bomull-og-rettferd-2026", (Role.ADVISER,)),
    DemoLogin("amira.hassan@etiskhandel.example", "Amira Hassan", "Leverandorkjede-sjekk-77", (Role.ADVISER,)),
    DemoLogin("sigrid.haugen@etiskhandel.example", "Sigrid Haugen", "Aktsomhet-steg-for-steg-6", (Role.ADVISER,)),
    DemoLogin("thomas.lie@etiskhandel.example", "Thomas Lie", "Nettverksmote-i-Bergen-24", (Role.COORDINATOR,)),
    DemoLogin("marte.eriksen@etiskhandel.example", "Marte Eriksen", "Kontingent-faktura-KID-31", (Role.FINANCE,)),
    DemoLogin(
        "jonas.berg@etiskhandel.example",
        "Jonas Berg",
        "Tre-hatter-paa-kontoret-9",
        (Role.ADVISER, Role.COORDINATOR, Role.FINANCE),
    ),
    DemoLogin(
        "hanne.lunde@example.no", "Hanne Lunde", "Arbeidsklaer-fra-Porto-12", (Role.MEMBER,), "Nordlys Tekstil AS"
    ),
    DemoLogin("per.johansen@example.no", "Per Johansen", "Kakao-uten-barnearbeid-5", (Role.MEMBER,), "Fjordmat AS"),
    DemoLogin(
        "lise.andersen@example.no", "Lise Andersen", "Innkjop-med-omtanke-2026", (Role.MEMBER,), "Fjordby kommune"
    ),
    DemoLogin("erik.moen@example.no", "Erik Moen", "Fotballer-og-fagforening-8", (Role.MEMBER,), "Havbris Klær AS"),
)


@dataclass
class DemoResult:
    created: list[User]
    existing: list[User]
    organisations: int = 0
    linked: int = 0


def load_demo() -> DemoResult:
    """Create the demo accounts that do not exist yet, the member register's demo (organisations, contacts,
    memberships), link each member login to the main contact of its organisation, invoice this year's
    memberships (offline), and load the advisory cases. Idempotent; flushes, never commits."""
    from crm.advisory.demo import load_advisory_demo
    from crm.billing.demo import load_billing_demo
    from crm.members.demo import link_demo_member, load_members_demo

    created: list[User] = []
    existing: list[User] = []
    for login in DEMO_LOGINS:
        user = find_user_by_email(login.email)
        if user is not None:
            existing.append(user)
            continue
        user = create_user(
            email=login.email, full_name=login.full_name, password=login.password, roles=set(login.roles)
        )
        created.append(user)
    members = load_members_demo()  # after the staff: it assigns the demo advisers
    linked = 0
    for login in DEMO_LOGINS:
        if login.organisation:
            linked += link_demo_member(find_user_by_email(login.email), login.organisation)
    load_billing_demo()  # after the members: this year's invoices in every state, without calling Stripe
    load_advisory_demo()  # after the members and their logins: cases need advisers and requesters
    logger.info("Demo data: %d accounts created, %d already present", len(created), len(existing))
    return DemoResult(created=created, existing=existing, organisations=members["organisations"], linked=linked)


def format_logins(logins: tuple[DemoLogin, ...] = DEMO_LOGINS) -> str:
    """The demo logins as a plain-text table."""
    rows = [("Email", "Password", "Roles"), *((lg.email, lg.password, lg.role_names) for lg in logins)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
