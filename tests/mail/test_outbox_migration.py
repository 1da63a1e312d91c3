"""The migration that takes the password links out of stored emails cleans the rows already there."""

from __future__ import annotations

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from crm.extensions import db
from tests.apps import other_app

BEFORE = "ce0f278ece93"
TOKEN = "eyJ1IjoyLCJmIjoiOTRmODlhMmRlNGNhMzg4MDI2NDZiN2NlIn0.axMKcQ.PN5XZGlsH9EdKOI4IvSJsgugH4A"
ROWS = [
    # id, template, subject, body_text, body_html, status
    (
        1,
        "password_reset",
        "Nytt passord",
        f"Lenke:\nhttps://crm.example/auth/reset/{TOKEN}\n",
        f'<a href="https://crm.example/auth/reset/{TOKEN}">Velg</a>',
        "sent",
    ),
    (
        2,
        "members_portal_invitation",
        "Tilgang",
        f"https://crm.example/auth/invitation/{TOKEN}\nHilsen",
        f'<a href="https://crm.example/auth/invitation/{TOKEN}" style="x">Velg</a>',
        "queued",
    ),
    (3, "advisory_reply", "[Sak #42] Svar: Levelønn", "Svar", "<p>Svar</p>", "sent"),
    (4, "billing_receipt", "Kvittering", "Takk", "<p>Takk</p>", "sent"),
]


# SQLite cannot reflect expression indexes (batch mode reflects the table); as in tests/test_migrations.py.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_existing_links_are_removed_and_case_emails_get_their_case(tmp_path):
    with other_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'outbox.sqlite'}") as app, app.app_context():
        upgrade(revision=BEFORE)
        for row_id, template, subject, body_text, body_html, status in ROWS:
            db.session.execute(
                text(
                    "INSERT INTO outbox_messages (id, created_at, template, to_address, subject, body_text, body_html,"
                    " status, attempts) VALUES (:id, CURRENT_TIMESTAMP, :template, 'kari@example.no', :subject,"
                    " :body_text, :body_html, :status, 0)"
                ),
                {
                    "id": row_id,
                    "template": template,
                    "subject": subject,
                    "body_text": body_text,
                    "body_html": body_html,
                    "status": status,
                },
            )
        db.session.commit()
        upgrade()
        rows = db.session.execute(
            text(
                "SELECT id, body_text, body_html, secret_link, related_type, related_id"
                " FROM outbox_messages ORDER BY id"
            )
        ).all()
    assert all(TOKEN not in row.body_text + row.body_html for row in rows)
    assert rows[0].body_text == "Lenke:\n[link removed]\n"
    assert rows[0].body_html == '<a href="[link removed]">Velg</a>'
    assert [row.secret_link for row in rows] == ["reset", "invitation", None, None]  # the queued one is sent anew
    assert [(row.related_type, row.related_id) for row in rows] == [
        (None, None),
        (None, None),
        ("cases", 42),
        (None, None),
    ]
