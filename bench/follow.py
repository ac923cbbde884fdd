"""How soon replicas that follow an alias answer from the version it moved to: polling alone
(`serve_poll_seconds`, 2 s by default) against PostgreSQL LISTEN/NOTIFY and a registry server's
event stream (Server-Sent Events), with polling as the fallback in both.

Three in-process inference apps follow `m@production` on a fresh PostgreSQL database; each move
goes from the registry to every replica, and the time is taken until each answers from the new
version (requests every 5 ms); the figure per move is the slowest replica's. Between moves the
replicas rest a second (the retired version's memory is collected then).

    python bench/follow.py [--database-url postgresql+psycopg://…] [--moves 20] [--replicas 3]
                           [--out bench/results/follow.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sklearn.linear_model import LinearRegression
from sqlalchemy import text

from modelyard import Settings, Yard
from modelyard.api import create_inference_app
from modelyard.registry import Database

ROOT = Path(__file__).resolve().parent.parent
X = np.arange(12, dtype=np.float32).reshape(4, 3)
BODY = json.dumps(
    {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
).encode()
MODES = ("polling", "listen", "sse")


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new, migrated database next to `url`'s, dropped afterwards."""
    name = f"follow_{uuid.uuid4().hex[:10]}"
    admin = Database(url)
    admin.open()

    def run(statement: str) -> None:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(statement))

    run(f'CREATE DATABASE "{name}"')
    fresh = f"{url.rpartition('/')[0]}/{name}"
    database = Database(fresh)
    database.open()
    database.migrate()
    database.close()
    try:
        yield fresh
    finally:
        run(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def registry_server(home: Path, database_url: str, store_url: str) -> Iterator[str]:
    """`modelyard server` on a free loopback port; yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MODELYARD_HOME": str(home), "MODELYARD_DATABASE_URL": database_url,
           "MODELYARD_STORE_URL": store_url}  # fmt: skip
    command = [sys.executable, "-m", "modelyard", "server", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("modelyard server did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@asynccontextmanager
async def replica(yard: Yard) -> AsyncIterator[httpx.AsyncClient]:
    """An inference app following m@production, its models loaded."""
    app = create_inference_app(yard.settings, ["m@production"], yard=yard)
    assert app.on_startup is not None and app.on_shutdown is not None
    await app.on_startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            yield client
    finally:
        await app.on_shutdown()


async def answering(client: httpx.AsyncClient) -> int:
    response = await client.post("/v2/models/m/infer", content=BODY)
    response.raise_for_status()
    return int(response.json()["model_version"])


async def converge(clients: list[httpx.AsyncClient], version: int) -> float:
    start = time.perf_counter()

    async def one(client: httpx.AsyncClient) -> float:
        while await answering(client) != version:
            if time.perf_counter() - start > 30:
                raise RuntimeError("a replica did not follow within 30 s")
            await asyncio.sleep(0.005)
        return time.perf_counter() - start

    return max(await asyncio.gather(*(one(client) for client in clients)))


async def measure(mode: str, folder: Path, database_url: str, *, replicas: int,
                  moves: int) -> dict[str, Any]:  # fmt: skip
    store = (folder / "blobs").as_uri()
    base = Settings(home=folder / "publisher", store_url=store, database_url=database_url)
    with Yard(base) as publisher:
        for k in (1, 2, 3):  # version k answers k times the sum
            model = LinearRegression().fit(X, k * X.sum(axis=1))
            alias = "production" if k == 1 else None
            publisher.log_model(model, name="m", input_example=X[:2], alias=alias)
        with server_for(mode, folder, database_url, store) as url:
            async with AsyncExitStack() as stack:
                clients = []
                for index in range(replicas):
                    settings = base.model_copy(update={
                        "home": folder / f"replica-{index}",
                        "serve_alias_events": mode != "polling"})  # fmt: skip
                    yard = stack.enter_context(Yard(settings, url=url))
                    clients.append(await stack.enter_async_context(replica(yard)))
                times = []
                for move in range(moves):
                    version = 2 + move % 2
                    await asyncio.to_thread(publisher.set_alias, "m", "production", f"m:{version}")
                    times.append(await converge(clients, version))
                    await asyncio.sleep(1.0)
    return {
        "mode": mode,
        "replicas": replicas,
        "moves": moves,
        "median_ms": round(statistics.median(times) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "times_ms": [round(t * 1000, 1) for t in times],
    }


@contextmanager
def server_for(mode: str, folder: Path, database_url: str, store_url: str) -> Iterator[str | None]:
    """The registry server for `sse` (replicas then talk to it); None otherwise (embedded)."""
    if mode != "sse":
        yield None
        return
    with registry_server(folder / "server", database_url, store_url) as url:
        yield url


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'mode':<10} {'replicas':>8} {'moves':>6} {'median ms':>10} {'max ms':>8}"]
    for row in rows:
        lines.append(f"{row['mode']:<10} {row['replicas']:>8} {row['moves']:>6} "
                     f"{row['median_ms']:>10.0f} {row['max_ms']:>8.0f}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("MODELYARD_TEST_DATABASE_URL"))
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/follow.json")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("a PostgreSQL URL is needed: --database-url or MODELYARD_TEST_DATABASE_URL")
    began = time.perf_counter()
    rows = []
    for mode in args.modes:
        with fresh_database(args.database_url) as url, tempfile.TemporaryDirectory() as folder:
            rows.append(asyncio.run(measure(mode, Path(folder), url, replicas=args.replicas,
                                            moves=args.moves)))  # fmt: skip
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    environment = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "serve_poll_seconds": Settings().serve_poll_seconds,
        "seconds": round(time.perf_counter() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": environment, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
