"""A search ordered by the metric its filter drives on walks that metric's index in order
(`_anchor`): it must return exactly what the general query returns, page by page, ties and
missing values included."""

from __future__ import annotations

import pytest

from modelyard.registry import Registry
from modelyard.registry._filters import parse_filter
from modelyard.registry._search import _anchor, _ordered_query


@pytest.fixture
def populated(registry: Registry) -> Registry:
    aucs = [0.9, 0.95, 0.9, None, 0.99, 0.95, 0.5, 0.9, None, 0.99, 0.7, 0.95]
    for i, auc in enumerate(aucs):
        metrics = {"f1": i / 10} if auc is None else {"auc": auc, "f1": i / 10}
        tags = {"team": ["risk", "growth"][i % 2]}
        registry.create_version("fraud" if i % 3 else "iris", metrics=metrics, tags=tags)
    return registry


def pages(registry: Registry, text: str, order: str) -> list[str]:
    """Every version the search finds, two per page."""
    found: list[str] = []
    token = None
    while True:
        page = registry.search_versions(text, order_by=order, limit=2, page_token=token)
        found += [v.ref for v in page.versions]
        if page.next_page_token is None:
            return found
        token = page.next_page_token


@pytest.mark.parametrize(
    ("walked", "general"),
    [
        ("metrics.auc >= 0.9 and tags.team = 'risk'", "tags.team = 'risk' and metrics.auc >= 0.9"),
        ("metrics.auc >= 0.9 and name = 'fraud'", "name = 'fraud' and tags.team like '%' "
         "and metrics.auc >= 0.9"),
        ("metrics.auc < 0.96", "tags.team like '%' and metrics.auc < 0.96"),  # all have a team
        ("metrics.auc in (0.9, 0.99) and tags.team != 'x'",
         "tags.team != 'x' and metrics.auc in (0.9, 0.99)"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("order", ["metrics.auc desc", "metrics.auc", "metrics.auc desc, number"])
def test_walked_search_matches_the_general_query(
    populated: Registry, walked: str, general: str, order: str
) -> None:
    assert _anchor(parse_filter(walked), order) is not None
    assert _anchor(parse_filter(general), order) is None
    expected = pages(populated, general, order)
    assert expected and pages(populated, walked, order) == expected


@pytest.mark.parametrize(
    ("text", "order"),
    [
        ("metrics.auc >= 0.9 or tags.team = 'risk'", "metrics.auc desc"),  # not an `and`
        ("tags.team = 'risk' and metrics.auc >= 0.9", "metrics.auc desc"),  # a tag drives
        ("metrics.f1 >= 0.1 and metrics.auc >= 0.9", "metrics.auc desc"),  # another metric
        ("metrics.auc >= 0.9", "created desc"),  # not ordered by a metric
        ("not metrics.auc >= 0.9", "metrics.auc"),  # may match versions without the metric
    ],
)
def test_only_a_driving_comparison_on_the_ordering_metric_is_walked(text: str, order: str) -> None:
    assert _anchor(parse_filter(text), order) is None


def test_walked_query_orders_by_the_joined_column_without_nulls_last() -> None:
    sql = str(_ordered_query("metrics.auc >= 0.9 and tags.team = 'risk'", "metrics.auc desc"))
    assert "JOIN version_metrics AS ordered_metric" in sql
    assert "ORDER BY ordered_metric.value DESC, versions.id" in sql and "NULLS" not in sql
