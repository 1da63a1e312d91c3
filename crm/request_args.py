"""Numbers from a request, always parsed within a range.

A number out of range or not a number at all is treated as missing (the list shows its default), never
passed on: a huge id or year would overflow the database's integer and answer 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from flask import request
from werkzeug.routing import IntegerConverter

# PostgreSQL's ``integer``: every id column.
ID_MAX = 2**31 - 1
# Years any list, filter or fee schedule can mean (the fee schedules' and billing runs' range too).
FIRST_YEAR, LAST_YEAR = 2000, 2100
PAGE_MAX = 100_000

# Plain ASCII digits only: ``str.isdigit`` accepts "²", which ``int`` refuses.
_INTEGER = re.compile(r"-?[0-9]{1,18}")


def int_arg(
    name: str, *, low: int, high: int, default: int | None = None, args: Mapping[str, str] | None = None
) -> int | None:
    """``args[name]`` (default: ``request.args``) as an integer in ``low..high``, else ``default``."""
    raw = (args if args is not None else request.args).get(name, "")
    value = str(raw).strip()
    if not _INTEGER.fullmatch(value):
        return default
    number = int(value)
    return number if low <= number <= high else default


def id_arg(name: str, *, args: Mapping[str, str] | None = None) -> int | None:
    """A record id from the query string (``?category=3``), or None."""
    return int_arg(name, low=1, high=ID_MAX, args=args)


def year_arg(name: str = "year", *, default: int | None = None, args: Mapping[str, str] | None = None) -> int | None:
    """A year from the query string within ``FIRST_YEAR..LAST_YEAR``, else ``default``."""
    return int_arg(name, low=FIRST_YEAR, high=LAST_YEAR, default=default, args=args)


def date_arg(name: str, *, args: Mapping[str, str] | None = None) -> date | None:
    """An ISO date (``2026-12-31``) from the query string whose year is within ``FIRST_YEAR..LAST_YEAR``, or
    None: a day at the calendar's edge (``9999-12-31``) would overflow the period's end."""
    raw = str((args if args is not None else request.args).get(name, "")).strip()
    try:
        day = date.fromisoformat(raw) if raw else None
    except ValueError:
        return None
    return day if day is not None and FIRST_YEAR <= day.year <= LAST_YEAR else None


class BoundedIntegerConverter(IntegerConverter):
    """``<int:...>`` in a route, bounded by the id columns' range: a larger number is a 404, not an overflow."""

    def __init__(self, map, *args, **kwargs) -> None:
        kwargs.setdefault("max", ID_MAX)
        super().__init__(map, *args, **kwargs)
