import pytest

from crm.auth.models import User
from crm.extensions import db
from tests.factories import make_member_user
from tests.helpers import csrf_token, login


def test_switching_to_english_changes_the_next_page(client):
    token = csrf_token(client)
    response = client.post("/language/en", data={"csrf_token": token, "next": "/"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    html = client.get("/").text
    assert '<html lang="en">' in html
    assert "Skip to content" in html
    client.post("/language/nb", data={"csrf_token": token, "next": "/"})
    assert "Hopp til innhold" in client.get("/").text


def test_the_switch_is_a_form_per_language_marking_the_current_one(client):
    html = client.get("/").text
    assert 'action="/language/nb"' in html and 'action="/language/en"' in html
    assert 'lang="nb" aria-current="true"' in html


def test_an_unknown_language_code_is_ignored(client):
    token = csrf_token(client)
    response = client.post("/language/xx", data={"csrf_token": token, "next": "/"})
    assert response.status_code == 302
    html = client.get("/").text
    assert '<html lang="nb">' in html
    assert "Hopp til innhold" in html


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "/\t/evil.example", "javascript:alert(1)"],
)
def test_the_next_url_cannot_leave_the_site(client, next_url):
    response = client.post("/language/en", data={"csrf_token": csrf_token(client), "next": next_url})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_the_next_url_keeps_a_local_path_and_query(client):
    response = client.post("/language/en", data={"csrf_token": csrf_token(client), "next": "/auth/login?next=/portal/"})
    assert response.headers["Location"] == "/auth/login?next=/portal/"


def test_the_switch_needs_a_csrf_token(client):
    assert client.post("/language/en", data={"next": "/"}).status_code == 400
    assert '<html lang="nb">' in client.get("/").text


def test_the_choice_is_remembered_on_the_user_for_the_next_session(app, client):
    user = make_member_user()
    login(client, user)
    client.post("/language/en", data={"csrf_token": csrf_token(client), "next": "/portal/"})
    db.session.expire_all()
    assert db.session.get(User, user.id).locale == "en"
    with app.test_client() as fresh:
        login(fresh, user)
        assert '<html lang="en">' in fresh.get("/portal/").text


def test_bokmal_is_the_default_even_for_an_english_browser(client):
    html = client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"}).text
    assert '<html lang="nb">' in html
    assert "Hopp til innhold" in html
