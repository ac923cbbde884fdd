"""What a registry refuses from untrusted callers: non-finite numbers, integers past 64 bits,
oversized or deep filters, and forged page tokens; and rows an older modelyard stored with
non-finite numbers still read."""

from __future__ import annotations

import base64
import json
import math
import time

import pytest
from sqlalchemy import update

from modelyard.errors import ConfigurationError, InvalidReference
from modelyard.registry import Database, InvalidFilter, Registry
from modelyard.registry._filters import MAX_DEPTH, MAX_LENGTH, parse_filter
from modelyard.registry._tables import run_metrics, version_metrics, versions


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_are_refused_on_every_write(registry: Registry, value: float) -> None:
    with pytest.raises(ConfigurationError, match="metric 'auc' must be a finite number"):
        registry.create_version("fraud", metrics={"auc": value})
    with pytest.raises(ConfigurationError, match="finite"):
        registry.create_version("fraud", params={"lr": value})
    with pytest.raises(ConfigurationError, match="finite"):
        registry.add_gate("fraud", "metric", metric="auc", op=">=", value=value)
    run = registry.create_run(name="r")
    with pytest.raises(ConfigurationError, match="metric 'loss' must be a finite number"):
        registry.log_metrics(run.id, {"loss": value}, step=1)
    with pytest.raises(ConfigurationError, match="finite"):
        registry.log_params(run.id, {"lr": value})
    assert registry.search_versions().versions == []


def test_integers_past_64_bits_are_refused(registry: Registry) -> None:
    run = registry.create_run(name="r")
    for step in (2**73, 2**63, -(2**63) - 1):
        with pytest.raises(ConfigurationError, match="step must be a whole number"):
            registry.log_metrics(run.id, {"loss": 1.0}, step=step)
    registry.log_metrics(run.id, {"loss": 1.0}, step=2**63 - 1)
    with pytest.raises(ConfigurationError, match="next step"):
        registry.log_metrics(run.id, {"loss": 2.0})  # one past the largest step
    with pytest.raises(ConfigurationError, match="limit must be a whole number"):
        registry.audit_log(limit=10**30)
    with pytest.raises(ConfigurationError, match="integers must fit in 64 bits"):
        registry.add_gate("fraud", "approval", count=2**73)
    with pytest.raises(ConfigurationError, match="integers must fit in 64 bits"):
        registry.create_version("fraud", signature={"inputs": [{"shape": [1, 2**64]}]})
    registry.create_version("fraud")
    with pytest.raises(InvalidReference, match="a version number up to 2147483647"):
        registry.get_version("fraud:9999999999")  # PostgreSQL's INTEGER is 32 bits


@pytest.mark.parametrize(
    "text", ["version = 1e300", "version = 1e999", "number in (1, 99999999999999999999)",
             "version = 1.5", "version > -1e19", "version = 3000000000"],
)  # fmt: skip
def test_version_numbers_in_filters_stay_in_range(registry: Registry, text: str) -> None:
    with pytest.raises(InvalidFilter, match="whole numbers from"):
        registry.search_versions(text)


def test_limits_are_bounded(registry: Registry) -> None:
    for limit in (0, 10_001, 10**30):
        with pytest.raises(InvalidFilter, match="limit must be between 1 and 10000"):
            registry.search_versions(limit=limit)


def test_long_and_deep_filters_are_refused_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidFilter, match=f"at most {MAX_LENGTH} characters"):
        parse_filter("1" * 20_000)
    with pytest.raises(InvalidFilter, match=f"at most {MAX_DEPTH} deep"):
        parse_filter("(" * 1000 + "a = 1" + ")" * 1000)
    with pytest.raises(InvalidFilter, match=f"at most {MAX_DEPTH} deep"):
        parse_filter("not " * 1000 + "a = 1")
    parse_filter("(" * MAX_DEPTH + "a = 1" + ")" * MAX_DEPTH)
    assert time.perf_counter() - started < 5  # a generous bound; the server test uses a ratio


