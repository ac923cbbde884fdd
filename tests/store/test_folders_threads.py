"""Storing through a handle and restoring by offset: same cuts as before, every byte checked."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pyfastcdc import FastCDC

from modelyard.errors import IntegrityError, InvalidManifest
from modelyard.store import (
    Chunk,
    Entry,
    LocalStore,
    Manifest,
    MemoryStore,
    digest_bytes,
    read_bytes,
    restore_directory,
    save_manifest,
    store_directory,
)
from modelyard.store._chunking import cut_file

from .test_chunking import safetensors_bytes


def streamed_spans(path: Path) -> list[tuple[int, int, str | None]]:
    with path.open("rb") as handle:
        pieces = cut_file(path, handle, path.stat().st_size)
        return [(p.span.offset, p.span.size, p.span.name) for p in pieces]


def test_cuts_are_the_chunkers_own(tmp_path: Path) -> None:
    # Stores written by earlier releases hold these cut points: new puts must dedup against them.
    path = tmp_path / "weights.bin"
    data = np.random.default_rng(7).bytes(3 << 20)
    path.write_bytes(data)
    chunker = FastCDC(48 << 10, min_size=16 << 10, max_size=256 << 10)
    expected = [(c.offset, c.length, None) for c in chunker.cut_buf(data)]
    assert streamed_spans(path) == expected


def test_safetensors_cuts_are_header_and_tensors(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes({"a": b"\x01" * 3000, "b": os.urandom(20 << 20)}))
    assert [name for _, _, name in streamed_spans(path)] == ["__header__", "a", "b"]


def test_a_source_truncated_during_the_put_fails_it_cleanly(tmp_path: Path) -> None:
    # A checkpoint saved again while it is being logged: the put must fail with a clear error
    # (a mapped read past the new end would kill the process with SIGBUS), in a real process.
    script = """
import os, sys, threading, time
from pathlib import Path
import numpy as np
from modelyard.errors import ModelyardError
from modelyard.store import LocalStore, store_directory
folder = Path(sys.argv[1])
path = folder / "weights.bin"
path.write_bytes(np.random.default_rng(3).bytes(64 << 20))
store = LocalStore(sys.argv[2])
def cut() -> None:
    time.sleep(0.02)
    os.truncate(path, 1 << 20)
threading.Thread(target=cut).start()
try:
    store_directory(store, folder)
except ModelyardError as error:
    print("refused:", error)
else:
    print("stored before the cut")
"""
    folder = tmp_path / "model"
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder), str(tmp_path / "blobs")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(("refused:", "stored before the cut")), done.stdout
    if done.stdout.startswith("refused:"):
        assert "changed while it was being stored" in done.stdout


def test_a_file_stored_before_and_after_gives_the_same_chunks(tmp_path: Path) -> None:
    # MemoryStore is not local (no packs, no stat cache); the chunks must agree.
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(np.random.default_rng(1).bytes(6 << 20))
    (folder / "model.safetensors").write_bytes(
        safetensors_bytes({"w": os.urandom(17 << 20), "b": b"\x02" * 10})
    )
    local = store_directory(LocalStore(tmp_path / "blobs"), folder)
    memory = store_directory(MemoryStore(), folder)
    assert local == memory
    entry = next(e for e in local.entries if e.path == "weights.bin")
    with (folder / "weights.bin").open("rb") as handle:
        streamed = [
            digest_bytes(p.data)
            for p in cut_file(folder / "weights.bin", handle, 6 << 20)
            if p.data
        ]
    assert [chunk.digest for chunk in entry.chunks] == streamed


def test_big_tensors_round_trip_through_loose_blobs(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    content = safetensors_bytes({"big": os.urandom(20 << 20), "small": b"\x03" * 99})
    (folder / "model.safetensors").write_bytes(content)
    (folder / "empty.bin").write_bytes(b"")
    store = LocalStore(tmp_path / "blobs")
    manifest = store_directory(store, folder)
    restore_directory(store, manifest, tmp_path / "copy")
    assert (tmp_path / "copy" / "model.safetensors").read_bytes() == content
    assert (tmp_path / "copy" / "empty.bin").read_bytes() == b""


def test_a_corrupt_big_loose_blob_fails_the_restore(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(safetensors_bytes({"big": os.urandom(3 << 20)}))
    store = LocalStore(tmp_path / "blobs")
    manifest = store_directory(store, folder)
    big = next(c for c in manifest.entries[0].chunks if c.name == "big")
    store.path(big.digest).chmod(0o644)
    with store.path(big.digest).open("r+b") as handle:
        handle.seek(1 << 20)
        handle.write(b"\xff")
    with pytest.raises(IntegrityError):
        restore_directory(store, manifest, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_a_manifest_whose_chunk_sizes_lie_is_refused(tmp_path: Path) -> None:
    # Each chunk is written at the offset the sizes before it give: a wrong size must not
    # leave a file with bytes in the wrong places.
    store = LocalStore(tmp_path / "blobs")
    first, second = b"a" * 10, b"b" * 30
    chunks = (
        Chunk(digest=store.put(first), size=30),
        Chunk(digest=store.put(second), size=10),
    )
    manifest = Manifest(entries=(Entry(path="f.bin", size=40, chunks=chunks),))
    save_manifest(store, manifest)
    with pytest.raises(InvalidManifest, match="holds 10 bytes, not the 30"):
        restore_directory(store, manifest, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


def test_restore_of_a_big_file_from_packs_and_threads(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    data = np.random.default_rng(3).bytes(9 << 20)
    (folder / "weights.bin").write_bytes(data)
    store = LocalStore(tmp_path / "blobs")
    manifest = store_directory(store, folder)
    assert len(manifest.entries[0].chunks) > 50
    restore_directory(store, manifest, tmp_path / "copy", workers=3)
    assert (tmp_path / "copy" / "weights.bin").read_bytes() == data


REWRITER = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
size = os.fstat(fd).st_size
end = time.monotonic() + float(sys.argv[2])
value = 0
while time.monotonic() < end:
    value = (value + 1) % 256
    for offset in range(0, size, 1 << 20):
        os.pwrite(fd, bytes([value]) * 4096, offset)
"""


def test_a_file_rewritten_during_the_put_never_stores_a_blob_under_a_wrong_digest(
    tmp_path: Path,
) -> None:
    # Bytes written after a piece was hashed must never be stored under the old bytes' digest.
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(np.random.default_rng(5).bytes(16 << 20))
    (folder / "model.safetensors").write_bytes(
        safetensors_bytes({"big": os.urandom(40 << 20), "small": os.urandom(300 << 10)})
    )
    store = LocalStore(tmp_path / "blobs")
    writers = [
        subprocess.Popen([sys.executable, "-c", REWRITER, str(folder / name), "3"])
        for name in ("weights.bin", "model.safetensors")
    ]
    try:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            store_directory(store, folder)
    finally:
        for writer in writers:
            writer.wait(timeout=30)
    for info in store.blobs():
        assert digest_bytes(read_bytes(store, info.digest)) == info.digest
