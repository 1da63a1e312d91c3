"""Business-hours arithmetic: 08:00-16:00 Europe/Oslo, Monday to Friday, without Norwegian public holidays.

Working hours are wall-clock times in Oslo, so the days around a DST change still hold eight business
hours; the UTC instants move with the offset. Holidays come from the ``holidays`` package (Maundy
Thursday, Good Friday, Easter Monday, 1 and 17 May, Ascension, Whit Monday, Christmas ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

import holidays

OSLO = ZoneInfo("Europe/Oslo")


@dataclass(frozen=True)
class BusinessCalendar:
    start: time = time(8, 0)
    end: time = time(16, 0)
    tz: ZoneInfo = OSLO
    weekdays: frozenset[int] = field(default_factory=lambda: frozenset(range(5)))

    @cached_property
    def _holidays(self) -> holidays.HolidayBase:
        return holidays.country_holidays("NO")

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.weekdays and day not in self._holidays

    def _window(self, day: date) -> tuple[datetime, datetime]:
        return (
            datetime.combine(day, self.start, tzinfo=self.tz).astimezone(UTC),
            datetime.combine(day, self.end, tzinfo=self.tz).astimezone(UTC),
        )

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """The instant ``seconds`` business seconds after ``start`` (an aware datetime); starting
        outside working hours counts from the next opening."""
        remaining = timedelta(seconds=max(0.0, seconds))
        day = start.astimezone(self.tz).date()
        cursor = start.astimezone(UTC)
        for _ in range(3700):  # ten years of days: a bound, never reached with real targets
            if self.is_business_day(day):
                opens, closes = self._window(day)
                begin = max(cursor, opens)
                if begin < closes:
                    if begin + remaining <= closes:
                        return begin + remaining
                    remaining -= closes - begin
            day += timedelta(days=1)
        raise ValueError("business-hours target too far ahead")

    def add_business_hours(self, start: datetime, hours: float) -> datetime:
        return self.add_business_seconds(start, hours * 3600)

    def business_seconds_between(self, a: datetime, b: datetime) -> int:
        """Business seconds from ``a`` to ``b``; negative when ``b`` is before ``a``."""
        if b < a:
            return -self.business_seconds_between(b, a)
        total = timedelta()
        day = a.astimezone(self.tz).date()
        last = b.astimezone(self.tz).date()
        while day <= last:
            if self.is_business_day(day):
                opens, closes = self._window(day)
                begin, finish = max(a, opens), min(b, closes)
                if finish > begin:
                    total += finish - begin
            day += timedelta(days=1)
        return int(total.total_seconds())


CALENDAR = BusinessCalendar()


def add_business_hours(start: datetime, hours: float) -> datetime:
    return CALENDAR.add_business_hours(start, hours)


def business_seconds_between(a: datetime, b: datetime) -> int:
    return CALENDAR.business_seconds_between(a, b)


def resume_deadline(due: datetime | None, paused_at: datetime, resumed_at: datetime) -> datetime | None:
    """Where a deadline moves when the clock restarts at ``resumed_at`` after a pause from ``paused_at``:
    the business time that was left at the pause is counted again from the resumption. A deadline
    already passed at the pause stays where it was (the breach is not undone)."""
    if due is None:
        return None
    left = CALENDAR.business_seconds_between(paused_at, due)
    if left <= 0:
        return due
    return CALENDAR.add_business_seconds(resumed_at, left)
