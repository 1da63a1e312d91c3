import re
from pathlib import Path

import pytest

from crm.auth.models import Role
from crm.config import DevelopmentConfig, ProductionConfig, TestingConfig
from tests.factories import make_member_user, make_user
from tests.helpers import login

ROOT = Path(__file__).resolve().parents[2]


def _csp_directives(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("url", ["/", "/auth/login", "/healthz", "/no-such-page"])
def test_every_response_carries_the_security_headers(client, url):
    response = client.get(url)
    csp = _csp_directives(response)
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
    assert csp["script-src"] == "script-src 'self'"
    assert csp["style-src"] == "style-src 'self'"
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in response.headers


def test_hsts_only_in_the_production_configuration(app, client, monkeypatch):
    assert ProductionConfig.HSTS is True
    assert DevelopmentConfig.HSTS is False and TestingConfig.HSTS is False
    monkeypatch.setitem(app.config, "HSTS", True)
    assert client.get("/").headers["Strict-Transport-Security"].startswith("max-age=")


def test_staff_and_portal_pages_are_not_cached(client):
    login(client, make_member_user(roles={Role.ADMIN, Role.MEMBER}))
    for url in ("/staff/", "/portal/", "/staff/audit/"):
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"


def _boom():
    raise RuntimeError("secret-internal-detail /srv/crm/app.py line 42")


def test_an_unexpected_error_shows_the_500_page_without_a_traceback(app, client, monkeypatch, caplog):
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    monkeypatch.setitem(app.view_functions, "home.index", _boom)
    response = client.get("/")
    assert response.status_code == 500
    assert "Noe gikk galt" in response.text
    assert 'href="#main"' in response.text  # rendered in the layout
    assert "Traceback" not in response.text
    assert "secret-internal-detail" not in response.text
    assert "RuntimeError" not in response.text
    assert "Unhandled error on GET /" in caplog.text  # the details go to the log instead


@pytest.mark.parametrize(
    ("method", "url", "status", "title"),
    [
        ("get", "/no-such-page", 404, "Siden finnes ikke"),
        ("get", "/language/en", 405, "Metoden er ikke tillatt"),
        ("get", "/staff/", 403, "Ingen tilgang"),
    ],
)
def test_error_pages_are_rendered_in_the_layout(client, method, url, status, title):
    login(client, make_user())
    response = getattr(client, method)(url)
    assert response.status_code == status
    html = response.text
    assert f"<h1>{title}</h1>" in html
    assert len(re.findall(r"<h1[\s>]", html)) == 1
    assert 'href="#main"' in html and "<footer" in html
    assert "Feil " + str(status) in html


def test_templates_have_no_inline_script_or_style():
    """The CSP forbids them; this catches them before a browser does."""
    offenders = []
    email_templates = ROOT / "templates" / "mail"
    for path in sorted((ROOT / "templates").rglob("*.html")):
        if path.parent == email_templates:
            continue  # email bodies need inline styles and are never served under the CSP
        text = path.read_text(encoding="utf-8")
        if re.search(r"\sstyle\s*=", text) or re.search(r"<style[\s>]", text):
            offenders.append(f"{path.relative_to(ROOT)}: style")
        if re.search(r"\son[a-z]+\s*=", text):
            offenders.append(f"{path.relative_to(ROOT)}: inline event handler")
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag:
                offenders.append(f"{path.relative_to(ROOT)}: inline <script>")
    assert not offenders


def test_htmx_is_configured_to_work_under_the_csp(client):
    html = client.get("/").text
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', html).group(1)
    assert '"allowEval": false' in config  # hx-on and filters would need eval
    assert '"includeIndicatorStyles": false' in config  # htmx would inject a <style> element
    assert '"allowScriptTags": false' in config


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_brand_colours_meet_wcag_aa_contrast():
    css = (ROOT / "static/css/app.css").read_text(encoding="utf-8")
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", css))
    assert _contrast(colours["brand"], "#ffffff") >= 4.5
    assert _contrast(colours["portal"], "#ffffff") >= 4.5
    assert _contrast(colours["brand"], colours["brand-soft"]) >= 4.5
    assert _contrast(colours["bs-link-color"], "#ffffff") >= 4.5
    assert _contrast("#212529", colours["surface"]) >= 4.5
    assert _contrast(colours["bs-form-invalid-color"], colours["surface"]) >= 4.5  # field errors on the page
    # The focus ring (WCAG 1.4.11, 3:1): the dark ring on light pages, the yellow ring on the dark bars.
    assert _contrast(colours["focus-inner"], "#ffffff") >= 3
    assert _contrast(colours["focus-outer"], colours["brand"]) >= 3
    assert _contrast(colours["focus-outer"], colours["portal"]) >= 3


def test_css_and_js_are_served_from_our_own_vendored_files(client):
    """No CDN and no build step: every stylesheet and script a page loads is a file under static/."""
    html = client.get("/auth/login").text
    assets = re.findall(r'<(?:script[^>]*\ssrc|link[^>]*\shref)="([^"]+)"', html)
    assert any(a.startswith("/static/vendor/") and a.endswith(".js") for a in assets)
    assert any(a.startswith("/static/vendor/") and a.endswith(".css") for a in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        response = client.get(asset)
        response.close()  # static files are streamed from disk
        assert response.status_code == 200, asset
    for template in (ROOT / "templates").rglob("*.html"):
        assert not re.search(r'(?:src|href)="(?:https?:)?//[^"]+\.(?:js|css)\b', template.read_text()), template
