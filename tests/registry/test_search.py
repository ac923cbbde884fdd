from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.registry import InvalidFilter, Registry
from modelyard.registry._filters import Compare, Logical, Not, parse_filter


@pytest.fixture
def populated(registry: Registry) -> Registry:
    rows = [
        ("fraud", {"auc": 0.91}, {"lr": "0.1"}, {"team": "risk"}),
        ("fraud", {"auc": 0.95}, {"lr": "0.01"}, {"team": "risk", "stage": "exp"}),
        ("fraud", {}, {"lr": "1"}, {"team": "growth"}),
        ("iris", {"auc": 0.80, "f1": 0.7}, {"lr": "0.5"}, {}),
        ("iris-v2", {"auc": 0.99}, {}, {"team": "risk"}),
    ]
    for name, metrics, params, tags in rows:
        registry.create_version(name, metrics=metrics, params=params, tags=tags)
    registry.transition("fraud:2", "validated")
    return registry


def refs(registry: Registry, text: str | None, order: str | None = "name, number") -> list[str]:
    return [v.ref for v in registry.search_versions(text, order_by=order).versions]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name = 'fraud'", ["fraud:1", "fraud:2", "fraud:3"]),
        ("name != 'fraud'", ["iris:1", "iris-v2:1"]),
        ("name like 'iris%'", ["iris:1", "iris-v2:1"]),
        ("name in ('iris', \"iris-v2\")", ["iris:1", "iris-v2:1"]),
        ("name not in ('fraud')", ["iris:1", "iris-v2:1"]),
        ("version >= 2", ["fraud:2", "fraud:3"]),
        ("number in (1, 3)", ["fraud:1", "fraud:3", "iris:1", "iris-v2:1"]),
        ("state = 'validated'", ["fraud:2"]),
        ("metrics.auc >= 0.91", ["fraud:1", "fraud:2", "iris-v2:1"]),
        ("metrics.auc > 0.91 and metrics.auc < 0.99", ["fraud:2"]),
        ("metrics.f1 = 0.7", ["iris:1"]),
        ("metrics.auc in (0.8, 0.99)", ["iris:1", "iris-v2:1"]),
        (
            "metrics.auc < 1e999 and metrics.auc > -1e999",
            ["fraud:1", "fraud:2", "iris:1", "iris-v2:1"],
        ),  # infinities stay bound
        ("metrics.auc >= 9.1e-1 and metrics.auc < 9.5e-1", ["fraud:1"]),
        ("params.lr = '0.1'", ["fraud:1"]),
        ("params.lr = 1", ["fraud:3"]),
        ("params.lr >= 0.5", ["fraud:3", "iris:1"]),
        ("params.lr like '0.%'", ["fraud:1", "fraud:2", "iris:1"]),
        ("tags.team = 'risk'", ["fraud:1", "fraud:2", "iris-v2:1"]),
        ("tags.team != 'risk'", ["fraud:3"]),
        ("not tags.team = 'risk'", ["fraud:3", "iris:1"]),
        ("tags.`stage` = 'exp'", ["fraud:2"]),
        (
            "tags.team = 'risk' and (metrics.auc > 0.95 or name = 'fraud')",
            ["fraud:1", "fraud:2", "iris-v2:1"],
        ),
        ("tags.team = 'risk' and metrics.auc > 0.95 or name = 'iris'", ["iris:1", "iris-v2:1"]),
        ("NAME = 'fraud' AND NOT metrics.auc > 0.92", ["fraud:1", "fraud:3"]),
        ("created > '2000-01-01' and updated <= '2999-01-01T00:00:00+00:00'", None),
        ("created_by = 'ana' and flavor in ('sklearn')", []),
        ("description = '' and run = 'none'", []),
        ("id = 'nope'", []),
        ("", None),
    ],
)
def test_filters(populated: Registry, text: str, expected: list[str] | None) -> None:
    everything = ["fraud:1", "fraud:2", "fraud:3", "iris:1", "iris-v2:1"]
    assert refs(populated, text) == (everything if expected is None else expected)


