"""Registry benchmark: register, resolve, move an alias, search and list, on SQLite and
PostgreSQL, in-process and through `modelyard server`.

    python bench/registry.py [--versions 10000] [--repeat 200] [--out bench/results/registry.json]

PostgreSQL comes from MODELYARD_TEST_DATABASE_URL when set, else scripts/services.py starts one.
MLflow 3.x with SQLite, measured on these machines: 30 ms to register such a version, 20-50 ms to
search, 40 ms to set and read an alias. The goal is ten times faster than each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelyard import Settings, Yard  # noqa: E402
from modelyard.registry import Database, Principals  # noqa: E402
from tests.servers import running_server  # noqa: E402

# The MLflow figures; it gives none for resolving alone or for listing.
MLFLOW_MS: dict[str, float | None] = {
    "register": 30.0,
    "resolve alias": None,
    "set + read alias": 40.0,
    "search 10k by metric and tag": 20.0,
    "list 1,000 versions": None,
}
PARAMS = {f"param_{i}": i for i in range(10)}
METRICS = {f"metric_{i}": i / 10 for i in range(10)}
TAGS = {f"tag_{i}": f"value_{i % 3}" for i in range(5)}


Action = Callable[[int], object]


def median_ms(repeat: int, action: Callable[[int], object]) -> float:
    times = []
    for i in range(repeat):
        began = time.perf_counter()
        action(i)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def populate(yard: Yard, versions: int) -> None:
    """`versions` versions of `big`, with varied metrics and tags, plus 1,000 of `listed`."""
    registry = yard.registry
    for i in range(versions):
        tags = {**TAGS, "team": ["risk", "growth", "ads"][i % 3]}
        metrics = {**METRICS, "auc": (i * 7919 % 10_000) / 10_000}
        registry.create_version("big", params=PARAMS, metrics=metrics, tags=tags)
    for _ in range(1_000):
        registry.create_version("listed", params=PARAMS, metrics=METRICS, tags=TAGS)


def operations(yard: Yard, artifact: Path, repeat: int) -> dict[str, tuple[int, Action]]:
    """Each measured operation on `yard`, with how many times to repeat it."""
    name = f"reg-{uuid.uuid4().hex[:6]}"
    yard.log_model(artifact, name=name, params=PARAMS, metrics=METRICS, tags=TAGS)
    yard.set_alias(name, "production", f"{name}:1")
    search = "name = 'big' and metrics.auc >= 0.99 and tags.team = 'risk'"
    return {
        "register": (repeat, lambda i: yard.log_model(
            artifact, name=name, params=PARAMS, metrics=METRICS, tags=TAGS)),
        "resolve alias": (repeat, lambda i: yard.get_version(f"{name}@production")),
        "set + read alias": (repeat, lambda i: (
            yard.set_alias(name, "production", f"{name}:{i % 50 + 1}"),
            yard.get_version(f"{name}@production"),
        )),
        "search 10k by metric and tag": (max(20, repeat // 10), lambda i: yard.search_versions(
            search, order_by="metrics.auc desc", limit=100)),
        "list 1,000 versions": (max(10, repeat // 20), lambda i: yard.list_versions("listed")),
    }  # fmt: skip


def measure(yard: Yard, artifact: Path, repeat: int) -> dict[str, float]:
    return {op: median_ms(times, action)
            for op, (times, action) in operations(yard, artifact, repeat).items()}  # fmt: skip


def measure_side_by_side(
    yards: dict[str, Yard], artifact: Path, repeat: int
) -> dict[str, dict[str, float]]:
    """Median ms per operation for each yard, taking turns call by call (the order flipping
    each time), so a busy moment of a shared machine weighs on every yard alike."""
    ops = {label: operations(yard, artifact, repeat) for label, yard in yards.items()}
    labels = list(yards)
    results: dict[str, dict[str, float]] = {label: {} for label in labels}
    for op in ops[labels[0]]:
        times: dict[str, list[float]] = {label: [] for label in labels}
        for i in range(ops[labels[0]][op][0]):
            for label in labels if i % 2 else reversed(labels):
                began = time.perf_counter()
                ops[label][op][1](i)
                times[label].append(time.perf_counter() - began)
        for label in labels:
            results[label][op] = statistics.median(times[label]) * 1000
    return results


@contextmanager
def postgres() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database."""
    server = os.environ.get("MODELYARD_TEST_DATABASE_URL")
    services = None
    if not server:
        services = Path(tempfile.mkdtemp(prefix="modelyard-bench-services-"))
        out = subprocess.run(
            [sys.executable, str(ROOT / "scripts/services.py"), "start", "--dir", str(services)],
            capture_output=True,
            text=True,
            check=True,
        )
        server = next(
            line.split("=", 1)[1] for line in out.stdout.splitlines() if "DATABASE_URL" in line
        )
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = Database(server)
    admin.open()
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{server.rpartition('/')[0]}/{name}"
    database = Database(url)
    database.open()
    database.migrate()
    database.close()
    try:
        yield url
    finally:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.close()
        if services is not None:
            subprocess.run(
                [sys.executable, str(ROOT / "scripts/services.py"), "stop", "--dir", str(services)],
                check=False,
            )


