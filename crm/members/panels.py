"""Tabs on the organisation page. Later features (invoices, cases, events, teams) register theirs here,
so the member register never imports them.

A panel is either an endpoint name (the tab links to ``url_for(endpoint, organisation_id=...)``) or a
callable ``(organisation) -> str`` returning the tab's HTML, rendered inside the organisation page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Panel:
    key: str
    label: Any  # a lazy string
    target: str | Callable[[Any], str]
    order: int = 100

    @property
    def is_endpoint(self) -> bool:
        return isinstance(self.target, str)


_PANELS: dict[str, Panel] = {}


def register_panel(key: str, label: Any, endpoint_or_callable: str | Callable[[Any], str], order: int = 100) -> None:
    """Add (or replace, by key) a tab on the organisation page."""
    _PANELS[key] = Panel(key, label, endpoint_or_callable, order)


def panels() -> list[Panel]:
    return sorted(_PANELS.values(), key=lambda panel: (panel.order, panel.key))


def get_panel(key: str) -> Panel | None:
    return _PANELS.get(key)