def scan_time(text: str) -> float:
    started = time.perf_counter()
    with pytest.raises(InvalidFilter):
        parse_filter(text)
    return time.perf_counter() - started


def test_tokenizing_is_linear() -> None:
    # Digits followed by a letter made the number pattern try every split of the digits.
    small = min(scan_time("version = " + "1" * 400 + "x") for _ in range(5))
    large = min(scan_time("version = " + "1" * 4000 + "x") for _ in range(5))
    assert large / small < 40  # quadratic would be ~100; linear ~10


def test_page_tokens_are_signed(registry: Registry, database_url_for: str) -> None:
    for number in range(3):
        registry.create_version("fraud", metrics={"auc": number / 10})
    token = registry.search_versions(limit=1).next_page_token
    assert token is not None and registry.search_versions(limit=1, page_token=token).versions
    payload, _, signature = token.partition(".")
    forged = json.dumps({"o": 10**30, "h": json.loads(_decode(payload))["h"]}).encode()
    for bad in [
        base64.urlsafe_b64encode(forged).decode().rstrip("=") + "." + signature,
        base64.urlsafe_b64encode(forged).decode().rstrip("="),  # the old, unsigned form
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "garbage!",
        "x" * 5000,
    ]:
        with pytest.raises(InvalidFilter, match="page token is not valid"):
            registry.search_versions(limit=1, page_token=bad)
    other = Database(database_url_for, secret=b"another server")
    other.open()
    try:
        with pytest.raises(InvalidFilter, match="page token is not valid"):
            Registry(other, actor="ana").search_versions(limit=1, page_token=token)
    finally:
        other.close()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_rows_with_non_finite_numbers_from_older_versions_still_read(
    registry: Registry, database: Database
) -> None:
    version = registry.create_version("fraud", metrics={"auc": 0.9, "f1": 0.5})
    run = registry.create_run(name="r")
    registry.log_metrics(run.id, {"loss": 1.0}, step=0)
    with database.write() as connection:  # what modelyard before 0.x stored for 1e999 and NaN
        connection.execute(
            update(versions)
            .values(metrics={"auc": None, "f1": 0.5})
            .where(versions.c.id == version.id)
        )
        connection.execute(
            update(version_metrics).values(value=math.inf).where(version_metrics.c.key == "auc")
        )
        connection.execute(update(run_metrics).values(value=math.inf))
    got = registry.get_version("fraud:1")
    assert math.isnan(got.metrics["auc"]) and got.metrics["f1"] == 0.5
    assert json.loads(got.model_dump_json())["metrics"] == {"auc": None, "f1": 0.5}
    assert [v.number for v in registry.list_versions("fraud")] == [1]
    found = registry.search_versions("metrics.auc > 0.5", order_by="metrics.auc desc")
    assert [v.number for v in found.versions] == [1]
    assert json.loads(registry.get_run(run.id).model_dump_json())["metrics"] == {"loss": None}
    assert json.loads(registry.metric_history(run.id, "loss")[0].model_dump_json())["value"] is None


def test_numeric_param_comparisons_skip_values_that_are_not_numbers(registry: Registry) -> None:
    registry.create_version("fraud", params={"optimizer": "adam"})  # PostgreSQL's CAST raised
    registry.create_version("fraud", params={"optimizer": "0.5"})
    found = registry.search_versions("params.optimizer > 0.1")
    assert [v.number for v in found.versions] == [2]


def test_a_gate_threshold_stored_as_null_by_an_older_version_fails_the_gate_cleanly(
    registry: Registry, database: Database
) -> None:
    from modelyard.registry import GateFailed
    from modelyard.registry._tables import gates

    registry.add_gate("fraud", "metric", to_state="validated", metric="auc", op=">=", value=0.5)
    registry.create_version("fraud", metrics={"auc": 0.9})
    with database.write() as connection:  # what 1e999 became in a JSON column
        connection.execute(
            update(gates).values(config={"metric": "auc", "op": ">=", "value": None})
        )
    with pytest.raises(GateFailed, match="threshold is None; remove the gate"):
        registry.transition("fraud:1", "validated")