def test_order_by_metric_puts_missing_values_last(populated: Registry) -> None:
    assert refs(populated, None, "metrics.auc desc") == [
        "iris-v2:1", "fraud:2", "fraud:1", "iris:1", "fraud:3",
    ]  # fmt: skip
    assert refs(populated, None, "metrics.auc")[-1] == "fraud:3"
    assert refs(populated, None, "created desc")[0] == "iris-v2:1"
    assert refs(populated, None, None)[0] == "iris-v2:1"  # newest first by default


def test_pagination_has_no_gaps_or_repeats(registry: Registry) -> None:
    for i in range(25):
        registry.create_version("fraud", metrics={"auc": i / 100})
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = registry.search_versions(
            "metrics.auc >= 0", order_by="metrics.auc desc", limit=10, page_token=token
        )
        seen += [v.ref for v in page.versions]
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    assert pages == 3
    assert seen == [f"fraud:{n}" for n in range(25, 0, -1)]


def test_token_belongs_to_its_search(registry: Registry) -> None:
    for _ in range(3):
        registry.create_version("fraud")
    page = registry.search_versions("name = 'fraud'", limit=1)
    assert page.next_page_token is not None
    with pytest.raises(InvalidFilter, match="does not belong to this search"):
        registry.search_versions("name = 'iris'", limit=1, page_token=page.next_page_token)
    with pytest.raises(InvalidFilter, match="is not valid"):
        registry.search_versions("name = 'fraud'", limit=1, page_token="garbage!")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("metrics.auc >= and x", "column 16: expected a value after '>='"),
        ("name = 'fraud' and", "column 19: expected a field"),
        ("(name = 'a'", "column 12: expected '\\)'"),
        ("name ~ 'a'", "column 6: unexpected character"),
        ("name = 'a' b", "column 12: expected 'and', 'or' or the end"),
        ("name not 'a'", "column 10: expected 'in' after 'not'"),
        ("name in 'a'", "column 9: expected '\\(' to open"),
        ("name in ('a' 'b')", "column 14: expected ',' or '\\)'"),
        ("name 'a'", "column 6: expected an operator"),
        ("colour = 'red'", "unknown field 'colour'"),
        ("weights.x = 1", "unknown field 'weights.x'"),
        ("metrics.auc >= 'high'", "metrics.auc compares with numbers"),
        ("metrics.auc like '0.9%'", "metrics.auc compares with numbers"),
        ("created > 'last tuesday'", "created compares with dates"),
    ],
)
def test_errors_name_the_problem(registry: Registry, text: str, problem: str) -> None:
    with pytest.raises(InvalidFilter, match=problem) as caught:
        registry.search_versions(text)
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("order", "problem"),
    [("colour", "cannot order by 'colour'"), ("name up", "use FIELD"), ("name,", "use FIELD")],
)
def test_bad_orderings(registry: Registry, order: str, problem: str) -> None:
    with pytest.raises(InvalidFilter, match=problem):
        registry.search_versions(None, order_by=order)


def test_limit_bounds(registry: Registry) -> None:
    with pytest.raises(InvalidFilter, match="limit must be between 1 and 10000"):
        registry.search_versions(limit=0)


def test_syntax_tree() -> None:
    node = parse_filter("not (a = 1 or b like 'x%') and c not in ('p', \"q\\\"r\")")
    assert node == Logical(
        "and",
        (
            Not(Logical("or", (Compare("a", "=", 1.0), Compare("b", "like", "x%")))),
            Compare("c", "not in", ("p", 'q"r')),
        ),
    )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_garbage_only_ever_raises_invalid_filter(text: str) -> None:
    try:
        parse_filter(text)
    except InvalidFilter:
        pass


def test_metric_thresholds_are_written_into_the_sql_and_strings_are_not() -> None:
    from sqlalchemy.dialects import postgresql

    from modelyard.registry._search import search_query

    query = search_query(
        "metrics.auc >= 0.25 and tags.team = 'x''; drop table versions; --'",
        order_by=None, limit=10, page_token=None, key=b"k" * 32,
    )  # fmt: skip
    compiled = query.compile(dialect=postgresql.dialect())
    sql = str(compiled)
    rendered = compiled.construct_params()
    assert "drop table" not in sql and "x'; drop table versions; --" in rendered.values()
    binds = query.compile().binds.values()
    assert {p.value for p in binds if p.literal_execute} == {0.25, 11, 0}  # threshold, page
