"""Paginating a SQLAlchemy select for list pages; page links keep the query string's filters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from math import ceil
from typing import Any

from flask import current_app, request, url_for
from sqlalchemy import Select, func, select

from crm.extensions import db
from crm.request_args import PAGE_MAX, int_arg

MAX_PER_PAGE = 200


@dataclass
class Page:
    """One page of results; ``items`` are ORM objects (or rows with ``scalars=False``)."""

    items: list[Any]
    page: int
    per_page: int
    total: int
    endpoint: str | None = None
    view_args: dict[str, Any] = field(default_factory=dict)
    query_args: dict[str, list[str]] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def first_index(self) -> int:
        """1-based position of the first item on this page (0 when there are none)."""
        return (self.page - 1) * self.per_page + 1 if self.items else 0

    @property
    def last_index(self) -> int:
        return (self.page - 1) * self.per_page + len(self.items)

    def url_for_page(self, number: int) -> str:
        args = {key: values for key, values in self.query_args.items() if key != "page" and key not in self.view_args}
        if number > 1:
            args["page"] = [str(number)]
        return url_for(self.endpoint or request.endpoint, **self.view_args, **args)

    def iter_pages(self, edge: int = 1, around: int = 2) -> Iterator[int | None]:
        """Page numbers to link, with ``None`` where a gap is shown as an ellipsis."""
        last_shown = 0
        for number in range(1, self.pages + 1):
            if number <= edge or number > self.pages - edge or abs(number - self.page) <= around:
                if number - last_shown > 1:
                    yield None
                yield number
                last_shown = number


def requested_page() -> int:
    """The page number asked for with ``?page=`` (1 when missing, not a number or out of range)."""
    return int_arg("page", low=1, high=PAGE_MAX, default=1) or 1


def paginate(stmt: Select, *, per_page: int | None = None, scalars: bool = True) -> Page:
    """Run ``stmt`` for the page named by ``?page=`` (a number past the end shows the last page).

    Always two queries: a count and the page itself.
    """
    per_page = per_page or int_arg("per_page", low=1, high=MAX_PER_PAGE, default=current_app.config["PER_PAGE"])
    per_page = min(per_page, MAX_PER_PAGE)
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    pages = max(1, ceil(total / per_page))
    page = min(requested_page(), pages)
    limited = stmt.limit(per_page).offset((page - 1) * per_page)
    result = db.session.scalars(limited) if scalars else db.session.execute(limited)
    return Page(
        items=list(result),
        page=page,
        per_page=per_page,
        total=total,
        endpoint=request.endpoint,
        view_args=dict(request.view_args or {}),
        query_args=request.args.to_dict(flat=False),
    )
