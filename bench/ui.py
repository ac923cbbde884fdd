"""Web UI benchmark: our pages against MLflow's UI in headless Chromium, same registry contents.

    python bench/ui.py [--models 1000] [--versions 10000] [--repeat 7] [--peer mlflow|none]
                       [--pages models,model,version] [--quick] [--out bench/results/ui.json]

Three pages: the models page (`--models` models of one version each, plus `big`), the model page
of `big` (`--versions` versions, each with 3 metrics, 2 tags and the previous version as parent)
and the version page of `big:<versions/2>`; MLflow's are `/#/models`, `/#/models/big` and
`/#/models/big/versions/<n>` over the same contents (`ui_mlflow.py`). Each filled registry is
kept under `~/.cache/modelyard-bench/ui-*`, keyed by the sizes, so a rerun starts at once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import venvs  # noqa: E402
from peers import CACHE  # noqa: E402
from ui_browser import Target, measure_pages  # noqa: E402
from ui_mlflow import contents  # noqa: E402

from tests.servers import free_port, running_server  # noqa: E402

CONTENTS = 1
"""Bump when `contents()` changes, so cached registries are filled afresh."""
GOAL = "< 1000 ms and >= 10x"
PAGES = ("models", "model", "version")
"""The pages `--pages` picks from, in the order `targets()` gives them."""
MLFLOW_NOTE = (
    "MLflow: same contents through its SQLAlchemy tables; its versions carry no metrics, so each "
    "links a run (run_id) holding the 3 metrics and the param, shown by name on the version page "
    "(one more XHR), and the parent is a version tag (MLflow has no lineage); MLflow pages 25 "
    "rows, ready = its first table row (version page: the source run's link with its name)"
)
ROW_KEYS = ("case", "ours", "baseline", "unit", "ratio", "goal", "met", "note", "runs",
            "baseline_runs", "server_ms", "baseline_server_ms")  # fmt: skip


def cache_dir(models: int, versions: int) -> Path:
    """Where the registries of these sizes are kept between runs."""
    return CACHE / f"ui-c{CONTENTS}-m{models}-v{versions}"


def populate_ours(folder: Path, models: int, versions: int) -> float:
    """Fill our registry (metadata only, through `Registry.create_version`), once; seconds taken."""
    from modelyard import Settings, Yard

    if (folder / "complete").exists():
        return 0.0
    began = time.perf_counter()
    _fresh(folder)
    yard = Yard(Settings(home=folder / "server-home", user="bench"))
    for row in contents(models, versions):  # no parents given: the latest version is the parent
        yard.registry.create_version(row["name"], params={"lr": "0.1"}, metrics=row["metrics"],
                                     tags=row["tags"], description=row["description"])  # fmt: skip
    yard.close()
    (folder / "complete").write_text("")
    return time.perf_counter() - began


def populate_mlflow(python: Path, folder: Path, models: int, versions: int) -> dict[str, Any]:
    """Fill MLflow's SQLite backend through `ui_mlflow.py populate`, once."""
    done = folder / "complete"
    if done.exists():
        return {**json.loads(done.read_text()), "cached": True}
    _fresh(folder)
    out = subprocess.run(
        [python, ROOT / "bench" / "ui_mlflow.py", "populate", f"sqlite:///{folder / 'mlflow.db'}",
         "--models", str(models), "--versions", str(versions)],
        cwd=folder, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"ui_mlflow.py populate failed: {out.stderr[-2000:]}")
    done.write_text(out.stdout.strip().splitlines()[-1])
    filled: dict[str, Any] = json.loads(done.read_text())
    return filled


