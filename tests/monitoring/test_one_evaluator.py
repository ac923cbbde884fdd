"""Alert rules evaluated once across processes: two alert loops (in-process, each with its own
connection to one SQLite or PostgreSQL registry, as two replicas have) share the rules' lease;
only the holder fires and rolls back; the other takes over when the holder stops (at once) or
dies (when its lease runs out); a registry that cannot be reached stops nothing.
tests/monitoring/test_one_evaluator_processes.py does it with two `modelyard serve` processes."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import RegistryUnavailable
from modelyard.monitoring import AlertLoop, EvaluatorLease, rules_lease_name
from modelyard.registry import Database, Lease, Registry
from tests.monitoring.test_alert_loop import RULE, Gauges, Traffic, Window

pytestmark = pytest.mark.anyio

ERRORS = Window(requests=50, error_rate=0.4, latency_p99=0.01)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("fresh_postgres"))
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    database = Database(url)
    database.open()
    database.migrate()
    database.close()
    return url


@pytest.fixture
def registries(database_url: str) -> Iterator[list[Registry]]:
    """`fraud` v1 then v2 as production, and two registries on it with connections of their own
    (two replicas)."""
    opened = [Database(database_url) for _ in range(2)]
    for database in opened:
        database.open()
    registry = Registry(opened[0], actor="setup")
    registry.create_version("fraud", alias="production")
    registry.create_version("fraud", alias="production")
    yield [Registry(database, actor=f"replica-{i}") for i, database in enumerate(opened)]
    for database in opened:
        database.close()


def loop(registry: Registry, *, lease_seconds: float = 30) -> tuple[AlertLoop, Gauges]:
    gauges = Gauges()
    # A registry is all a traffic rule's rollback needs (it never asks for a drift report).
    source: Any = registry
    made = AlertLoop([RULE], yard=source, metrics=gauges, interval=60, traffic=Traffic(ERRORS),
                     leases=registry, lease_seconds=lease_seconds)  # fmt: skip
    return made, gauges


def evaluator(gauges: Gauges) -> float | None:
    return gauges.registry.get_sample_value("alert_evaluator")


def rollbacks(registry: Registry) -> int:
    return sum(1 for event in registry.alias_history("fraud", "production") if event.previous == 2)


async def test_only_the_holder_fires_and_rolls_back(registries: list[Registry]) -> None:
    (first, first_gauges), (second, second_gauges) = loop(registries[0]), loop(registries[1])
    assert await first.tick() == ["fraud-errors"]
    assert await second.tick() == []
    assert await second.tick() == []
    assert rollbacks(registries[0]) == 1
    assert registries[0].get_version("fraud@production").number == 1
    assert (evaluator(first_gauges), evaluator(second_gauges)) == (1, 0)
    assert (
        second_gauges.registry.get_sample_value("alert_firings_total", {"rule": RULE.name}) is None
    )


async def test_a_clean_stop_hands_the_rules_over_at_once(registries: list[Registry]) -> None:
    (first, first_gauges), (second, second_gauges) = loop(registries[0]), loop(registries[1])
    await first.tick()
    assert await second.tick() == []
    await first.stop()  # releases the lease
    assert evaluator(first_gauges) == 0
    await second.tick()
    assert second.lease is not None and second.lease.held
    assert evaluator(second_gauges) == 1


async def test_the_other_takes_over_when_the_holder_dies(registries: list[Registry]) -> None:
    (first, _), (second, _) = loop(registries[0], lease_seconds=0.3), loop(registries[1])
    await first.tick()  # then it dies: no more renewals, no release
    assert await second.tick() == []
    time.sleep(0.35)
    assert await second.tick() == ["fraud-errors"]
    assert rollbacks(registries[1]) == 1


class Flaky:
    """A registry's leases that fail (RegistryUnavailable) while `down`."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.down = False

    def acquire_lease(self, name: str, *, holder: str, seconds: float) -> Lease:
        if self.down:
            raise RegistryUnavailable("the registry database at postgresql://db cannot be used")
        return self.registry.acquire_lease(name, holder=holder, seconds=seconds)

    def release_lease(self, name: str, *, holder: str) -> None:
        self.registry.release_lease(name, holder=holder)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_holder_evaluates_through_an_outage_only_while_its_lease_runs(
    registries: list[Registry], caplog: pytest.LogCaptureFixture
) -> None:
    flaky, clock = Flaky(registries[0]), Clock()
    first, gauges = loop(registries[0])
    first.lease = EvaluatorLease(flaky, name=rules_lease_name([RULE]), seconds=10, clock=clock)
    counted: list[Any] = []
    first.evaluate = lambda now=None: _count(counted)  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="modelyard.alerts")
    await first.tick()
    flaky.down = True
    for _ in range(3):  # renewals fail, but the lease still runs by this process's clock
        clock.now += 3
        await first.tick()
    assert len(counted) == 4 and evaluator(gauges) == 1
    clock.now += 2  # 11 s since the last renewal: stop evaluating, keep trying
    await first.tick()
    await first.tick()
    assert len(counted) == 4 and evaluator(gauges) == 0
    flaky.down = False  # back, and nobody else took it
    await first.tick()
    assert len(counted) == 5 and evaluator(gauges) == 1
    said = [record.getMessage() for record in caplog.records]
    assert sum("now evaluates the rules" in line for line in said) == 2
    assert sum("cannot renew the lease" in line for line in said) == 1  # once, not each time
    assert sum("stopped evaluating the rules: its lease ran out" in line for line in said) == 1
    assert sum("can be renewed again" in line for line in said) == 1


