"""Registry benchmark at scale, beside MLflow 3: register, resolve, move an alias and search by a
metric and a tag, at 10,000 and 100,000 versions, on SQLite and PostgreSQL.

    python bench/registry.py [--versions 100000] [--baseline-versions 10000] [--metrics N]
                             [--repeat 200] [--databases postgresql,sqlite] [--no-peer]
                             [--server] [--out bench/results/registry.json]

One registry per database grows to `--baseline-versions` versions of `big`, is measured, then
grows to `--versions` and is measured again; MLflow 3 (its own virtualenv, run as a subprocess
by `registry_mlflow.py`) gets the same versions in a database of its own on the same server and
is measured the same way. PostgreSQL comes from MODELYARD_TEST_DATABASE_URL when set, else
scripts/services.py starts one; each registry is a database of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
from typing import Any

from pydantic import SecretStr
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import venvs  # noqa: E402
from registry_mlflow import ALIAS, MODEL, PAGE, TEAM, THRESHOLD, median_ms, version_contents  # noqa: E402
from registry_populate import populate  # noqa: E402

from modelyard import Settings, Yard  # noqa: E402
from modelyard.registry import Database, Principals, Registry  # noqa: E402
from tests.servers import running_server  # noqa: E402

"""Shared with `bench/ui.py`; this benchmark also needs psycopg there, for PostgreSQL."""
SEARCH = f"name = '{MODEL}' and metrics.auc >= {THRESHOLD} and tags.team = '{TEAM}'"
GOAL_RATIO = 2.0
"""Each operation at `--versions` within this multiple of its time at `--baseline-versions`."""
OPERATIONS = ("register", "resolve alias", "alias move", "search")
MLFLOW_CALLS = {
    "register": "create_run + log_batch + create_model_version",
    "resolve alias": "get_model_version_by_alias",
    "alias move": "set_registered_model_alias",
    "search": "search_runs (metric) + search_model_versions (name, tag, run_id IN)",
}

Action = Callable[[int], object]


def operations(registry: Any, *, upto: int, metrics: int) -> dict[str, Action]:
    """Each measured call on `registry` (embedded, or the HTTP client of a server)."""
    registry.set_alias(MODEL, ALIAS, f"{MODEL}:1")

    def register(i: int) -> object:
        contents = version_contents(upto + i, metrics)
        return registry.create_version(
            MODEL, params=contents["params"], metrics=contents["metrics"], tags=contents["tags"]
        )

    return {
        "register": register,
        "resolve alias": lambda i: registry.get_version(f"{MODEL}@{ALIAS}"),
        "alias move": lambda i: registry.set_alias(MODEL, ALIAS, f"{MODEL}:{1 + i % 50}"),
        "search": lambda i: registry.search_versions(
            SEARCH, order_by="metrics.auc desc", limit=PAGE),
    }  # fmt: skip


def measure(registry: Any, *, upto: int, metrics: int, repeat: int) -> dict[str, float]:
    """Median ms of each operation, warm (a few untimed calls first)."""
    ops = operations(registry, upto=upto, metrics=metrics)
    return {op: median_ms(repeat, action) for op, action in ops.items()}


def measure_side_by_side(
    registries: dict[str, Any], *, upto: int, metrics: int, repeat: int
) -> dict[str, dict[str, float]]:
    """Median ms per operation for each registry, taking turns call by call (the order flipping
    each time), so a busy moment of a shared machine weighs on every one alike."""
    ops = {label: operations(r, upto=upto, metrics=metrics) for label, r in registries.items()}
    labels = list(registries)
    results: dict[str, dict[str, float]] = {label: {} for label in labels}
    for op in OPERATIONS:
        times: dict[str, list[float]] = {label: [] for label in labels}
        for i in range(repeat):
            for label in labels if i % 2 else reversed(labels):
                began = time.perf_counter()
                ops[label][op](i)
                times[label].append(time.perf_counter() - began)
        for label in labels:
            results[label][op] = statistics.median(times[label]) * 1000
    return results


@contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server's URL: MODELYARD_TEST_DATABASE_URL, else one started for the run."""
    server = os.environ.get("MODELYARD_TEST_DATABASE_URL")
    if server:
        yield server
        return
    services = Path(tempfile.mkdtemp(prefix="modelyard-bench-services-"))
    script = [sys.executable, str(ROOT / "scripts/services.py")]
    out = subprocess.run([*script, "start", "--dir", str(services)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    try:
        yield next(
            line.split("=", 1)[1] for line in out.stdout.splitlines() if "DATABASE_URL" in line
        )
    finally:
        subprocess.run([*script, "stop", "--dir", str(services)], check=False)


@contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """A fresh, empty database on `server`, dropped afterwards; yields its URL."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = Database(server)
    admin.open()
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server.rpartition('/')[0]}/{name}"
    finally:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.close()


def analyze(database: Database) -> None:
    """Refresh the planner's statistics, as autovacuum (PostgreSQL) or the registry's own
    ANALYZE every 500 writes (SQLite; its statements) would have by now after a bulk fill."""
    if database.engine.dialect.name == "sqlite":
        with database.write() as connection:
            connection.exec_driver_sql("PRAGMA analysis_limit=1000")
            connection.exec_driver_sql("ANALYZE")
        return
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE")


def mlflow_python() -> Path | str:
    """The MLflow virtualenv's python, or why it cannot be had."""
    try:
        return venvs.mlflow_python()
    except venvs.VenvUnavailable as error:
        return str(error)


def run_mlflow(python: Path, db_uri: str, work: Path, args: argparse.Namespace, upto: int) -> Any:
    """`registry_mlflow.py` on `db_uri`: fill to `upto` versions and measure; its JSON."""
    argv = [str(python), str(ROOT / "bench" / "registry_mlflow.py"), db_uri, "--upto", str(upto),
            "--metrics-per-version", str(args.metrics_per_version), "--repeat", str(args.repeat),
            "--other-versions", str(args.other_versions),
            "--artifacts", str(work / "mlartifacts")]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": db_uri, "GIT_PYTHON_REFRESH": "quiet"}
    out = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"registry_mlflow.py failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_backend(
    label: str, ours_url: str, mlflow_url: str | None, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every size on one database: rows, and how the registries were filled."""
    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-"))
    database = Database(ours_url)
    database.open()
    database.migrate()
    registry = Registry(database, actor="bench")
    rows: list[dict[str, Any]] = []
    filled: dict[str, Any] = {}
    for upto in args.sizes:
        seconds = populate(database, upto=upto, others=args.other_versions,
                           metrics=args.metrics_per_version)  # fmt: skip
        analyze(database)
        print(f"{label}: {upto} versions ({seconds:.0f}s to fill)", file=sys.stderr)
        ours = measure(registry, upto=upto, metrics=args.metrics_per_version, repeat=args.repeat)
        peer: Any = None
        if mlflow_url is not None and isinstance(args.mlflow, Path):
            peer = run_mlflow(args.mlflow, mlflow_url, work, args, upto)
            print(f"{label}: MLflow at {upto} versions ({peer['populate']})", file=sys.stderr)
        page = registry.search_versions(SEARCH, order_by="metrics.auc desc", limit=PAGE)
        filled[str(upto)] = {"modelyard_seconds": round(seconds, 1),
                             "modelyard_search_page": len(page.versions),
                             "mlflow": peer and {**peer["populate"],
                                                 "parts_ms": peer["parts_ms"],
                                                 "search_page": peer["search_page"]}}  # fmt: skip
        rows += _rows(label, upto, "in-process", ours, peer and peer["ms"])
        if args.server:  # ours closed meanwhile: SQLite's WAL checkpointed, then copied whole
            database.close()
            rows += _server_rows(label, ours_url, work, upto, args)
            database.open()
    database.close()
    shutil.rmtree(work, ignore_errors=True)
    return rows, filled


def _server_rows(
    label: str, database_url: str, work: Path, upto: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """The same operations through `modelyard server`, with and without auth (issue 14): two
    servers over the same registry (SQLite: over twin copies), measured call by call in turns."""
    settings = Settings(home=work / "home", database_url=database_url, user="bench")
    secret = _admin_token(database_url, "bench")
    auth = work / f"auth-{upto}"
    auth.mkdir()
    auth_database = database_url
    if database_url.startswith("sqlite:///"):  # two processes writing one SQLite file would
        copy = auth / "registry.db"  # slow each other down unevenly
        shutil.copy(database_url.removeprefix("sqlite:///"), copy)
        auth_database = f"sqlite:///{copy}"
    env = {"MODELYARD_AUTH": "true"}
    with (
        running_server(work, database_url) as open_url,
        running_server(auth, auth_database, env=env) as auth_url,
    ):
        plain = Yard(settings, url=open_url)
        token = Yard(settings.model_copy(update={"token": SecretStr(secret)}), url=auth_url)
        best = measure_side_by_side(
            {"open": plain.registry, "auth": token.registry},
            upto=upto, metrics=args.metrics_per_version, repeat=args.repeat,
        )  # fmt: skip
        plain.close()
        token.close()
    rows = _rows(label, upto, "through server", best["open"], None)
    auth_rows = _rows(label, upto, "server + auth", best["auth"], None)
    for row in auth_rows:
        row["auth_ratio"] = row["ms"] / best["open"][row["operation"]]
    return rows + auth_rows


def _admin_token(database_url: str, user: str) -> str:
    """A token for `user` with the admin role, made directly in the registry's database."""
    database = Database(database_url)
    database.open()
    try:
        principals = Principals(database, actor=user)
        principals.grant(user, "admin")
        return principals.create_token(user=user, description="bench").secret
    finally:
        database.close()


def _rows(
    database: str, versions: int, mode: str, ours: dict[str, float], mlflow: dict[str, float] | None
) -> list[dict[str, Any]]:
    return [
        {"database": database, "versions": versions, "mode": mode, "operation": op, "ms": ms,
         "mlflow_ms": mlflow[op] if mlflow else None,
         "speedup": mlflow[op] / ms if mlflow else None,
         "mlflow_call": MLFLOW_CALLS[op] if mlflow else None}
        for op, ms in ours.items()
    ]  # fmt: skip


def add_ratios(rows: list[dict[str, Any]], baseline: int) -> None:
    """Each row's time over the same operation's at the baseline size (ours and MLflow's)."""
    base = {
        (r["database"], r["mode"], r["operation"]): r for r in rows if r["versions"] == baseline
    }
    for row in rows:
        first = base.get((row["database"], row["mode"], row["operation"]))
        row["ratio"] = row["ms"] / first["ms"] if first else None
        row["mlflow_ratio"] = (
            row["mlflow_ms"] / first["mlflow_ms"] if first and first["mlflow_ms"] else None
        )
        row["met"] = row["ratio"] <= GOAL_RATIO if row["ratio"] is not None else None


def print_table(rows: list[dict[str, Any]], baseline: int) -> None:
    def number(value: float | None, form: str, width: int) -> str:
        return f"{value:>{width}{form}}" if value is not None else f"{'-':>{width}}"

    print(
        f"{'database':<11} {'versions':>8} {'mode':<15} {'operation':<14} {'modelyard ms':>12}"
        f" {'mlflow ms':>9} {'speedup':>8} {f'x {baseline}':>8} {'mlflow x':>8}"
    )
    for row in rows:
        speedup = f"{row['speedup']:>7.1f}x" if row["speedup"] else f"{'-':>8}"
        print(
            f"{row['database']:<11} {row['versions']:>8} {row['mode']:<15} {row['operation']:<14}"
            f" {row['ms']:>12.2f} {number(row['mlflow_ms'], '.2f', 9)} {speedup}"
            f" {number(row['ratio'], '.2f', 8)} {number(row['mlflow_ratio'], '.2f', 8)}"
            + (f"  auth/open {row['auth_ratio']:.3f}" if "auth_ratio" in row else "")
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument(
        "--baseline-versions",
        type=int,
        default=10_000,
        help="The smaller size, measured first; ratios are against it.",
    )
    parser.add_argument(
        "--other-versions", type=int, default=1_000, help="Versions of a second model, `listed`."
    )
    parser.add_argument(
        "--metrics",
        type=int,
        default=None,
        help="Metric values over all versions (default: 10 per version).",
    )
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument(
        "--databases",
        default="postgresql,sqlite",
        help="Which databases to measure, comma-separated.",
    )
    parser.add_argument("--no-peer", action="store_true", help="Skip MLflow.")
    parser.add_argument(
        "--server",
        action="store_true",
        help="Also measure through `modelyard server`, with and without auth.",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/registry.json")
    args = parser.parse_args()
    args.baseline_versions = min(args.baseline_versions, args.versions)
    args.sizes = sorted({args.baseline_versions, args.versions})
    args.metrics_per_version = max(1, (args.metrics or 10 * args.versions) // args.versions)
    return args


def main() -> None:
    args = parse_args()
    args.mlflow = "skipped (--no-peer)" if args.no_peer else mlflow_python()
    chosen = args.databases.split(",")
    rows: list[dict[str, Any]] = []
    filled: dict[str, Any] = {}
    peer = isinstance(args.mlflow, Path)
    if "postgresql" in chosen:
        with postgres_server() as server, postgres_database(server) as ours:
            with postgres_database(server) if peer else _nothing() as mlflow_url:
                rows_db, filled["postgresql"] = run_backend("postgresql", ours, mlflow_url, args)
                rows += rows_db
    if "sqlite" in chosen:
        folder = Path(tempfile.mkdtemp(prefix="modelyard-bench-sqlite-"))
        mlflow_url = f"sqlite:///{folder / 'mlflow.db'}" if peer else None
        rows_db, filled["sqlite"] = run_backend(
            "sqlite", f"sqlite:///{folder / 'registry.db'}", mlflow_url, args
        )
        rows += rows_db
        shutil.rmtree(folder, ignore_errors=True)
    add_ratios(rows, args.baseline_versions)
    print_table(rows, args.baseline_versions)
    for database in dict.fromkeys(row["database"] for row in rows):
        verdicts = [f"{row['operation']} {row['ratio']:.2f}x" for row in rows
                    if row["database"] == database and row["versions"] == args.versions
                    and row["mode"] == "in-process" and row["ratio"] is not None]  # fmt: skip
        print(f"{database}: {args.versions} / {args.baseline_versions} versions (goal <= "
              f"{GOAL_RATIO}x): {', '.join(verdicts)}")  # fmt: skip
    environment = {
        "python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count(),
        "mlflow": _mlflow_version(args.mlflow), "versions": args.versions,
        "baseline_versions": args.baseline_versions, "other_versions": args.other_versions,
        "metrics_per_version": args.metrics_per_version,
        "metric_values": args.metrics_per_version * args.versions, "repeat": args.repeat,
        "search": {"filter": SEARCH, "order_by": "metrics.auc desc", "limit": PAGE},
        "goal": f"each operation at {args.versions} versions <= {GOAL_RATIO}x its time at "
                f"{args.baseline_versions}", "filled": filled,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": environment, "rows": rows}, indent=2))
    print(f"\nwrote {args.out}")


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _mlflow_version(mlflow: Path | str) -> str:
    if isinstance(mlflow, str):
        return mlflow
    out = subprocess.run([str(mlflow), "-c", "import mlflow; print(mlflow.__version__)"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    return out.stdout.strip() or f"unknown ({out.stderr.strip()[-200:]})"


if __name__ == "__main__":
    main()
