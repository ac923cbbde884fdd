"""The scale-out topology of issue 21, with real processes on loopback: two registry servers and
three serving replicas behind nginx, on a PostgreSQL of the test's own and the suite's S3, scraped
by Prometheus (tests/scale/topology.py starts it all once for the module). Each scenario runs
under a steady load through nginx and counts every answer: none may fail.

The tests run in this order and share the topology: the promotion moves production from version
1 to 2; the replica killed in the next test is back for the others; the drift scenario, last,
rolls production back to 1 (tests/scale/drift_scenario.py).
"""

from __future__ import annotations

import time
from collections import Counter
from functools import partial

import httpx
import pytest

from tests.scale.conftest import REFERENCE
from tests.scale.load import Load, going_back, wait_for
from tests.scale.topology import MODEL, Topology

pytestmark = pytest.mark.topology


def infer_url(scale: Topology) -> str:
    return f"{scale.url}/v2/models/{MODEL}/infer"


def replica_addresses(scale: Topology) -> set[str]:
    return {scale.replica_address(i) for i in range(len(scale.replicas))}


def versions(load: Load) -> Counter[tuple[str, str]]:
    """How many answers each (replica, version) gave: what a failed assertion shows."""
    return Counter((a.upstream, a.version) for a in load.answers)


def test_every_replica_answers_through_nginx(scale: Topology) -> None:
    print(f"\ntopology started: {scale.timings} s")
    with Load(infer_url(scale), REFERENCE) as load:
        wait_for(lambda: {a.upstream for a in load.answers} >= replica_addresses(scale),
                 timeout=20, what="answers from every replica")  # fmt: skip
    assert not load.failures(), load.failures()[:3]
    assert {a.version for a in load.answers} == {"1"}


def test_a_promotion_reaches_every_replica_with_no_failed_request(scale: Topology) -> None:
    from modelyard import Settings, Yard

    with Yard(Settings(home=scale.root / "client"), url=scale.url) as yard:
        with Load(infer_url(scale), REFERENCE) as load:
            time.sleep(1)
            moved = time.monotonic()
            yard.set_alias(MODEL, "production", f"{MODEL}:2", reason="topology test")

            def converged() -> bool:
                answered = {a.upstream for a in load.since(moved) if a.version == "2"}
                return answered >= replica_addresses(scale)

            wait_for(converged, timeout=20, what="every replica answering version 2")
            time.sleep(0.5)
    first_new: dict[str, float] = {}
    for answer in sorted(load.answers, key=lambda a: a.received):
        if answer.version == "2":
            first_new.setdefault(answer.upstream, answer.received - moved)
    convergence = max(first_new.values())
    print(f"\nconvergence: every replica answered version 2 within {convergence:.3f} s "
          f"of the move (per replica: {sorted(round(s, 3) for s in first_new.values())}); "
          f"{len(load.answers)} requests, 0 failed")  # fmt: skip
    assert not load.failures(), load.failures()[:3]
    back = going_back(load.answers, "1", "2")
    assert not back, back[:3]
    assert {a.version for a in load.answers} == {"1", "2"}


def test_a_killed_replica_is_routed_around_and_rejoins(scale: Topology) -> None:
    victim = scale.replicas[0]
    address = scale.replica_address(0)
    with Load(infer_url(scale), REFERENCE) as load:
        time.sleep(0.5)
        victim.kill()
        killed = time.monotonic()
        time.sleep(0.5)
        restarted = time.monotonic()
        victim.start()
        victim.wait_ready(90)
        ready = time.monotonic()
        wait_for(lambda: any(a.upstream == address for a in load.since(ready)), timeout=20,
                 what="the restarted replica answering through nginx")  # fmt: skip
        rejoined = time.monotonic()
    down = [a for a in load.answers if killed < a.sent < restarted]
    print(f"\nkill -9: {len(down)} requests while the replica was down, 0 failed; restarted "
          f"replica ready in {ready - restarted:.1f} s, answering through nginx "
          f"{rejoined - ready:.2f} s after")  # fmt: skip
    assert not load.failures(), load.failures()[:3]
    assert down and not any(a.upstream == address for a in down)
    assert {a.version for a in load.answers} == {"2"}, versions(load)


def test_a_postgres_restart_leaves_replicas_serving_and_servers_recover(scale: Topology) -> None:
    with Load(infer_url(scale), REFERENCE) as load:
        time.sleep(0.5)
        began = time.monotonic()
        scale.restart_postgres()
        restarted = time.monotonic()

        def reads(server: str) -> bool:
            try:
                return httpx.get(f"{server}/api/v1/models/{MODEL}", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        for server in scale.servers:
            base = server.ready.removesuffix("/health")
            wait_for(partial(reads, base), timeout=30, what=f"{base} reading the database")
        recovered = time.monotonic()
        time.sleep(0.5)
    print(
        f"\nPostgreSQL restart took {restarted - began:.2f} s; both registry servers read "
        f"again {recovered - restarted:.2f} s after; {len(load.since(began))} requests meanwhile"
    )
    assert not load.failures(), load.failures()[:3]
    assert len(load.since(began)) > 0
    assert {a.version for a in load.answers} == {"2"}, versions(load)
    for process in [*scale.replicas, *scale.servers]:  # none restarted, none died
        assert process.popen is not None and process.popen.poll() is None, process.tail()


def test_prometheus_has_the_request_rate_of_every_replica(scale: Topology) -> None:
    query = "sum by (instance) (rate(modelyard_requests_total[5s]))"
    with Load(infer_url(scale), REFERENCE):

        def rates() -> dict[str, float]:
            found = {r["metric"]["instance"]: float(r["value"][1]) for r in scale.query(query)}
            return (
                found if {k for k, v in found.items() if v > 0} >= replica_addresses(scale) else {}
            )

        found = wait_for(rates, timeout=30, what="a request rate for every replica")
    print(f"\nrequest rates by replica: { {k: round(v, 1) for k, v in found.items()} }")


def test_prometheus_has_the_request_rate_of_every_registry_server(scale: Topology) -> None:
    # its own scrapes are counted too (route /metrics): leave them out
    query = (
        'sum by (instance, route) (rate(modelyard_server_requests_total{route!="/metrics"}[5s]))'
    )
    servers = {scale.server_address(i) for i in range(len(scale.servers))}
    with httpx.Client(timeout=5) as client:

        def rates() -> dict[tuple[str, str], float]:
            for address in servers:  # a model lookup on each server, named in the path
                client.get(f"http://{address}/api/v1/models/{MODEL}")
            found = {(r["metric"]["instance"], r["metric"]["route"]): float(r["value"][1])
                     for r in scale.query(query)}  # fmt: skip
            wanted = {(address, "/api/v1/models/{name}") for address in servers}
            return found if {k for k, v in found.items() if v > 0} >= wanted else {}

        found = wait_for(rates, timeout=30, what="a request rate for every registry server")
    assert all(route.startswith("/") or route == "<unmatched>" for _, route in found)
    assert f"/api/v1/models/{MODEL}" not in {route for _, route in found}  # templates only
    print(f"\nregistry request rates: { {k: round(v, 1) for k, v in found.items()} }")


def test_drift_fires_one_alert_and_one_rollback(scale: Topology) -> None:
    """Needs the shared prediction log in PostgreSQL and the one alert evaluator (issue 21)."""
    from tests.scale.drift_scenario import drift_fires_one_alert_and_one_rollback

    drift_fires_one_alert_and_one_rollback(scale)