def _fresh(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


@contextmanager
def mlflow_server(python: Path, folder: Path) -> Iterator[str]:
    """`mlflow server` over the filled SQLite backend, as a user starts it; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(
        [python, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{folder / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port)],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip  # its own process group: it starts workers and job consumers
    try:
        deadline = time.monotonic() + 240
        while not _answers(f"{url}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: see {folder / 'server.log'}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def server_ms(urls: list[str], repeat: int) -> tuple[float, list[float], int]:
    """Median ms to GET every one of `urls` in turn (after one untimed round), and the status of
    the first."""
    times = []
    with httpx.Client(timeout=60) as client:
        status = client.get(urls[0]).status_code
        for url in urls[1:]:
            client.get(url)
        for _ in range(repeat):
            began = time.perf_counter()
            for url in urls:
                client.get(url).raise_for_status()
            times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), times, status


def targets(ours: str, mlflow: str | None, models: int, versions: int) -> list[Target]:
    """The three pages, ours and MLflow's, with what "ready" means on each."""
    middle = max(1, versions // 2)
    api = f"{mlflow}/ajax-api/2.0/mlflow"
    return [
        Target(f"models page ({models + 1:,} models)", f"{ours}/", "main table tbody tr",
               mlflow and f"{mlflow}/#/models",
               '[data-testid="model-list-table"] [role="row"]:not(.table-isHeader)',
               [f"{api}/registered-models/search?filter=&max_results=25&order_by=name+ASC"]),
        Target(f"model page ({versions:,} versions)", f"{ours}/models/big", "main table tbody tr",
               mlflow and f"{mlflow}/#/models/big",
               '[data-testid="model-version-table"] [role="row"]:not(.table-isHeader)',
               [f"{api}/model-versions/search?filter=name%3D%27big%27&max_results=25"
                "&order_by=creation_timestamp+DESC", f"{api}/registered-models/get?name=big"]),
        Target(f"version page (big:{middle})", f"{ours}/version?ref=big:{middle}",
               "main table tbody tr",
               mlflow and f"{mlflow}/#/models/big/versions/{middle}",
               '[data-testid="descriptions-item-content"] a[href*="/runs/"]:has-text("big-")',
               [f"{api}/model-versions/get?name=big&version={middle}",
                f"{api}/registered-models/get?name=big"]),
    ]  # fmt: skip


def rows_for(target: Target, result: dict[str, Any]) -> list[dict[str, Any]]:
    """A cold and a warm row for one page."""
    rows = []
    for mode in ("cold", "warm"):
        ours, base = result["ours"][mode], result["baseline"][mode]
        mid, base_mid = _median(ours), _median(base)
        ratio = base_mid / mid if mid and base_mid else None
        met = None if ratio is None or mid is None else bool(mid < 1000 and ratio >= 10)
        visit = ("fresh browser context" if mode == "cold"
                 else "second visit in the same context (HTTP cache warm)")  # fmt: skip
        notes = [result["note"], MLFLOW_NOTE if base else "", visit]
        if mid is not None and ratio is None:
            notes.append(f"under 1 s: {'yes' if mid < 1000 else 'NO'}")
        rows.append({
            "case": f"{target.label}, {mode}", "ours": mid, "baseline": base_mid, "unit": "ms",
            "ratio": ratio, "goal": GOAL, "met": met, "note": "; ".join(n for n in notes if n),
            "runs": ours, "baseline_runs": base, "server_ms": result["server_ms"],
            "baseline_server_ms": result["baseline_server_ms"]})  # fmt: skip
    return rows


def _median(values: list[float | None]) -> float | None:
    done = [v for v in values if v is not None]
    return statistics.median(done) if done and len(done) == len(values) else None


def print_table(rows: list[dict[str, Any]]) -> None:
    def num(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    print(f"{'page':<36} {'ours ms':>8} {'MLflow ms':>9} {'ratio':>7} {'server ms':>9}  "
          f"{'goal':<22} met")  # fmt: skip
    for r in rows:
        met = "n/a" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(
            f"{r['case']:<36} {num(r['ours'], '8.0f')} {num(r['baseline'], '9.0f')} "
            f"{num(r['ratio'], '6.1f')}x {num(r['server_ms'], '9.1f')}  {r['goal']:<22} {met}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int)
    parser.add_argument("--versions", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--peer", choices=("mlflow", "none"), default="mlflow")
    parser.add_argument("--quick", action="store_true", help="50 models, 300 versions, 1 run")
    parser.add_argument("--timeout", type=float, default=60, help="seconds a page may take")
    parser.add_argument("--pages", default=",".join(PAGES),
                        help=f"which pages, comma-separated (of {','.join(PAGES)})")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/ui.json")
    args = parser.parse_args()
    models = args.models or (50 if args.quick else 1_000)
    versions = args.versions or (300 if args.quick else 10_000)
    repeat = args.repeat or (1 if args.quick else 7)
    began = time.perf_counter()
    folder = cache_dir(models, versions)
    env: dict[str, Any] = {
        "python": platform.python_version(), "cpus": os.cpu_count(), "quick": args.quick,
        "models": models + 1, "versions": versions, "repeat": repeat, "peer": args.peer,
        "cache": str(folder), "populate_ours_s": round(populate_ours(folder / "ours", models,
                                                                     versions), 1)}  # fmt: skip
    with (
        running_server(folder / "ours", env={"MODELYARD_USER": "bench"}) as ours,
        _peer(args, folder, models, versions, env) as mlflow,
    ):
        chosen = args.pages.split(",")
        pages = [
            t
            for key, t in zip(PAGES, targets(ours, mlflow, models, versions), strict=True)
            if key in chosen
        ]
        results, env["chromium"] = measure_pages(pages, repeat=repeat, timeout=args.timeout,
                                                 server_ms=server_ms)  # fmt: skip
    rows = [row for page in pages for row in rows_for(page, results[page.label])]
    env["total_s"] = round(time.perf_counter() - began, 1)
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": env, "rows": rows}, indent=2))
    print(f"\nwrote {args.out}")


@contextmanager
def _peer(
    args: argparse.Namespace, folder: Path, models: int, versions: int, env: dict[str, Any]
) -> Iterator[str | None]:
    if args.peer == "none":
        env["mlflow"] = "skipped (--peer none)"
        yield None
        return
    python = venvs.mlflow_python()
    env["mlflow"] = populate_mlflow(python, folder / "mlflow", models, versions)
    with mlflow_server(python, folder / "mlflow") as url:
        yield url


if __name__ == "__main__":
    main()
