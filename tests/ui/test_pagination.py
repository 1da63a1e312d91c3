from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from crm.audit.models import AuditEntry
from crm.extensions import db
from crm.pagination import Page, paginate


def _entries(n: int) -> None:
    db.session.add_all(AuditEntry(action=f"test.entry.{i:03d}") for i in range(n))
    db.session.flush()


def _stmt():
    return select(AuditEntry).where(AuditEntry.action.startswith("test.entry.")).order_by(AuditEntry.action)


def test_paginate_returns_the_requested_page_and_counts(app):
    _entries(23)
    with app.test_request_context("/staff/audit/?page=3&per_page=10"):
        page = paginate(_stmt())
    assert [entry.action for entry in page.items] == ["test.entry.020", "test.entry.021", "test.entry.022"]
    assert (page.page, page.pages, page.total) == (3, 3, 23)
    assert (page.first_index, page.last_index) == (21, 23)
    assert page.has_prev and not page.has_next


def test_a_page_past_the_end_shows_the_last_page_and_bad_numbers_the_first(app):
    _entries(5)
    with app.test_request_context("/staff/audit/?page=99&per_page=2"):
        assert paginate(_stmt()).page == 3
    with app.test_request_context("/staff/audit/?page=abc"):
        assert paginate(_stmt()).page == 1
    with app.test_request_context("/staff/audit/?page=-4"):
        assert paginate(_stmt()).page == 1


def test_an_empty_result_is_one_empty_page(app):
    with app.test_request_context("/staff/audit/"):
        page = paginate(_stmt())
    assert (page.items, page.total, page.pages, page.first_index) == ([], 0, 1, 0)


def test_page_links_keep_the_filters(app):
    with app.test_request_context("/staff/audit/?action=auth.&actor=kari&page=2"):
        page = paginate(_stmt(), per_page=1)
        url = page.url_for_page(5)
        first = page.url_for_page(1)
    parts = urlsplit(url)
    assert parts.path == "/staff/audit/"
    assert parse_qs(parts.query) == {"action": ["auth."], "actor": ["kari"], "page": ["5"]}
    assert parse_qs(urlsplit(first).query) == {"action": ["auth."], "actor": ["kari"]}


def test_page_numbers_with_gaps():
    page = Page(items=[], page=10, per_page=10, total=200)
    assert list(page.iter_pages()) == [1, None, 8, 9, 10, 11, 12, None, 20]
    assert list(Page(items=[], page=1, per_page=10, total=40).iter_pages()) == [1, 2, 3, 4]