def run_backend(label: str, database_url: str, args: argparse.Namespace) -> list[dict[str, object]]:
    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-"))
    settings = Settings(home=work / "home", database_url=database_url, user="bench")
    artifact = work / "artifact"
    artifact.mkdir()
    (artifact / "model.bin").write_bytes(b"tiny model" * 10)
    local = Yard(settings)
    began = time.perf_counter()
    populate(local, args.versions)
    took = time.perf_counter() - began
    print(f"{label}: populated {args.versions + 1000} versions in {took:.0f}s", file=sys.stderr)
    if database_url.startswith("postgresql"):
        with (
            local.local_registry()
            .database.engine.connect()
            .execution_options(isolation_level="AUTOCOMMIT") as connection
        ):  # steady state: autovacuum would have analyzed the new rows by now
            connection.execute(text("ANALYZE"))
    rows = _rows(label, "in-process", measure(local, artifact, args.repeat))
    local.close()
    secret = _admin_token(database_url, "bench")
    (work / "auth").mkdir()
    auth_database = database_url
    if database_url.startswith("sqlite:///"):  # a copy: two processes writing one SQLite
        copy = work / "auth" / "registry.db"  # file would slow each other down unevenly
        shutil.copy(database_url.removeprefix("sqlite:///"), copy)
        auth_database = f"sqlite:///{copy}"
    # Two servers over the same filled registry (or twin copies): one without auth, one
    # requiring a token, measured call by call in turns, so the ratio compares like moments.
    env = {"MODELYARD_AUTH": "true"}
    with (
        running_server(work, database_url) as open_url,
        running_server(work / "auth", auth_database, env=env) as auth_url,
    ):
        plain = Yard(settings, url=open_url)
        token = Yard(settings.model_copy(update={"token": SecretStr(secret)}), url=auth_url)
        best = measure_side_by_side({"open": plain, "auth": token}, artifact, args.repeat)
        plain.close()
        token.close()
    rows += _rows(label, "through server", best["open"])
    auth_rows = _rows(label, "server + auth", best["auth"])
    for row in auth_rows:
        row["auth_ratio"] = row["ms"] / best["open"][str(row["operation"])]  # type: ignore[operator]
    return rows + auth_rows


def _admin_token(database_url: str, user: str) -> str:
    """A token for `user` with the admin role, made directly in the registry's database."""
    database = Database(database_url)
    database.open()
    try:
        database.migrate()
        principals = Principals(database, actor=user)
        principals.grant(user, "admin")
        return principals.create_token(user=user, description="bench").secret
    finally:
        database.close()


def _rows(database: str, mode: str, results: dict[str, float]) -> list[dict[str, object]]:
    return [
        {
            "database": database,
            "mode": mode,
            "operation": op,
            "ms": ms,
            "mlflow_ms": MLFLOW_MS[op],
            "speedup": _speedup(MLFLOW_MS[op], ms),
        }
        for op, ms in results.items()
    ]


def _speedup(mlflow_ms: float | None, ms: float) -> float | None:
    return mlflow_ms / ms if mlflow_ms else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/registry.json")
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="Which databases to measure, comma-separated.")  # fmt: skip
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    if "sqlite" in args.databases.split(","):
        sqlite_home = Path(tempfile.mkdtemp(prefix="modelyard-bench-sqlite-"))
        rows += run_backend("sqlite", f"sqlite:///{sqlite_home / 'registry.db'}", args)
    if "postgresql" in args.databases.split(","):
        with postgres() as url:
            rows += run_backend("postgresql", url, args)
    print(
        f"{'database':<11} {'mode':<15} {'operation':<30} {'ms':>7} {'mlflow ms':>9} {'speedup':>8}"
        f" {'auth/open':>9}"
    )
    for row in rows:
        mlflow = f"{row['mlflow_ms']:>9.0f}" if row["mlflow_ms"] else f"{'-':>9}"
        speedup = f"{row['speedup']:>7.1f}x" if row["speedup"] else f"{'-':>8}"
        print(
            f"{row['database']:<11} {row['mode']:<15} {row['operation']:<30} {row['ms']:>7.2f} "
            f"{mlflow} {speedup}" + (f" {row['auth_ratio']:>9.3f}" if "auth_ratio" in row else "")
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"python": sys.version.split()[0], "rows": rows}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
