"""Searching runs with the filter language, on SQLite and PostgreSQL: params, latest metric
values, status, tags, dates; orderings with missing values last; bad filters named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelyard.errors import InvalidFilter
from modelyard.registry import Registry, Run


@pytest.fixture
def sweep(registry: Registry) -> dict[str, Run]:
    """Three runs: a, b (with a loss history that ends low) and c (no metrics, still running)."""
    a = registry.create_run(name="a", params={"lr": 0.1, "opt": "adam"}, tags={"team": "risk"})
    registry.log_metrics(a.id, {"loss": 0.2, "acc": 0.9})
    registry.end_run(a.id)
    b = registry.create_run(name="b", params={"lr": 0.01, "opt": "sgd"}, tags={"team": "ads"})
    registry.log_metrics(b.id, {"loss": 0.9})
    registry.log_metrics(b.id, {"loss": 0.25}, step=5)  # latest: 0.25, though 0.9 came first
    registry.end_run(b.id, "failed")
    c = registry.create_run(name="c", params={"lr": "auto"}, tags={"tune.study": "s1"})
    return {run.name: registry.get_run(run.id) for run in (a, b, c)}


def names(runs: list[Run]) -> list[str]:
    return [run.name for run in runs]


def test_without_a_filter_every_run_newest_first(registry: Registry, sweep: dict[str, Run]) -> None:
    assert names(registry.search_runs()) == ["c", "b", "a"]
    assert names(registry.search_runs(limit=2)) == ["c", "b"]
    found = {run.name: run for run in registry.search_runs()}
    assert found["b"].metrics == {"loss": 0.25} and found["a"].metrics == {"loss": 0.2, "acc": 0.9}
    assert found == sweep


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("metrics.loss < 0.3", {"a", "b"}),
        ("metrics.loss > 0.5", set()),  # b's 0.9 is history, not its latest value
        ("params.lr = '0.1'", {"a"}),
        ("params.lr < 0.05", {"b"}),  # numeric: 'auto' matches nothing rather than failing
        ("params.opt in ('adam', 'sgd') and status = 'finished'", {"a"}),
        ("status != 'finished'", {"b", "c"}),
        ("tags.team != 'risk'", {"b"}),  # has the tag with another value, as for versions
        ("not tags.team = 'risk'", {"b", "c"}),  # includes runs without the tag
        ("tags.`tune.study` = 's1'", {"c"}),
        ("name like 'a%' or metrics.acc >= 0.9", {"a"}),
        ("created_by = 'ana' and code_revision = 'x'", set()),
        ("ended >= '2000-01-01'", {"a", "b"}),
    ],
)
def test_filters(
    registry: Registry, sweep: dict[str, Run], filter: str, expected: set[str]
) -> None:
    assert set(names(registry.search_runs(filter))) == expected


def test_dates_and_ids(registry: Registry, sweep: dict[str, Run]) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert registry.search_runs(f"started > '{later}'") == []
    assert names(registry.search_runs(f"id = '{sweep['b'].id}'")) == ["b"]


def test_orderings(registry: Registry, sweep: dict[str, Run]) -> None:
    assert names(registry.search_runs(order_by="metrics.loss")) == ["a", "b", "c"]
    assert names(registry.search_runs(order_by="metrics.loss desc")) == ["b", "a", "c"]
    assert names(registry.search_runs(order_by="params.opt desc, name")) == ["b", "a", "c"]
    assert names(registry.search_runs(order_by="started asc")) == ["a", "b", "c"]
    assert names(registry.search_runs("metrics.loss < 1", order_by="name", limit=1)) == ["a"]


@pytest.mark.parametrize(
    ("filter", "order_by", "limit", "message"),
    [
        ("version = 1", None, 10, "unknown field 'version'; known fields for runs"),
        ("datasets.train = 'x'", None, 10, "unknown field 'datasets.train'"),
        (None, "metrics.", 10, "unknown field 'metrics.'"),
        ('params.`a"b` = 1', None, 10, "may not contain quotes"),
        ("metrics.loss = 'low'", None, 10, "compares with numbers"),
        ("started > 'yesterday'", None, 10, "compares with dates"),
        ("metrics.loss <", None, 10, "invalid filter at column"),
        (None, "loss", 10, "cannot order by 'loss'"),
        (None, "name sideways", 10, "use FIELD"),
        (None, ",".join(["name"] * 9), 10, "at most 8 fields"),
        (None, None, 0, "limit must be between 1 and 10000"),
        ("params.`a\x00` = 'x'", None, 10, "may not contain NUL"),
        (None, "metrics.a\x00", 10, "may not contain NUL"),
    ],
)
def test_bad_searches_say_what_is_wrong(
    registry: Registry, filter: str | None, order_by: str | None, limit: int, message: str
) -> None:
    with pytest.raises(InvalidFilter, match=message):
        registry.search_runs(filter, order_by=order_by, limit=limit)


def test_versions_refuse_nul_too(registry: Registry) -> None:
    with pytest.raises(InvalidFilter, match="may not contain NUL"):
        registry.search_versions("metrics.`a\x00` < 1")
    with pytest.raises(InvalidFilter, match="may not contain NUL"):
        registry.search_versions(order_by="metrics.a\x00")
