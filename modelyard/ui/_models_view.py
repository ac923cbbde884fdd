"""What the models page and a model page show, read in a few queries whatever the number of
models or versions (the pages themselves are in `_models.py`)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from modelyard.errors import InvalidFilter
from modelyard.registry import (
    AliasEvent,
    ModelPage,
    State,
    metric_keys,
    page_token,
    summarize_models,
)
from modelyard.security import Role
from modelyard.ui._viewer import Viewer

PAGE_SIZE = 50
"""Rows per page, on both pages."""

MAX_PAGE = 10**9
"""The furthest page a link may ask for."""

SHOWN_METRICS = 4
"""How many metric columns the versions table has."""

HISTORY_SHOWN = 20
"""How many moves of each alias the model page lists."""

_PLAIN = re.compile(r"[\w.\-]+(?:\s+[\w.\-]+)*")
"""Plain words (`fraud`, `cancer v2`): a search of names, not a filter."""

_SAFE_KEY = re.compile(r"[\w.\-/]+")
"""A metric key an ordering can name (no spaces or commas)."""

VERSION_ORDERS = ("number", "created", "state")
"""Columns the versions table sorts by, besides metrics."""


@dataclass(frozen=True, slots=True)
class Listing:
    """The models page's query: what to search, how to order, which page."""

    search: str
    sort: str
    descending: bool
    page: int

    @classmethod
    def from_request(cls, request: Request) -> Listing:
        """Read `q`, `sort`, `dir` and `page` from the query string (400 when malformed)."""
        params = request.query_params
        sort = params.get("sort") or "name"
        if sort not in ("name", "updated"):
            raise InvalidFilter(f"models can be sorted by name or updated, not {sort!r}")
        default = "desc" if sort == "updated" else "asc"
        return cls(
            search=params.get("q", "").strip(),
            sort=sort,
            descending=_direction(params.get("dir") or default),
            page=whole(params.get("page"), name="page"),
        )


def whole(text: str | None, *, name: str) -> int:
    """A page number from a query string: 1 when absent."""
    if not text:
        return 1
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise InvalidFilter(f"{name} must be a whole number from 1 to {MAX_PAGE}, not {text!r}")
    return int(text)


def _direction(text: str) -> bool:
    if text not in ("asc", "desc"):
        raise InvalidFilter(f"dir must be asc or desc, not {text!r}")
    return text == "desc"


def list_models(viewer: Viewer, listing: Listing) -> ModelPage:
    """The page of models `listing` asks for that the viewer may read (a page may hold fewer
    than `PAGE_SIZE` when some are hidden; `more` still tells whether another follows)."""
    viewer.need_somewhere(Role.READER)
    plain = _PLAIN.fullmatch(listing.search) is not None
    found = summarize_models(
        viewer.registry.database,
        filter=None if plain else listing.search,
        words=listing.search.split() if plain else (),
        order=listing.sort,
        descending=listing.descending,
        offset=(listing.page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    if viewer.may(Role.READER):
        return found
    readable = [model for model in found.models if viewer.may(Role.READER, model.name)]
    return found.model_copy(update={"models": readable})


def quoted(text: str) -> str:
    """`text` as a string literal of the filter language."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class VersionsQuery:
    """The versions table's order and page, from the query string."""

    sort: str
    descending: bool
    page: int

    @classmethod
    def from_request(cls, request: Request) -> VersionsQuery:
        """Read `sort` (number, created, state or metrics.KEY), `dir` and `page` (400 when
        malformed)."""
        params = request.query_params
        sort = params.get("sort") or "number"
        metric = sort.removeprefix("metrics.")
        if sort not in VERSION_ORDERS and not (
            sort.startswith("metrics.") and _SAFE_KEY.fullmatch(metric)
        ):
            raise InvalidFilter(
                f"versions can be sorted by {', '.join(VERSION_ORDERS)} or metrics.KEY, "
                f"not {sort!r}"
            )
        return cls(
            sort=sort,
            descending=_direction(params.get("dir") or "desc"),
            page=whole(params.get("page"), name="page"),
        )

    @property
    def order_by(self) -> str:
        """The ordering for `search_versions`."""
        return f"{self.sort} {'desc' if self.descending else 'asc'}"


def versions_table(viewer: Viewer, name: str, query: VersionsQuery) -> dict[str, Any]:
    """The versions table's context: one page of the model's versions (one search, never the
    whole list), the metric keys to sort by, and which aliases point at each version."""
    registry = viewer.need(Role.READER, name).registry
    model = registry.get_model(name)
    keys = [key for key in metric_keys(registry.database, name) if _SAFE_KEY.fullmatch(key)]
    where = f"name = {quoted(name)}"
    token = page_token(registry.database, where, query.order_by,
                       offset=(query.page - 1) * PAGE_SIZE)  # fmt: skip
    found = registry.search_versions(where, order_by=query.order_by, limit=PAGE_SIZE,
                                     page_token=token)  # fmt: skip
    sorted_metric = query.sort.removeprefix("metrics.") if query.sort.startswith("metrics.") else ""
    shown = ([sorted_metric] if sorted_metric else []) + [k for k in keys if k != sorted_metric]
    pointing: dict[int, list[str]] = defaultdict(list)
    for alias, number in model.aliases.items():
        pointing[number].append(alias)
    return {
        "model": model,
        "versions": found.versions,
        "more": found.next_page_token is not None,
        "query": query,
        "metric_keys": keys,
        "shown_metrics": shown[:SHOWN_METRICS],
        "pointing": pointing,
        "page_size": PAGE_SIZE,
    }


def model_page(viewer: Viewer, name: str, query: VersionsQuery) -> dict[str, Any]:
    """Everything a model page shows: the versions table, gates, alias history, and which
    actions the viewer may take."""
    context = versions_table(viewer, name, query)
    registry = viewer.registry
    history: dict[str, list[AliasEvent]] = defaultdict(list)
    for event in registry.alias_history(name):
        if len(history[event.alias]) < HISTORY_SHOWN:
            history[event.alias].append(event)
    aliases = context["model"].aliases
    roles = {alias: viewer.gatekeeper.alias_role(alias) for alias in aliases}
    context.update(
        gates=registry.gates(name),
        history=history,
        states=[state.value for state in State],
        may_edit=viewer.may(Role.EDITOR, name),
        may_approve=viewer.may(Role.APPROVER, name),
        may_move={alias: viewer.may(role, name) for alias, role in roles.items()},
    )
    return context


FIRST_PAGE = VersionsQuery(sort="number", descending=True, page=1)
"""The versions table as a model page first shows it."""
