"""Integrity of what is served: a cached model folder edited on disk is caught and restored
(the same process and a new one, a real serving process too), and a blob corrupted in a
server's store reaches an HTTP client as an `IntegrityError` naming it, never as bytes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import lightgbm as lgb
import numpy as np
import orjson
import pytest

from modelyard import Settings, Yard
from modelyard.errors import IntegrityError
from modelyard.store import digest_bytes
from tests.servers import running_server, serving_process

RNG = np.random.default_rng(3)
X = RNG.normal(size=(200, 3)).astype(np.float32)


def logged(home: Path) -> tuple[Path, np.ndarray]:  # type: ignore[type-arg]
    """A LightGBM version (a text model, easy to edit in place), its cached folder and answers."""
    model = lgb.LGBMRegressor(n_estimators=3, verbose=-1).fit(X, X[:, 0] * 2)
    with Yard(Settings(home=home)) as yard:
        version = yard.log_model(model, name="fraud", input_example=X[:2], alias="production")
        answers = yard.load_model("fraud@production").predict(X[:5])
        folder = home / "cache" / str(version.manifest_digest).replace(":", "-")
    assert (folder / "model.txt").is_file()
    return folder, answers


def tamper(file: Path) -> bytes:
    """Change every leaf value in place, keeping the size and putting the times back."""
    before = file.stat()
    original = file.read_bytes()
    edited = re.sub(rb"(?m)^(leaf_value=.*)$", lambda m: m[1].replace(b"0.", b"9."), original)
    assert edited != original and len(edited) == len(original)
    os.chmod(file, 0o644)
    file.write_bytes(edited)
    os.chmod(file, before.st_mode & 0o777)
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = file.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    return original


def test_an_edited_cached_file_is_restored_in_the_same_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder, answers = logged(home)
    with Yard(Settings(home=home)) as yard:
        assert np.array_equal(yard.load_model("fraud@production").predict(X[:5]), answers)
        original = tamper(folder / "model.txt")  # same size, same mtime: only the ctime moved
        again = yard.load_model("fraud@production").predict(X[:5])
    assert np.array_equal(again, answers)
    assert (folder / "model.txt").read_bytes() == original


def test_an_edited_cached_file_is_restored_by_a_new_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder, answers = logged(home)
    original = tamper(folder / "model.txt")
    (folder / "extra.py").write_text("import os\n")
    with Yard(Settings(home=home)) as yard:  # a new cache: its first open hashes every file
        again = yard.load_model("fraud@production").predict(X[:5])
    assert np.array_equal(again, answers)
    assert (folder / "model.txt").read_bytes() == original
    assert not (folder / "extra.py").exists()


def test_a_serving_process_never_serves_an_edited_cache(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder, answers = logged(home)
    tamper(folder / "model.txt")
    rows = X[:5]
    body = {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.ravel().tolist()}]}  # fmt: skip
    with serving_process(home, "fraud@production") as url:
        response = httpx.post(f"{url}/v2/models/fraud/infer", content=orjson.dumps(body))
    assert response.status_code == 200
    assert np.allclose(response.json()["outputs"][0]["data"], answers, rtol=1e-6)


def corrupt(server_home: Path, digest: str) -> None:
    """Flip the blob's first byte in the server's local store, keeping its size."""
    (path,) = [p for p in (server_home / "blobs").rglob(f"*{digest.split(':')[1]}*") if p.is_file()]
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("size", [1000, 20 << 20], ids=["checked-before-sending", "streamed"])
def test_a_corrupt_blob_over_http_raises_integrity_error(tmp_path: Path, size: int) -> None:
    content = RNG.bytes(size)
    digest = digest_bytes(content)
    with running_server(tmp_path) as url:
        with Yard(Settings(home=tmp_path / "client"), url=url) as yard:
            yard.store.put(content, digest=digest)
            assert b"".join(yard.store.get(digest)) == content
            corrupt(tmp_path / "server-home", digest)
            with pytest.raises(IntegrityError, match=digest) as caught:
                b"".join(yard.store.get(digest))
            assert caught.value.digest == digest


def test_a_corrupt_blob_fails_a_remote_load_and_leaves_no_cache(tmp_path: Path) -> None:
    model = lgb.LGBMRegressor(n_estimators=3, verbose=-1).fit(X, X[:, 0] * 2)
    with running_server(tmp_path) as url:
        with Yard(Settings(home=tmp_path / "writer"), url=url) as writer:
            version = writer.log_model(model, name="fraud", input_example=X[:2])
            manifest = writer.store.get(str(version.manifest_digest))
            entries = orjson.loads(b"".join(manifest))["entries"]
            (chunk,) = next(e for e in entries if e["path"] == "model.txt")["chunks"]
        corrupt(tmp_path / "server-home", chunk["digest"])
        with Yard(Settings(home=tmp_path / "reader"), url=url) as reader:
            with pytest.raises(IntegrityError, match=chunk["digest"]):
                reader.load_model("fraud:1")
    cache = tmp_path / "reader" / "cache"
    assert not cache.exists() or not any(p.name.startswith("sha256-") for p in cache.iterdir())
