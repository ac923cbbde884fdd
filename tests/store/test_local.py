"""What only a folder on disk can show: crashes, full disks, permissions, layout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelyard.errors import StorageFull, StoreAccessDenied, StoreUnavailable
from modelyard.store import LocalStore, digest_bytes

SLOW_WRITER = """
import sys, time
from modelyard.store import LocalStore

def pieces():
    for _ in range(1000):
        yield b"x" * 65536
        print("wrote", flush=True)
        time.sleep(0.01)

LocalStore(sys.argv[1]).put(pieces())
"""


def test_kill_9_during_put_leaves_no_partial_blob(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    for _ in range(20):
        writer.stdout.readline()
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    store = LocalStore(root)
    assert list(store.blobs()) == []
    leftovers = list((root / "tmp").iterdir())
    assert len(leftovers) == 1
    assert store.remove_stale_temporaries(older_than=3600) == 0
    assert store.remove_stale_temporaries(older_than=0) == 1
    assert list((root / "tmp").iterdir()) == []


def test_blobs_are_read_only_and_sharded(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    digest = store.put(b"abc")
    path = store.path(digest)
    hexdigest = digest.removeprefix("sha256:")
    assert path == tmp_path / "sha256" / hexdigest[:2] / hexdigest[2:4] / hexdigest
    assert path.stat().st_mode & 0o777 == 0o444
    assert repr(store) == f"LocalStore({str(tmp_path)!r})"


def test_fsync_mode_writes_the_same(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, fsync=True)
    assert store.put(b"durable") == digest_bytes(b"durable")
    assert store.put(iter([b"dur", b"able!"])) == digest_bytes(b"durable!")
    assert b"".join(store.get(digest_bytes(b"durable!"))) == b"durable!"


def test_failed_stream_leaves_nothing(tmp_path: Path) -> None:
    def broken() -> object:
        yield b"partial"
        raise RuntimeError("source failed")

    store = LocalStore(tmp_path)
    with pytest.raises(RuntimeError, match="source failed"):
        store.put(broken())  # type: ignore[arg-type]
    assert list(store.blobs()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_read_only_root_is_access_denied(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    root.mkdir()
    # Root ignores permission bits but not the immutable attribute; others get the plain chmod.
    lock = ["chattr", "+i", str(root)] if os.geteuid() == 0 else ["chmod", "500", str(root)]
    subprocess.run(lock, check=True)
    try:
        with pytest.raises(StoreAccessDenied, match="permission denied"):
            LocalStore(root).put(b"x")
    finally:
        unlock = ["chattr", "-i", str(root)] if os.geteuid() == 0 else ["chmod", "700", str(root)]
        subprocess.run(unlock, check=True)


def test_unwritable_root_is_access_denied(tmp_path: Path) -> None:
    # Works as root too: a file where the folder should be cannot be written through.
    (tmp_path / "blobs").write_text("not a folder")
    with pytest.raises(StoreUnavailable, match="cannot write blobs under"):
        LocalStore(tmp_path / "blobs").put(b"x")


def test_full_disk_is_storage_full(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:  # pragma: no cover - only where mounting is not allowed
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip()}")
    try:
        store = LocalStore(mount)
        store.put(b"fits")
        with pytest.raises(StorageFull, match="no space left") as caught:
            store.put(os.urandom(1 << 20))
        assert caught.value.status_code == 507
        assert list((mount / "tmp").iterdir()) == []  # the partial temp file is gone
        assert [info.size for info in store.blobs()] == [4]
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(mount)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
