"""Following an alias by notification: a pool told of a move swaps at once (polling is only the
fallback), three replicas on PostgreSQL converge within a second of a move, and a listener
whose connection PostgreSQL drops comes back while serving goes on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from sklearn.linear_model import LinearRegression
from sqlalchemy import text

from modelyard import Settings, Yard
from modelyard._yard_events import YardAliasEvents
from modelyard.registry import AliasListener, AliasMove, AliasPoller, Database
from modelyard.serving import MemoryAliasEvents, Metrics, ModelPool
from tests.asgi import serving

pytestmark = pytest.mark.anyio

X = np.arange(12, dtype=np.float32).reshape(4, 3)
BODY = orjson.dumps(
    {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
)
SLOW_POLL = 30.0  # longer than any test: only a notification can make these swaps


def log_versions(yard: Yard, count: int) -> None:
    """Versions 1..count of `m` (version k answers k times the sum), production at 1."""
    for k in range(1, count + 1):
        yard.log_model(LinearRegression().fit(X, k * X.sum(axis=1)), name="m",
                       input_example=X[:2], alias="production" if k == 1 else None)  # fmt: skip


async def answering(client: httpx.AsyncClient) -> int:
    response = await client.post("/v2/models/m/infer", content=BODY)
    assert response.status_code == 200, response.text
    return int(response.json()["model_version"])


async def converge(clients: list[httpx.AsyncClient], version: int, *, limit: float) -> float:
    """Seconds until every client answers from `version` (fails after `limit`)."""
    start = time.perf_counter()

    async def one(client: httpx.AsyncClient) -> float:
        while await answering(client) != version:
            if time.perf_counter() - start > limit:
                pytest.fail(f"a replica still answers from another version after {limit} s")
            await asyncio.sleep(0.005)
        return time.perf_counter() - start

    return max(await asyncio.gather(*(one(client) for client in clients)))


@asynccontextmanager
async def replicas(settings: Settings, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """`count` inference apps following m@production, each with its own Yard and home."""
    async with AsyncExitStack() as stack:
        clients = []
        for index in range(count):
            home = settings.home.parent / f"replica-{index}"
            yard = stack.enter_context(Yard(settings.model_copy(update={"home": home})))
            clients.append(await stack.enter_async_context(serving(yard, "m@production")))
        yield clients


def shared(tmp_path: Path, database_url: str | None = None, poll: float = SLOW_POLL) -> Settings:
    options: dict[str, Any] = {"database_url": database_url} if database_url else {}
    return Settings(home=tmp_path / "home", store_url=(tmp_path / "blobs").as_uri(),
                    serve_poll_seconds=poll, **options)  # fmt: skip


async def test_a_pool_told_of_a_move_swaps_at_once(tmp_path: Path) -> None:
    with Yard(shared(tmp_path)) as yard:
        log_versions(yard, 2)
        events = MemoryAliasEvents()
        pool = ModelPool(yard, yard.settings, metrics=Metrics(), events=events)
        await pool.start(["m@production"])
        try:
            assert pool.get("m").version.number == 1 and events.wake is not None
            yard.set_alias("m", "production", "m:2")
            events.announce(AliasMove("other", "production", 2))  # not followed: no check
            events.announce(AliasMove("m", "staging", 2))
            await asyncio.sleep(0.2)
            assert pool.get("m").version.number == 1
            events.announce(AliasMove("m", "production", 2))
            for _ in range(100):
                if pool.get("m").version.number == 2:
                    break
                await asyncio.sleep(0.01)
            assert pool.get("m").version.number == 2
        finally:
            await pool.stop()
        assert events.wake is None  # stopped with the pool


async def test_a_lost_notification_is_caught_by_the_poll(tmp_path: Path) -> None:
    with Yard(shared(tmp_path, poll=0.2)) as yard:
        log_versions(yard, 2)
        pool = ModelPool(yard, yard.settings, metrics=Metrics(), events=MemoryAliasEvents())
        await pool.start(["m@production"])
        try:
            yard.set_alias("m", "production", "m:2")  # nobody announces it
            await asyncio.sleep(0.6)
            assert pool.get("m").version.number == 2
        finally:
            await pool.stop()


def test_payloads_that_do_not_describe_a_move_are_dropped() -> None:
    move = AliasMove("m", "production", 3)
    assert AliasMove.parse(move.payload()) == move
    assert AliasMove.parse('{"model": "m", "alias": "production", "version": null}') == AliasMove(
        "m", "production", None
    )
    for bad in ("", "null", "[]", "{", '{"model": "m"}', '{"model": 1, "alias": "a", "version": 1}',
                '{"model": "m", "alias": "a", "version": "1; DROP"}',
                '{"model": "m", "alias": "a", "version": true}', b"\xff\xfe"):  # fmt: skip
        assert AliasMove.parse(bad) is None


def test_the_sqlite_poller_hears_each_move(tmp_path: Path) -> None:
    with Yard(shared(tmp_path)) as yard:
        log_versions(yard, 2)
        heard: list[AliasMove | None] = []
        poller = AliasPoller(yard.local_registry().database, interval=0.02)
        poller.start(heard.append)
        try:
            time.sleep(0.1)  # its first look: the baseline, not a move
            yard.set_alias("m", "production", "m:2")
            yard.set_alias("m", "staging", "m:1")
            yard.delete_alias("m", "staging")
            deadline = time.monotonic() + 2
            while len(heard) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            yard.delete_model("m")  # its moves go with it: the newest id goes back
            while len(heard) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            poller.stop()
    assert heard == [AliasMove("m", "production", 2), AliasMove("m", "staging", 1),
                     AliasMove("m", "staging", None), None]  # fmt: skip


def test_a_yard_picks_its_events(tmp_path: Path) -> None:
    with Yard(shared(tmp_path)) as yard:
        events = YardAliasEvents(yard)
        events.start(lambda move: None)
        assert isinstance(events.source, AliasPoller)
        events.stop()
        assert events.source is None
    given = httpx.Client(base_url="http://127.0.0.1:9")  # a client of the caller's: not streamed
    with Yard(shared(tmp_path), url="http://127.0.0.1:9", http_client=given) as remote:
        events = YardAliasEvents(remote)
        events.start(lambda move: None)
        assert events.source is None
        events.stop()
    given.close()


async def test_three_replicas_on_postgres_follow_within_a_second(
    tmp_path: Path, fresh_postgres: str
) -> None:
    settings = shared(tmp_path, fresh_postgres)
    with Yard(settings) as yard:
        log_versions(yard, 3)
        async with replicas(settings, 3) as clients:
            times = []
            for move in range(5):
                version = 2 + move % 2
                yard.set_alias("m", "production", f"m:{version}")
                times.append(await converge(clients, version, limit=5))
                await asyncio.sleep(1.0)  # the retired versions' memory is collected meanwhile
            print(f"\nLISTEN/NOTIFY, 3 replicas: median {sorted(times)[2] * 1000:.0f} ms, "
                  f"max {max(times) * 1000:.0f} ms")  # fmt: skip
            assert max(times) < 1.5  # the goal is 1 s; slack for a loaded two-core box


def terminate(database_url: str, pid: int) -> None:
    database = Database(database_url)
    database.open()
    try:
        with database.write() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        database.close()


async def test_the_listener_comes_back_when_postgres_drops_it(
    tmp_path: Path, fresh_postgres: str
) -> None:
    settings = shared(tmp_path, fresh_postgres, poll=0.3)
    with Yard(settings) as yard:
        log_versions(yard, 3)
        events = YardAliasEvents(yard)
        pool = ModelPool(yard, settings, metrics=Metrics(), events=events)
        await pool.start(["m@production"])
        try:
            listener = events.source
            assert isinstance(listener, AliasListener)
            await wait_for(lambda: listener.pid is not None)
            terminate(fresh_postgres, listener.pid or 0)
            yard.set_alias("m", "production", "m:2")  # while the listener is gone: the poll
            await wait_for(lambda: pool.get("m").version.number == 2)
            await wait_for(lambda: listener.connects == 2)  # back, after its backoff
            pool.settings = settings.model_copy(update={"serve_poll_seconds": SLOW_POLL})
            await asyncio.sleep(0.4)  # the watcher now waits on the slow poll
            yard.set_alias("m", "production", "m:3")
            await wait_for(lambda: pool.get("m").version.number == 3, limit=1.5)
        finally:
            await pool.stop()
        assert events.source is None


async def wait_for(condition: Any, *, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {limit} s")
        await asyncio.sleep(0.01)
