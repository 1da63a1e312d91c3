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

    @property
    def role_names(self) -> str:
        return ", ".join(role.value for role in self.roles)


# Member organisations come with the members feature; until then the organisation is part of the name.
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
        "hanne.lunde@example.no", "Hanne Lunde (Nordlys Tekstil AS)", "Arbeidsklaer-fra-Porto-12", (Role.MEMBER,)
    ),
    DemoLogin(
        "per.johansen@example.no", "Per Johansen (Fjellmat Grossist AS)", "Kakao-uten-barnearbeid-5", (Role.MEMBER,)
    ),
    DemoLogin(
        "lise.andersen@example.no", "Lise Andersen (Nordvik kommune)", "Innkjop-med-omtanke-2026", (Role.MEMBER,)
    ),
    DemoLogin(
        "erik.moen@example.no", "Erik Moen (Havbris Sportsutstyr AS)", "Fotballer-og-fagforening-8", (Role.MEMBER,)
    ),
)


@dataclass
class DemoResult:
    created: list[User]
    existing: list[User]


def load_demo() -> DemoResult:
    """Create the demo accounts that do not exist yet (flushes, never commits)."""
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
    logger.info("Demo data: %d accounts created, %d already present", len(created), len(existing))
    return DemoResult(created=created, existing=existing)


def format_logins(logins: tuple[DemoLogin, ...] = DEMO_LOGINS) -> str:
    """The demo logins as a plain-text table."""
    rows = [("Email", "Password", "Roles"), *((lg.email, lg.password, lg.role_names) for lg in logins)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
