"""The modelyard demo, on the embedded default (a local folder; no server).

For now it shows the foundation every later step stands on: a model folder goes into the
content-addressed store, ten fine-tuned variants cost little more than one model, and a stored
version comes back byte for byte. Run it through `scripts/demo`, which sets things up first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

VARIANTS = 10
CHANGED_SHARE = 0.05


def modelyard(*args: str) -> str:
    """Run the real `modelyard` command line, as a user would."""
    command = [sys.executable, "-m", "modelyard", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def make_base(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A ~40 MB MLP-like model: 40 layers of weights and biases."""
    tensors: dict[str, np.ndarray] = {}
    for layer in range(40):
        tensors[f"layer{layer:02d}.weight"] = rng.standard_normal((512, 512), dtype=np.float32)
        tensors[f"layer{layer:02d}.bias"] = rng.standard_normal(512, dtype=np.float32)
    return tensors


def fine_tune(base: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A variant that changes 5% of the tensors, as a short fine-tune of the top layers would."""
    names = sorted(base)
    changed = rng.choice(names, size=max(1, round(CHANGED_SHARE * len(names))), replace=False)
    tuned = dict(base)
    for name in changed:
        tuned[str(name)] = base[str(name)] + rng.normal(0, 1e-3, base[str(name)].shape).astype(
            np.float32
        )
    return tuned


def write_model(folder: Path, tensors: dict[str, np.ndarray], variant: int) -> None:
    folder.mkdir(parents=True)
    save_file(tensors, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"variant": variant, "layers": 40}))


def stored_bytes() -> int:
    return int(json.loads(modelyard("store", "stats", "--json"))["bytes"])


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="modelyard-demo-"))
    os.environ.setdefault("MODELYARD_HOME", str(work / "home"))
    print(f"modelyard home: {os.environ['MODELYARD_HOME']}\n")
    rng = np.random.default_rng(0)
    base = make_base(rng)
    model_size = 0
    digests = []
    print(f"{'variant':>7}  {'model size':>12}  {'new bytes stored':>16}  manifest")
    for variant in range(VARIANTS):
        folder = work / f"variant-{variant}"
        write_model(folder, base if variant == 0 else fine_tune(base, rng), variant)
        before = stored_bytes()
        summary = json.loads(modelyard("store", "put", str(folder), "--json"))
        model_size = summary["bytes"]
        digests.append(summary["digest"])
        added = stored_bytes() - before
        print(f"{variant:>7}  {model_size:>12,}  {added:>16,}  {summary['digest'][:23]}…")

    total = stored_bytes()
    print(f"\n{VARIANTS} variants stored in {total:,} bytes = {total / model_size:.2f}x one model")
    print(f"a plain copy of each would take {VARIANTS * model_size:,} bytes = {VARIANTS:.2f}x\n")

    restored = work / "restored"
    print(modelyard("store", "restore", digests[-1], str(restored)).strip())
    original = work / f"variant-{VARIANTS - 1}"
    same = subprocess.run(["diff", "-r", str(original), str(restored)]).returncode == 0
    print(f"restored copy identical to the original: {same}")
    print(modelyard("store", "verify").strip())
    keep = [arg for digest in digests[:-1] for arg in ("--keep", digest)]
    print(f"if variant {VARIANTS - 1} were dropped, garbage collection:")
    print(modelyard("store", "gc", "--grace-minutes", "0", *keep).strip().splitlines()[-1])
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
