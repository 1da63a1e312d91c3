"""Business hours: 08:00-16:00 Oslo, Monday-Friday, Norwegian public holidays off."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from crm.advisory.deadlines import add_business_hours, business_seconds_between, resume_deadline

OSLO = ZoneInfo("Europe/Oslo")


def oslo(*args) -> datetime:
    return datetime(*args, tzinfo=OSLO)


@pytest.mark.parametrize(
    ("start", "hours", "expected"),
    [
        # Within one day.
        (oslo(2026, 3, 10, 9, 0), 4, oslo(2026, 3, 10, 13, 0)),
        # Friday afternoon over the weekend to Monday.
        (oslo(2026, 3, 13, 14, 0), 4, oslo(2026, 3, 16, 10, 0)),
        # Saturday starts counting on Monday morning.
        (oslo(2026, 3, 14, 12, 0), 8, oslo(2026, 3, 16, 16, 0)),
        # After closing counts from the next morning.
        (oslo(2026, 3, 10, 18, 0), 1, oslo(2026, 3, 11, 9, 0)),
        # Before opening counts from 08:00.
        (oslo(2026, 3, 10, 6, 0), 2, oslo(2026, 3, 10, 10, 0)),
        # Easter 2026: Wednesday 1 April 15:00 + 2 h skips Maundy Thursday, Good Friday, the weekend and
        # Easter Monday: Tuesday 7 April 09:00.
        (oslo(2026, 4, 1, 15, 0), 2, oslo(2026, 4, 7, 9, 0)),
        # 17 May 2027 is a Monday (Constitution Day): Friday 14 May 12:00 + 8 h -> Tuesday 18 May 12:00.
        (oslo(2027, 5, 14, 12, 0), 8, oslo(2027, 5, 18, 12, 0)),
        # 1 May 2026 is a Friday.
        (oslo(2026, 4, 30, 12, 0), 8, oslo(2026, 5, 4, 12, 0)),
    ],
)
def test_add_business_hours(start, hours, expected):
    assert add_business_hours(start, hours) == expected


def test_result_is_utc_and_working_hours_follow_dst():
    # DST starts Sunday 29 March 2026: Friday 27 March 15:00 CET (14:00 UTC) + 2 h -> Monday 30 March
    # 09:00 CEST, which is 07:00 UTC (the day before it would have been 08:00 UTC).
    result = add_business_hours(oslo(2026, 3, 27, 15, 0), 2)
    assert result == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert result.astimezone(OSLO).hour == 9
    # DST ends Sunday 25 October 2026: Friday 15:00 CEST + 2 h -> Monday 09:00 CET = 08:00 UTC.
    assert add_business_hours(oslo(2026, 10, 23, 15, 0), 2) == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)


def test_business_seconds_between():
    assert business_seconds_between(oslo(2026, 3, 13, 14, 0), oslo(2026, 3, 16, 10, 0)) == 4 * 3600
    assert business_seconds_between(oslo(2026, 3, 16, 10, 0), oslo(2026, 3, 13, 14, 0)) == -4 * 3600
    # The whole of Easter week 2026 (Mon 30 March - Mon 6 April) holds three business days.
    assert business_seconds_between(oslo(2026, 3, 30, 0, 0), oslo(2026, 4, 7, 0, 0)) == 3 * 8 * 3600


def test_resume_deadline_adds_the_paused_business_time():
    due = oslo(2026, 3, 10, 15, 0)
    # Paused Tuesday 11:00 with 4 business hours left; resumed Thursday 09:00 -> due Thursday 13:00.
    assert resume_deadline(due, oslo(2026, 3, 10, 11, 0), oslo(2026, 3, 12, 9, 0)) == oslo(2026, 3, 12, 13, 0)
    # A deadline passed before the pause stays passed.
    assert resume_deadline(due, oslo(2026, 3, 11, 9, 0), oslo(2026, 3, 12, 9, 0)) == due
    assert resume_deadline(None, due, due) is None
