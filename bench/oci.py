"""OCI push and pull of ten fine-tuned variants: modelyard against ten plain `oras push`.

    python bench/oci.py [--size-mib 40] [--tensors 100] [--variants 10] [--share 0.05]
                        [--oras-python PATH] [--quick] [--out bench/results/oci.json] [--dir DIR]

A base model of float32 tensors in `model.safetensors` (`--size-mib`, `--tensors`) and
`--variants` fine-tunes, each changing a distinct random `--share` of the tensors (the workload
of `bench/store.py`), are registered as versions of one model. Each tool gets a fresh
`docker-registry` of its own: modelyard pushes every version (`Yard.push`, one layer per stored
blob) and pulls each into a fresh home (`Yard.pull(register=...)`); ORAS pushes every variant's
folder (files whole) and pulls each into an empty folder. ORAS comes from PyPI into its own
virtualenv under `~/.cache/modelyard-bench/oras-venv` (or `--oras-python`).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peers import CACHE, PeerUnavailable, _run, folder_size  # noqa: E402
from store import model_tensors  # noqa: E402
from variants import variant_models, write_variant  # noqa: E402

from modelyard import Settings, Yard  # noqa: E402
from tests.deploy.conftest import OciRegistry, start_registry  # noqa: E402

MIB = 1 << 20
ORAS_VENV = CACHE / "oras-venv"
PEER_SCRIPT = Path(__file__).with_name("oci_peer.py")
ROW_KEYS = ("case", "ours", "baseline", "unit", "ratio", "goal", "met", "note", "runs",
            "baseline_runs")  # fmt: skip


def oras_python(given: str | None) -> tuple[str, str]:
    """The Python that runs `oci_peer.py` and the ORAS version it has; installs ORAS into its
    own virtualenv (`python -m venv` + `pip install oras`) unless `given`."""
    python = given or str(ORAS_VENV / "bin" / "python")
    probe = [python, "-c", "import importlib.metadata as m; print(m.version('oras'))"]
    try:
        return python, _run(probe).strip()
    except PeerUnavailable:
        if given:
            raise
    print(f"installing ORAS into {ORAS_VENV} (pip install oras) ...", file=sys.stderr)
    shutil.rmtree(ORAS_VENV, ignore_errors=True)
    ORAS_VENV.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(ORAS_VENV)])
    _run([python, "-m", "pip", "install", "--quiet", "oras"])
    return python, _run(probe).strip()


def run_oras(python: str, registry: OciRegistry, op: str, items: list[dict[str, str]]) -> Any:
    """Run one ORAS job (see `oci_peer.py`); its per-item seconds and the process's wall time."""
    job = {"op": op, "host": registry.host, "username": registry.username,
           "password": registry.password, "items": items}  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run([python, str(PEER_SCRIPT)], input=json.dumps(job), text=True,
                          capture_output=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"oras {op} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)["seconds"], time.perf_counter() - began


def blob_bytes(registry: OciRegistry) -> int:
    """Bytes of the blobs the registry holds: what clients uploaded (each blob once)."""
    blobs = registry.root / "docker" / "registry" / "v2" / "blobs"
    return folder_size(blobs) if blobs.is_dir() else 0


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """Wall-clock seconds of `action()` and what it returned."""
    began = time.perf_counter()
    result = action()
    return time.perf_counter() - began, result


def make_variants(work: Path, args: argparse.Namespace) -> list[Path]:
    """Write the variant folders (untimed): `model.safetensors` and a small `config.json`."""
    base = model_tensors(args.size_mib * MIB, args.tensors, seed=11)
    folders = []
    for index, model in enumerate(variant_models(base, args.variants, args.share, seed=12)):
        folder = work / "variants" / f"variant-{index}"
        folder.parent.mkdir(exist_ok=True)
        write_variant(folder, model, "safetensors", index)
        folders.append(folder)
    return folders


def modelyard_case(work: Path, folders: list[Path]) -> dict[str, Any]:
    """Register the variants, push each version, pull each into a fresh home: seconds, bytes."""
    out: dict[str, Any] = {"push_s": [], "pull_s": [], "sent": [], "received": []}
    out["uploaded_bytes"] = 0
    with (
        start_registry(work / "registry-modelyard") as registry,
        Yard(Settings(home=work / "home-source", user="bench")) as source,
        Yard(Settings(home=work / "home-pulled", user="bench")) as pulled,
    ):
        versions = [source.log_model(folder, name="bench") for folder in folders]
        targets = [registry.url("bench/modelyard", f"v{v.number}") for v in versions]
        for version, target in zip(versions, targets, strict=True):
            seconds, result = timed(partial(source.push, version.ref, target))
            out["push_s"].append(seconds)
            out["uploaded_bytes"] += result.uploaded_bytes
            out["sent"].append(blob_bytes(registry))
        out["registry_bytes"] = folder_size(registry.root)
        _ = pulled.registry  # untimed, like ORAS's start-up: the fresh home creates its database
        for target in targets:
            seconds, result = timed(partial(pulled.pull, target, register="bench"))
            out["pull_s"].append(seconds)
            out["received"].append(result.downloaded_bytes)
        for version in versions:  # untimed: the pulled versions hold the very same files
            again = pulled.get_version(f"bench:{version.number}")
            assert again.manifest_digest == version.manifest_digest, version.ref
        out["pulled_store_bytes"] = folder_size(work / "home-pulled")
    return out


def oras_case(work: Path, folders: list[Path], python: str) -> dict[str, Any]:
    """ORAS pushes each folder and pulls each into an empty folder: seconds, bytes."""
    out: dict[str, Any] = {"push_s": [], "sent": []}
    with start_registry(work / "registry-oras") as registry:
        for index, folder in enumerate(folders):  # one job per push, to read the growth
            target = f"{registry.host}/bench/oras:v{index + 1}"
            seconds, _ = run_oras(python, registry, "push", [{"target": target,
                                                              "folder": str(folder)}])  # fmt: skip
            out["push_s"] += seconds
            out["sent"].append(blob_bytes(registry))
        out["registry_bytes"] = folder_size(registry.root)
        items = [
            {
                "target": f"{registry.host}/bench/oras:v{i + 1}",
                "folder": str(work / "oras-pulled" / f"v{i + 1}"),
            }
            for i in range(len(folders))
        ]
        out["pull_s"], out["pull_process_s"] = run_oras(python, registry, "pull", items)
        _, out["startup_s"] = run_oras(python, registry, "pull", [])
    for index, folder in enumerate(folders):  # untimed: the same files came back
        pulled = work / "oras-pulled" / f"v{index + 1}"
        same = filecmp.dircmp(folder, pulled)
        assert not (same.diff_files or same.left_only or same.right_only), pulled
    out["pulled_bytes"] = folder_size(work / "oras-pulled")
    return out


def row(case: str, ours: float, peer: float, unit: str, **extra: Any) -> dict[str, Any]:
    """One report row; ratio = ours / ORAS (below 1: ours sent less or took less time)."""
    ratio = ours / peer if peer else None
    goal = extra.get("goal")
    met = None if goal is None or ratio is None else ratio < 1
    made = {"case": case, "ours": ours, "baseline": peer, "unit": unit, "ratio": ratio}
    made |= {"goal": goal, "met": met, "note": extra.get("note", "")}
    return made | {"runs": extra.get("runs"), "baseline_runs": extra.get("baseline_runs")}


def rows_for(
    n: int, model: int, ours: dict[str, Any], oras: dict[str, Any]
) -> list[dict[str, Any]]:
    """The report: bytes sent and stored, push and pull wall time, each against ORAS."""
    mib = 1 / MIB
    return [
        row(f"push {n} variants: bytes sent", ours["sent"][-1] * mib, oras["sent"][-1] * mib,
            "MiB", goal="< 1x", runs=ours["sent"], baseline_runs=oras["sent"],
            note=f"new blob bytes in the registry after each push; one model is "
                 f"{model * mib:.1f} MiB; modelyard's own count: "
                 f"{ours['uploaded_bytes'] * mib:.1f} MiB uploaded"),
        row(f"push {n} variants: registry storage", ours["registry_bytes"] * mib,
            oras["registry_bytes"] * mib, "MiB", goal="< 1x",
            note="every file under the registry's root (blobs, manifests, links)"),
        row(f"push {n} variants: wall time", sum(ours["push_s"]), sum(oras["push_s"]), "s",
            runs=ours["push_s"], baseline_runs=oras["push_s"],
            note=f"modelyard in-process; ORAS in one process per push, its start-up "
                 f"({oras['startup_s']:.2f} s) not counted"),
        row(f"pull {n} variants: wall time", sum(ours["pull_s"]), sum(oras["pull_s"]), "s",
            runs=ours["pull_s"], baseline_runs=oras["pull_s"],
            note="modelyard into one fresh home with --register (verified into its store; "
                 "creating the home's database not counted); ORAS into an empty folder each"),
        row(f"pull {n} variants: bytes received", sum(ours["received"]) * mib,
            oras["pulled_bytes"] * mib, "MiB", goal="< 1x", runs=ours["received"],
            note=f"modelyard: layers downloaded (blobs the home had are not fetched), the "
                 f"fresh home is {ours['pulled_store_bytes'] * mib:.1f} MiB after; ORAS: the "
                 f"pulled folders' bytes (every file, every time)"),
    ]  # fmt: skip


def print_table(rows: list[dict[str, Any]]) -> None:
    """The rows as a table on stdout."""
    print(f"{'case':<42} {'modelyard':>10} {'ORAS':>10} {'unit':<4} {'ratio':>7}  goal  met")
    for r in rows:
        ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        met = "n/a" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(f"{r['case']:<42} {r['ours']:>10.2f} {r['baseline']:>10.2f} {r['unit']:<4} "
              f"{ratio:>7}  {r['goal'] or '-':<5} {met}")  # fmt: skip


def main() -> None:
    """Parse the options, run both cases in one scratch folder, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int)
    parser.add_argument("--tensors", type=int)
    parser.add_argument("--variants", type=int)
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--oras-python", help="a Python with `oras` (default: its own venv)")
    parser.add_argument("--quick", action="store_true", help="4 MiB, 20 tensors, 3 variants")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/oci.json")
    parser.add_argument("--dir", type=Path, help="scratch folder parent (default: temp)")
    args = parser.parse_args()
    args.size_mib = args.size_mib or (4 if args.quick else 40)
    args.tensors = args.tensors or (20 if args.quick else 100)
    args.variants = args.variants or (3 if args.quick else 10)
    os.environ.setdefault("MODELYARD_TEST_DOCKER_REGISTRY", shutil.which("docker-registry") or "")
    python, version = oras_python(args.oras_python)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="oci-bench-") as scratch:
        work = Path(scratch)
        folders = make_variants(work, args)
        model = folder_size(folders[0])
        ours = modelyard_case(work, folders)
        oras = oras_case(work, folders, python)
    rows = rows_for(args.variants, model, ours, oras)
    env = {"python": platform.python_version(), "cpus": os.cpu_count(), "quick": args.quick,
           "size_mib": args.size_mib, "tensors": args.tensors, "variants": args.variants,
           "share": args.share, "model_bytes": model, "oras": {"version": version,
           "python": python, "startup_s": round(oras["startup_s"], 3)},
           "total_s": round(time.perf_counter() - began, 1)}  # fmt: skip
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": env, "rows": rows}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
