"""``flask crm create-admin`` and ``flask crm set-password``: one-line errors, non-zero exits."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm.auth.models import Role, User
from crm.auth.passwords import verify_password
from crm.extensions import db
from tests.factories import make_user

GOOD = "solrik-morgen-ved-mjøsa-7"


def _run(app, *args, input=None):
    return app.test_cli_runner().invoke(args=["crm", *args], input=input)


def test_create_admin(app):
    result = _run(app, "create-admin", "--email", "Sjef@Example.no", "--name", "Siri Sjef", "--password", GOOD)
    assert result.exit_code == 0, result.output
    assert "sjef@example.no" in result.output.lower()
    user = db.session.scalars(select(User).where(User.email == "sjef@example.no")).one()
    assert user.roles == {Role.ADMIN}
    assert verify_password(user.password_hash, GOOD)


def test_create_admin_prompts(app):
    result = _run(app, "create-admin", input=f"ny@example.no\nNy Admin\n{GOOD}\n{GOOD}\n")
    assert result.exit_code == 0, result.output
    assert db.session.scalars(select(User).where(User.email == "ny@example.no")).one()


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("svak@example.no", "kort", "minst 12 tegn"),
        ("svak@example.no", "passord12345", "for vanlig"),
        ("taken@example.no", GOOD, "finnes allerede"),
        ("ikke-en-adresse", GOOD, "gyldig e-postadresse"),
    ],
)
def test_create_admin_refuses_bad_input_with_one_line(app, email, password, message):
    make_user(email="taken@example.no")
    db.session.commit()
    result = _run(app, "create-admin", "--email", email, "--name", "Navn", "--password", password)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert message in lines[0]
    assert db.session.scalars(select(User).where(User.email == email)).first() is None or email == "taken@example.no"


def test_set_password(app):
    user = make_user(email="glemsk@example.no")
    db.session.commit()
    version = user.session_version
    result = _run(app, "set-password", "--email", "GLEMSK@example.no", "--password", GOOD)
    assert result.exit_code == 0, result.output
    db.session.refresh(user)
    assert verify_password(user.password_hash, GOOD)
    assert user.session_version == version + 1


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("ukjent@example.no", GOOD, "No user has the email address"),
        ("glemsk@example.no", "kort", "minst 12 tegn"),
    ],
)
def test_set_password_refuses_bad_input(app, email, password, message):
    user = make_user(email="glemsk@example.no")
    db.session.commit()
    old_hash = user.password_hash
    result = _run(app, "set-password", "--email", email, "--password", password)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert message in lines[0]
    db.session.refresh(user)
    assert user.password_hash == old_hash
