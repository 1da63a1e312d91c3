from datetime import UTC, date, datetime

import pytest
from jinja2 import DictLoader

from crm.i18n import format_date_no, format_datetime_no, format_money, format_time_no

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # Winter time (UTC+1) and summer time (UTC+2).
        (datetime(2026, 1, 15, 13, 30, tzinfo=UTC), "15.01.2026 14:30"),
        (datetime(2026, 7, 1, 12, 5, tzinfo=UTC), "01.07.2026 14:05"),
        # Spring forward on 29 March 2026 at 02:00 local (01:00 UTC).
        (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "29.03.2026 01:59"),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "29.03.2026 03:00"),
        # Fall back on 25 October 2026 at 03:00 local (01:00 UTC): 02:30 happens twice.
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "25.10.2026 02:30"),
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "25.10.2026 02:30"),
        (datetime(2026, 10, 25, 2, 0, tzinfo=UTC), "25.10.2026 03:00"),
        # New Year's Eve late in UTC is already the next day in Oslo.
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "01.01.2027 00:30"),
    ],
)
def test_datetimes_are_shown_in_oslo_time_across_dst(utc, expected):
    assert format_datetime_no(utc) == expected
    day, clock = expected.split(" ")
    assert format_date_no(utc) == day
    assert format_time_no(utc) == clock


def test_plain_dates_and_missing_values():
    assert format_date_no(date(2026, 12, 31)) == "31.12.2026"
    assert format_date_no(None) == format_datetime_no(None) == format_time_no(None) == ""


@pytest.mark.parametrize(
    ("ore", "expected"),
    [
        (13_780_000, f"137{NBSP}800{NBSP}kr"),
        (770_000, f"7{NBSP}700{NBSP}kr"),
        (0, f"0{NBSP}kr"),
        (5, f"0,05{NBSP}kr"),
        (118, f"1,18{NBSP}kr"),
        (123_456_789, f"1{NBSP}234{NBSP}567,89{NBSP}kr"),
        (-13_780_000, f"−137{NBSP}800{NBSP}kr"),
        (-150, f"−1,50{NBSP}kr"),
    ],
)
def test_money_from_integer_ore(ore, expected):
    assert format_money(ore) == expected


def test_money_in_another_currency_and_none():
    assert format_money(10_000, "EUR") == f"100{NBSP}EUR"
    assert format_money(None) == ""


def test_filters_are_available_in_templates(app):
    with app.test_request_context():
        template = app.jinja_env.from_string(
            "{{ when | date_no }} {{ when | time_no }} {{ when | datetime_no }} {{ amount | money }}"
        )
        rendered = template.render(when=datetime(2026, 6, 30, 22, 15, tzinfo=UTC), amount=2_570_000)
    assert rendered == f"01.07.2026 00:15 01.07.2026 00:15 25{NBSP}700{NBSP}kr"


def test_html_templates_are_autoescaped_and_text_mail_templates_are_not(app):
    assert app.jinja_env.autoescape("mail/welcome.html") is True
    assert app.jinja_env.autoescape("mail/welcome.txt") is False
    env = app.jinja_env.overlay(loader=DictLoader({"a.html": "{{ name }}", "mail/a.txt": "{{ name }}"}))
    name = "Ås & Sønner <AS>"
    assert env.get_template("a.html").render(name=name) == "Ås &amp; Sønner &lt;AS&gt;"
    assert env.get_template("mail/a.txt").render(name=name) == name
