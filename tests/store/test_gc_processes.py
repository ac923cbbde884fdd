"""Garbage collection against the registry, with real processes, on a local folder and on S3.

`modelyard store gc` runs as its own process beside `log_model` in another: it must never
delete a registered version's blobs (the reused-blob race included), it frees what a deleted
version alone referenced, and `kill -9` in the middle leaves every remaining manifest whole.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard import Settings, Yard
from modelyard.errors import InvalidManifest
from modelyard.store import BlobStore, LocalStore, Manifest, load_manifest, read_bytes

PAUSED_LOG = """
import sys, time
from pathlib import Path
from modelyard import Yard
from modelyard.registry import Registry

ready, go, folder = map(Path, sys.argv[1:4])
register = Registry.create_version

def paused(self, *args, **kwargs):  # every blob is written; the version is not committed yet
    ready.touch()
    while not go.exists():
        time.sleep(0.02)
    return register(self, *args, **kwargs)

Registry.create_version = paused
with Yard() as yard:
    print(yard.log_model(folder, name="fraud").ref)
"""


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The same home for this process and the children: a local store or a SeaweedFS prefix."""
    home = tmp_path / "home"
    if request.param == "local":
        return Settings(home=home)
    s3: Settings = request.getfixturevalue("s3_settings")
    # A prefix of the test's own: gc lists every blob under it, and another test's registry
    # in the session's prefix would look like garbage here.
    store_url = f"{s3.store_url}/gc-{uuid.uuid4().hex[:8]}"
    database_url = f"sqlite:///{home}/registry.db"
    return s3.model_copy(
        update={"home": home, "database_url": database_url, "store_url": store_url}
    )


@pytest.fixture
def yard(settings: Settings) -> Iterator[Yard]:
    with Yard(settings) as yard:
        yield yard


def child_env(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MODELYARD_")}
    fields = ["home", "database_url", "store_url", "s3_endpoint_url", "s3_region"]
    fields += ["s3_access_key_id", "s3_secret_access_key"]
    for name in fields:
        value = getattr(settings, name)
        if value is not None:
            env[f"MODELYARD_{name.upper()}"] = str(value)
    return env


def gc(settings: Settings, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "modelyard", "store", "gc", "--json", *args]
    return subprocess.Popen(
        command, env=child_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finished(process: subprocess.Popen[str]) -> dict[str, object]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def model(root: Path, own: bytes, *, files: int = 1) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"shared": true}')
    for index in range(files):
        (root / f"weights-{index}.bin").write_bytes(own + index.to_bytes(4, "big") * 64)
    return root


def loadable(yard: Yard, ref: str, tmp_path: Path) -> Path:
    """Where the version was restored, verified byte for byte (`BlobNotFound` if it cannot be)."""
    target = tmp_path / "check" / f"{ref.replace(':', '-')}-{uuid.uuid4().hex[:6]}"
    yard.download(ref, target)
    assert (target / "config.json").is_file()
    return target


def whole(store: BlobStore) -> list[str]:
    """Manifests still in the store that lack a blob (the list must stay empty)."""
    broken = []
    for info in store.blobs():
        if info.size > 1 << 20:
            continue
        data = read_bytes(store, info.digest)
        if not data.startswith(b"{"):
            continue
        try:
            manifest = Manifest.parse(data)
        except InvalidManifest:
            continue
        if not all(store.exists(digest) for digest in manifest.blob_digests()):
            broken.append(info.digest)
    return broken


def test_gc_keeps_registered_versions_and_frees_a_deleted_ones_bytes(
    yard: Yard, settings: Settings, tmp_path: Path
) -> None:
    for number in range(1, 5):
        yard.log_model(model(tmp_path / f"m{number}", os.urandom(50_000)), name="fraud")
    with yard.start_run("train") as run:
        run.log_artifact(model(tmp_path / "artifact", os.urandom(10_000)), name="model")
    before = sum(info.size for info in yard.store.blobs())

    dry = finished(gc(settings, "--grace-minutes", "0"))
    assert dry["unreferenced"] == [] and dry["dry_run"] is True  # a healthy registry

    freed = yard.delete_version("fraud:2")
    assert freed is not None and freed.size > 50_000 and freed.blobs >= 2  # weights, manifest
    report = finished(gc(settings, "--grace-minutes", "0", "--delete"))
    assert report["bytes"] == freed.size and len(report["unreferenced"]) == freed.blobs  # type: ignore[arg-type]
    assert sum(info.size for info in yard.store.blobs()) == before - freed.size
    for ref in ("fraud:1", "fraud:3", "fraud:4"):
        assert loadable(yard, ref, tmp_path)
    assert yard.get_run(run.id).artifacts["model"] in {i.digest for i in yard.store.blobs()}


def test_gc_beside_a_registration_that_reuses_old_blobs(
    yard: Yard, settings: Settings, tmp_path: Path
) -> None:
    folder = model(tmp_path / "model", os.urandom(100_000))
    yard.log_model(folder, name="fraud")
    store = yard.store
    if isinstance(store, LocalStore):  # two hours old: past any grace period
        old = time.time() - 7200
        for info in store.blobs():
            os.utime(store.holder(info.digest), (old, old))
    assert yard.delete_version("fraud:1") is not None

    ready, go = tmp_path / "ready", tmp_path / "go"
    command = [sys.executable, "-c", PAUSED_LOG, str(ready), str(go), str(folder)]
    logging = subprocess.Popen(
        command, env=child_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert logging.poll() is None, logging.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    collecting = gc(settings, "--grace-minutes", "0", "--delete", "--wait-seconds", "120")
    time.sleep(3)
    assert collecting.poll() is None  # it waits for the registration in flight
    go.touch()
    out, err = logging.communicate(timeout=60)
    assert logging.returncode == 0, err
    assert out.strip() == "fraud:2"
    finished(collecting)
    restored = loadable(yard, "fraud:2", tmp_path)
    assert (restored / "weights-0.bin").read_bytes() == (folder / "weights-0.bin").read_bytes()


def test_kill_9_during_gc_leaves_every_manifest_whole(
    yard: Yard, settings: Settings, tmp_path: Path
) -> None:
    kept: set[str] = set()
    for number in range(1, 7):
        folder = model(tmp_path / f"m{number}", os.urandom(2_000), files=60)
        digest = yard.log_model(folder, name="fraud").manifest_digest
        if number in (1, 6):
            assert digest is not None
            kept |= {digest, *load_manifest(yard.store, digest).blob_digests()}
    for number in range(2, 6):
        yard.delete_version(f"fraud:{number}")
    start = len(list(yard.store.blobs()))
    killed_midway = False
    for _ in range(3):
        process = gc(settings, "--grace-minutes", "0", "--delete")
        while process.poll() is None and len(list(yard.store.blobs())) == start:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        left = len(list(yard.store.blobs()))
        killed_midway |= process.returncode == -signal.SIGKILL and left > len(kept)
        assert whole(yard.store) == []
        assert loadable(yard, "fraud:1", tmp_path) and loadable(yard, "fraud:6", tmp_path)
        start = left
    finished(gc(settings, "--grace-minutes", "0", "--delete"))
    assert whole(yard.store) == []
    assert {info.digest for info in yard.store.blobs()} == kept
    if isinstance(yard.store, LocalStore):
        return  # local deletes can outrun the poll; S3's are slow enough to be caught
    assert killed_midway