async def _count(counted: list[Any]) -> list[str]:
    counted.append(1)
    return []


async def test_losing_the_lease_starts_the_rules_afresh(registries: list[Registry]) -> None:
    (first, first_gauges), (second, _) = loop(registries[0]), loop(registries[1])
    await first.tick()  # fires: the rule is firing in this process
    assert first_gauges.registry.get_sample_value("alert_state", {"rule": RULE.name}) == 2
    assert first.lease is not None and second.lease is not None
    registries[0].release_lease(first.lease.name, holder=first.lease.holder)
    await second.tick()  # the second holds it now
    assert await first.tick() == []
    assert first_gauges.registry.get_sample_value("alert_state", {"rule": RULE.name}) == 0
    assert [state.state.name for state in first.states] == ["INACTIVE"]


def test_replicas_with_the_same_rules_share_a_lease() -> None:
    other = RULE.model_copy(update={"threshold": 0.2})
    assert rules_lease_name([RULE, other]) == rules_lease_name([other, RULE])
    assert rules_lease_name([RULE]) != rules_lease_name([other])
    assert rules_lease_name([RULE]).startswith("alerts:")


async def test_an_unreachable_database_stops_nothing(caplog: pytest.LogCaptureFixture) -> None:
    database = Database("postgresql+psycopg://modelyard@127.0.0.1:9/gone?connect_timeout=2")
    database.open()  # no connection yet: refused at the first renewal
    try:
        made, gauges = loop(Registry(database, actor="replica"))
        assert await made.tick() == [] and await made.tick() == []
        assert evaluator(gauges) == 0
    finally:
        database.close()
    said = [record.getMessage() for record in caplog.records]
    assert sum("cannot take the lease" in line for line in said) == 1


class Slow:
    """A registry's leases whose next take waits for `go` (a renewal in flight at shutdown)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.entered, self.go = threading.Event(), threading.Event()

    def acquire_lease(self, name: str, *, holder: str, seconds: float) -> Lease:
        self.entered.set()
        self.go.wait(10)
        return self.registry.acquire_lease(name, holder=holder, seconds=seconds)

    def release_lease(self, name: str, *, holder: str) -> None:
        self.registry.release_lease(name, holder=holder)


async def test_a_renewal_cancelled_at_shutdown_leaves_the_lease_free(
    registries: list[Registry],
) -> None:
    slow = Slow(registries[0])
    lease = EvaluatorLease(slow, name="alerts:slow", seconds=60)
    renewal = asyncio.get_running_loop().create_task(lease.renew())
    await asyncio.to_thread(slow.entered.wait, 10)
    renewal.cancel()  # stop() cancels the loop's task; its thread goes on
    release = asyncio.get_running_loop().create_task(lease.release())
    await asyncio.sleep(0.05)
    slow.go.set()
    await release
    taken = registries[1].acquire_lease("alerts:slow", holder="other:1", seconds=60)
    assert taken.holder == "other:1"


class SlowTraffic(Traffic):
    """A traffic window that takes `seconds` of `clock` to read (a slow evaluation)."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        super().__init__(ERRORS)
        self.clock, self.seconds = clock, seconds

    def summary(self, model: str, window: float) -> Window | None:
        self.clock.now += self.seconds
        return super().summary(model, window)


async def test_a_holder_whose_lease_ran_out_while_evaluating_does_not_act(
    registries: list[Registry],
) -> None:
    clock = Clock()
    first, gauges = loop(registries[0])
    first.lease = EvaluatorLease(registries[0], name="alerts:slow", seconds=10, clock=clock)
    first.traffic = SlowTraffic(clock, seconds=11)
    assert await first.tick() == []  # the rule would fire, but the lease may be another's now
    assert rollbacks(registries[0]) == 0
    assert gauges.registry.get_sample_value("alert_firings_total", {"rule": RULE.name}) is None
    first.traffic = SlowTraffic(clock, seconds=1)
    assert await first.tick() == ["fraud-errors"]  # renewed in time: it acts
    assert rollbacks(registries[0]) == 1
