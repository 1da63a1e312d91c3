"""The password policy and hashing."""

from __future__ import annotations

import pytest

from crm.auth.passwords import _common_passwords, hash_password, password_problem, verify_password


@pytest.mark.parametrize(
    "password",
    [
        "passord12345",
        "Sommer2024!!",
        "vinter-2025!",
        "Velkommen2026",
        "hemmelig1234",
        "norge1234567",
        "qwertyuiop123",
        "1q2w3e4r5t6y",
        "iloveyou2020",
        "passwordpassword",
        "rosenborg2024",
        "123456789012",
    ],
)
def test_common_passwords_are_refused(app, password):
    assert "for vanlig" in password_problem(password)


def test_the_list_is_substantial_and_long_enough_to_matter():
    common = _common_passwords()
    assert len(common) > 5000
    assert all(len(p) >= 12 for p in common)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("a" * 11, "minst 12 tegn"),
        ("a-b" * 43, "høyst 128 tegn"),
        ("abababababababab", "for vanlig"),
    ],
)
def test_length_and_variety(app, password, message):
    assert message in password_problem(password)


def test_password_must_not_contain_the_email(app):
    assert password_problem("kari.nordmann-er-best", email="kari.nordmann@example.no") is not None


@pytest.mark.parametrize("password", ["grønn-lastebil-fjord-2026", "Tre små kinesere på Høybro plass!", "Ab1-" * 32])
def test_good_passwords_pass(app, password):
    assert password_problem(password) is None


def test_hashes_are_argon2id(app):
    hashed = hash_password("grønn-lastebil-fjord-2026")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "grønn-lastebil-fjord-2026")
    assert not verify_password(hashed, "grønn-lastebil-fjord-2027")
    assert not verify_password(None, "whatever-at-all")


def test_production_uses_the_full_argon2_cost():
    from crm.config import ProductionConfig

    assert getattr(ProductionConfig, "PASSWORD_HASH_PARAMS", None) is None
