"""Probing a model in a short-lived process before a long-lived one loads it.

Some frameworks abort the whole process on a malformed file (LightGBM calls `std::terminate` on
a `split_feature` out of range: SIGABRT), which no `try` can catch and which would happen again on
every restart. So a registry server (at registration) and a serving process (before loading a
version, at start and before every swap) first load the model and predict its stored example in
a child process, with the same trust policy and a timeout. A child that dies by a signal or does
not answer in time makes the model refused with `ModelCrashed`; the long-lived process goes on.

Only flavors whose loading runs native code on the file's own structure are probed (`PROBED`),
so scikit-learn, torch and pyfunc loads pay nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from modelyard.errors import MissingDependency, ModelCrashed, ModelyardError, UnsupportedModel
from modelyard.security import TrustPolicy

if TYPE_CHECKING:
    from modelyard.store import BlobStore

PROBED = frozenset({"lightgbm", "xgboost"})
"""Flavors probed in a child process before a long-lived process loads them."""

_CHILD = "import sys; from modelyard.flavors._probe import _main; sys.exit(_main(*sys.argv[1:3]))"
_CHILD_ENVIRONMENT = {"PATH": os.defpath, "OMP_NUM_THREADS": "1"}
_NOT_HERE = MissingDependency.code  # the framework is not installed here: nothing to protect


def needs_probe(flavor: str | None) -> bool:
    """Whether models of `flavor` are probed before a long-lived process loads them."""
    return flavor in PROBED


def probe(folder: str | Path, *, trust: bool | TrustPolicy = False, timeout: float = 60.0) -> None:
    """Load the model folder and predict its stored example in a child process; raise
    `ModelCrashed` (naming the file and the signal) when the child dies or hangs, and the
    child's own error when it refuses the model. Returns when the model loads and predicts.

    >>> probe("cache/sha256-…", timeout=30)   # ModelCrashed: model.txt … (SIGABRT)
    """
    policy = TrustPolicy.of(trust)
    command = [sys.executable, "-c", _CHILD, str(folder), json.dumps(asdict(policy))]
    named = _model_file(Path(folder))
    try:
        # A bare environment: the child needs none of this process's settings or secrets.
        result = subprocess.run(command, capture_output=True, timeout=timeout, check=False,
                                env=_CHILD_ENVIRONMENT)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ModelCrashed(named, signal=f"no answer in {timeout:g} s") from None
    if result.returncode == 0:
        return
    detail = result.stderr.decode(errors="replace").strip().splitlines()
    if result.returncode < 0:
        name = signal.Signals(-result.returncode).name
        raise ModelCrashed(named, signal=name, detail=" / ".join(detail[-3:])[:500])
    reported = _reported(result.stdout)
    if reported is None:
        raise ModelCrashed(
            named, signal=f"exit code {result.returncode}", detail=" / ".join(detail[-3:])[:500]
        )
    if reported[0] == _NOT_HERE:
        return
    raise UnsupportedModel(f"{named} cannot be loaded: {reported[1]}")


def probe_stored(
    store: BlobStore,
    manifest_digest: str | None,
    *,
    flavor: str | None,
    trust: bool | TrustPolicy = False,
    timeout: float = 60.0,
    scratch: Path | None = None,
) -> None:
    """`probe` the files of a stored manifest (a version about to be registered), when its
    flavor is one that is probed; anything else returns at once. The files are restored in a
    folder made in `scratch` (a caller's scratch folder under its home, found again after a
    crash), by default in the system's temporary directory."""
    if manifest_digest is None or not needs_probe(flavor):
        return
    from modelyard.store import restore_directory

    with tempfile.TemporaryDirectory(prefix="modelyard-probe-", dir=scratch) as private:
        folder = Path(private) / "model"
        restore_directory(store, manifest_digest, folder)
        probe(folder, trust=trust, timeout=timeout)


def _model_file(folder: Path) -> str:
    try:
        settings = json.loads((folder / "modelyard.json").read_text()).get("settings", {})
        return str(folder / str(settings.get("file", "")))
    except (OSError, ValueError, AttributeError):
        return str(folder)


def _reported(stdout: bytes) -> tuple[str, str] | None:
    for line in reversed(stdout.decode(errors="replace").splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict) and "error" in found:
            return str(found["error"]), str(found.get("message", ""))
    return None


def _main(folder: str, policy: str) -> int:
    from modelyard.flavors._models import load_model

    fields = json.loads(policy)
    trust = TrustPolicy(
        pickles=bool(fields["pickles"]),
        types=tuple(fields["types"]),
        modules=tuple(fields["modules"]),
    )
    try:
        model = load_model(folder, trust=trust)
        example = model.input_example()
        if example is not None:
            model.predict(example)
    except ModelyardError as error:
        print(json.dumps({"error": error.code, "message": str(error)}))
        return 3
    except Exception as error:  # any framework error: the model does not load or predict
        print(json.dumps({"error": type(error).__name__, "message": f"{error}"[:2000]}))
        return 3
    return 0
