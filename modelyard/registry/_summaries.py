"""Reads for list pages: a page of models, each with its latest version's state, its production
version and its aliases, in two queries whatever the number of models or versions; and the
metric keys one model's versions have.

    >>> page = summarize_models(registry.database, filter="metrics.auc >= 0.9", limit=50)
    >>> [(m.name, m.latest_version, m.aliases) for m in page.models]
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, and_, bindparam, func, select

from modelyard.errors import InvalidFilter
from modelyard.registry import _search
from modelyard.registry._audit import utc
from modelyard.registry._database import Database
from modelyard.registry._filters import parse_filter
from modelyard.registry._records import State
from modelyard.registry._search import compile_filter
from modelyard.registry._tables import aliases, models, version_metrics, versions

ORDERS = ("name", "updated")
"""What a page of models may be ordered by."""

MAX_MODELS_PAGE = 1000
"""The most models one page holds."""


class ModelSummary(BaseModel):
    """One row of the models page: a model, its latest version and where `production` points."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    """The model's description, else its latest version's."""
    owner: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    latest_version: int | None = None
    latest_state: State | None = None
    production_version: int | None = None
    production_state: State | None = None
    aliases: dict[str, int] = Field(default_factory=dict)
    updated_at: datetime


class ModelPage(BaseModel):
    """A page of model summaries; `more` when another page follows."""

    model_config = ConfigDict(frozen=True)

    models: list[ModelSummary]
    more: bool = False


_M = models.alias("m")
_LATEST = versions.alias("latest")
_PRODUCTION_ALIAS = aliases.alias("production_alias")
_PRODUCTION = versions.alias("production")


def summaries_query(
    *,
    filter: str | None = None,
    words: Sequence[str] = (),
    order: str = "name",
    descending: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> Select[Any]:
    """The SELECT for one page of models (limit + 1 rows): those whose name holds every one of
    `words` (any case) and, with a `filter`, that have a version matching it.

    >>> summaries_query(filter="tags.team = 'risk'", order="updated", descending=True)
    """
    _check_page(order, offset, limit)
    newest = (
        select(func.max(versions.c.number))
        .where(versions.c.model_id == _M.c.id)
        .correlate(_M)
        .scalar_subquery()
    )
    source = (
        _M.outerjoin(_LATEST, and_(_LATEST.c.model_id == _M.c.id, _LATEST.c.number == newest))
        .outerjoin(
            _PRODUCTION_ALIAS,
            and_(_PRODUCTION_ALIAS.c.model_id == _M.c.id, _PRODUCTION_ALIAS.c.name == "production"),
        )
        .outerjoin(_PRODUCTION, _PRODUCTION.c.id == _PRODUCTION_ALIAS.c.version_id)
    )
    query = select(
        _M.c.id, _M.c.name, _M.c.description, _M.c.owner, _M.c.tags, _M.c.updated_at,
        _LATEST.c.number.label("latest_version"), _LATEST.c.state.label("latest_state"),
        _LATEST.c.description.label("latest_description"),
        _PRODUCTION.c.number.label("production_version"),
        _PRODUCTION.c.state.label("production_state"),
    ).select_from(source)  # fmt: skip
    for word in words:
        query = query.where(func.lower(_M.c.name).contains(word.lower(), autoescape=True))
    if filter and filter.strip():
        # The plain tables inside, the alias outside: the filter's `name` and keyed probes
        # refer to the subquery's own rows, never to the outer model.
        matching = (
            select(versions.c.model_id)
            .select_from(versions.join(models, models.c.id == versions.c.model_id))
            .where(compile_filter(parse_filter(filter)))
        )
        query = query.where(_M.c.id.in_(matching))
    column = _M.c.name if order == "name" else _M.c.updated_at
    ordered = [column.desc() if descending else column.asc()]
    if order != "name":
        ordered.append(_M.c.name.asc())  # ties in a stable order, so pages neither skip nor repeat
    return query.order_by(*ordered).offset(offset).limit(limit + 1)


def _check_page(order: str, offset: int, limit: int) -> None:
    if order not in ORDERS:
        raise InvalidFilter(f"models can be ordered by {', '.join(ORDERS)}, not {order!r}")
    if not 1 <= limit <= MAX_MODELS_PAGE:
        raise InvalidFilter(f"limit must be between 1 and {MAX_MODELS_PAGE}, not {limit!r}")
    if not 0 <= offset <= _search.MAX_OFFSET:
        raise InvalidFilter(f"offset must be between 0 and {_search.MAX_OFFSET}, not {offset!r}")


_ALIASES_OF = (
    select(aliases.c.model_id, aliases.c.name, versions.c.number)
    .join(versions, versions.c.id == aliases.c.version_id)
    .where(aliases.c.model_id.in_(bindparam("model_ids", expanding=True)))
    .order_by(aliases.c.model_id, aliases.c.name)
)


def summarize_models(
    database: Database,
    *,
    filter: str | None = None,
    words: Sequence[str] = (),
    order: str = "name",
    descending: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> ModelPage:
    """A page of model summaries (see `summaries_query`): two queries, the page and its
    models' aliases."""
    query = summaries_query(filter=filter, words=words, order=order, descending=descending,
                            offset=offset, limit=limit)  # fmt: skip
    with database.read() as connection:
        rows = connection.execute(query).all()
        page = rows[:limit]
        pointed: dict[str, dict[str, int]] = {row.id: {} for row in page}
        if page:
            for alias in connection.execute(_ALIASES_OF, {"model_ids": list(pointed)}):
                pointed[alias.model_id][alias.name] = alias.number
    summaries = [
        ModelSummary(
            name=row.name, description=row.description or row.latest_description or "",
            owner=row.owner, tags=row.tags,
            latest_version=row.latest_version, latest_state=row.latest_state,
            production_version=row.production_version, production_state=row.production_state,
            aliases=pointed[row.id], updated_at=utc(row.updated_at),
        )
        for row in page
    ]  # fmt: skip
    return ModelPage(models=summaries, more=len(rows) > limit)


RECENT_VERSIONS = 500
"""How many of a model's newest versions `metric_keys` looks at."""


def metric_keys_query() -> Select[Any]:
    """The SELECT of the distinct metric keys of one model's newest `RECENT_VERSIONS` versions
    (`:model_name`): reading every version's keys took 125 ms at 10,000 versions, these take
    a few, and a key only old versions have can still be named in an ordering."""
    recent = (
        select(versions.c.id)
        .join(models, models.c.id == versions.c.model_id)
        .where(models.c.name == bindparam("model_name"))
        .order_by(versions.c.number.desc())
        .limit(RECENT_VERSIONS)
    )
    return (
        select(version_metrics.c.key)
        .where(version_metrics.c.version_id.in_(recent))
        .distinct()
        .order_by(version_metrics.c.key)
    )


_METRIC_KEYS = metric_keys_query()


def metric_keys(database: Database, name: str) -> list[str]:
    """The metric keys of model `name`'s newest versions (see `metric_keys_query`), sorted."""
    with database.read() as connection:
        return list(connection.execute(_METRIC_KEYS, {"model_name": name}).scalars())


def page_token(
    database: Database, filter: str | None, order_by: str | None, *, offset: int
) -> str | None:
    """The `search_versions` page token for the page starting at `offset` of this search (None
    for the first), so a page can link to any page by number, back as well as forward."""
    if offset == 0:
        return None
    if not 0 < offset <= _search.MAX_OFFSET:
        raise InvalidFilter(f"offset must be between 0 and {_search.MAX_OFFSET}, not {offset!r}")
    return _search.next_page_token(filter, order_by, offset=offset, key=database.page_key)
