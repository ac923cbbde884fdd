"""Pack files in LocalStore: small blobs put in a batch share files; every store promise holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest

from modelyard.errors import BlobNotFound, IntegrityError, StoreUnavailable
from modelyard.store import (
    LocalStore,
    Manifest,
    collect_garbage,
    digest_bytes,
    read_bytes,
    restore_directory,
    store_directory,
)


def packs(store: LocalStore) -> list[Path]:
    return sorted((store.root / "packs").glob("*.pack"))


def loose(store: LocalStore) -> list[Path]:
    return sorted((store.root / "sha256").glob("??/??/*"))


def blobs(count: int, seed: int = 0) -> list[bytes]:
    return [seed.to_bytes(4, "big") + os.urandom(100 + 97 * number) for number in range(count)]


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_batch_round_trip_of_many_small_blobs_from_threads(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs", pack_size=1 << 20)  # small packs: rollovers under load
    contents = blobs(600)
    with store.batch(), ThreadPoolExecutor(8) as pool:
        digests = list(pool.map(store.put, contents + contents))  # each twice, concurrently
    assert digests[:600] == [digest_bytes(data) for data in contents] == digests[600:]
    assert loose(store) == [] and len(packs(store)) > 3
    assert list((store.root / "tmp").iterdir()) == []
    reader = LocalStore(store.root)  # another store object: loads the index from disk
    pairs = list(zip(digests[:600], contents, strict=True))
    assert all(read_bytes(reader, digest) == data for digest, data in pairs)
    listed = {info.digest: info.size for info in reader.blobs()}
    assert listed == {digest: len(data) for digest, data in pairs}


def test_a_fresh_store_read_from_many_threads_at_once_finds_every_blob(tmp_path: Path) -> None:
    # Regression: threads that missed while another one loaded the index got BlobNotFound.
    store = LocalStore(tmp_path / "blobs", pack_size=16 << 10)
    contents = blobs(300)
    with store.batch():
        digests = [store.put(data) for data in contents]
    assert len(packs(store)) > 50
    old = time.time() - 60  # a folder that changed long ago is trusted after one listing
    os.utime(store.root / "packs", (old, old))
    for _ in range(3):
        reader = LocalStore(store.root)
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(partial(read_bytes, reader), digests)) == contents


def test_put_outside_a_batch_and_big_blobs_stay_loose(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    small = store.put(b"small, but outside a batch")
    with store.batch():
        big = store.put(os.urandom((1 << 20) + 1))
        packed = store.put(b"small, inside")
    assert {path.name for path in loose(store)} == {small[7:], big[7:]}
    assert store.holder(packed) in packs(store)
    assert store.exists(packed) and read_bytes(store, packed) == b"small, inside"


def test_dedup_across_batches_and_against_loose_blobs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    was_loose = store.put(b"stored loose first")
    with store.batch():
        packed = store.put(b"packed once")
        assert store.put(b"stored loose first") == was_loose
    assert len(packs(store)) == 1
    with store.batch():
        assert store.put(b"packed once") == packed
        assert store.put(b"stored loose first", digest=was_loose) == was_loose
    assert len(packs(store)) == 1 and len(loose(store)) == 1
    assert [info.digest for info in store.blobs()].count(packed) == 1


def test_a_reused_packed_blob_restarts_its_packs_age(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    with store.batch():
        digest = store.put(b"reused weights")
    (pack,) = packs(store)
    old = time.time() - 7200
    os.utime(pack, (old, old))
    again = LocalStore(store.root)  # another writer, as a later log_model would be
    with again.batch():
        assert again.put(b"reused weights") == digest
    assert pack.stat().st_mtime > time.time() - 60
    assert packs(store) == [pack]


PUT_IN_BATCH = """
import sys
from modelyard.store import LocalStore
store = LocalStore(sys.argv[1])
with store.batch():
    print(store.put(sys.argv[2].encode()))
"""


def test_a_pack_another_process_publishes_is_seen(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    with store.batch():
        first = store.put(b"mine")
    assert read_bytes(store, first) == b"mine"  # the index is loaded now
    theirs = digest_bytes(b"theirs")
    assert not store.exists(theirs)
    process = run_python(PUT_IN_BATCH, str(store.root), "theirs")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out.strip() == theirs
    assert store.exists(theirs) and read_bytes(store, theirs) == b"theirs"


KILLED_IN_BATCH = """
import os, sys
from modelyard.store import LocalStore
store = LocalStore(sys.argv[1])
with store.batch():
    for number in range(100):
        store.put(os.urandom(1000))
    print("written", flush=True)
    sys.stdin.read()
"""


def test_kill_9_mid_batch_leaves_only_temporaries(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_IN_BATCH, str(store.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "written\n"
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert packs(store) == [] and list(store.blobs()) == []
    assert store.remove_stale_temporaries(older_than=0) == 1
    assert list((store.root / "tmp").iterdir()) == []


def packed_store(tmp_path: Path, count: int = 20) -> tuple[LocalStore, list[str], list[bytes]]:
    store = LocalStore(tmp_path / "blobs")
    contents = blobs(count)
    with store.batch():
        digests = [store.put(data) for data in contents]
    return store, digests, contents


def test_a_torn_index_is_rebuilt_from_the_records(tmp_path: Path) -> None:
    store, digests, contents = packed_store(tmp_path)
    (pack,) = packs(store)
    pack.chmod(0o644)
    with pack.open("r+b") as handle:  # the trailer's checksum no longer matches
        handle.seek(-40, os.SEEK_END)
        handle.write(b"\0" * 8)
    reader = LocalStore(store.root)
    assert [read_bytes(reader, digest) for digest in digests] == contents


def test_a_truncated_pack_keeps_its_whole_records(tmp_path: Path) -> None:
    store, digests, contents = packed_store(tmp_path)
    (pack,) = packs(store)
    pack.chmod(0o644)
    cut = pack.read_bytes().index(contents[10]) + 5  # in the middle of the eleventh blob
    os.truncate(pack, cut)
    reader = LocalStore(store.root)
    assert [read_bytes(reader, digest) for digest in digests[:10]] == contents[:10]
    for digest in digests[10:]:
        with pytest.raises(BlobNotFound):
            read_bytes(reader, digest)


def test_a_corrupt_packed_blob_fails_its_digest_and_only_it(tmp_path: Path) -> None:
    store, digests, contents = packed_store(tmp_path)
    (pack,) = packs(store)
    pack.chmod(0o644)
    data = pack.read_bytes()
    at = data.index(contents[3]) + 50
    pack.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])
    reader = LocalStore(store.root)
    with pytest.raises(IntegrityError):
        read_bytes(reader, digests[3])
    others = [number for number in range(len(digests)) if number != 3]
    assert all(read_bytes(reader, digests[number]) == contents[number] for number in others)


def test_delete_many_rewrites_a_pack_once_and_frees_its_dead_bytes(tmp_path: Path) -> None:
    store, digests, contents = packed_store(tmp_path, count=40)
    (old,) = packs(store)
    before = sum(info.size for info in store.blobs())
    assert store.delete_many(digests[::2]) == 20
    (new,) = packs(store)
    assert new != old and not old.exists()
    assert sum(info.size for info in store.blobs()) == before - sum(map(len, contents[::2]))
    assert all(
        read_bytes(store, digest) == data
        for digest, data in zip(digests[1::2], contents[1::2], strict=True)
    )
    assert not any(store.exists(digest) for digest in digests[::2])
    assert store.delete_many(digests[1::2]) == 20
    assert packs(store) == [] and list(store.blobs()) == []
    assert store.delete(digests[0]) is False


def test_a_read_whose_pack_was_repacked_under_it_finds_the_blob_again(tmp_path: Path) -> None:
    store, digests, contents = packed_store(tmp_path)
    reader = LocalStore(store.root)
    assert reader.exists(digests[0])  # index loaded, pack not opened yet
    store.delete(digests[0])  # another store object rewrites the pack
    assert not reader.exists(digests[0]) and reader.exists(digests[1])
    assert read_bytes(reader, digests[1]) == contents[1]
    with pytest.raises(BlobNotFound):
        read_bytes(reader, digests[0])


def make_model(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def two_models_sharing_packs(tmp_path: Path) -> tuple[LocalStore, Manifest, Manifest]:
    """`both` and `kept` (a subset of it): their blobs share packs, so gc must repack."""
    store = LocalStore(tmp_path / "blobs", pack_size=256 << 10)
    files = {f"w{number}.bin": os.urandom(20_000 + number) for number in range(60)}
    both = store_directory(store, make_model(tmp_path / "both", files))
    half = {name: data for number, (name, data) in enumerate(files.items()) if number % 2}
    kept = store_directory(store, make_model(tmp_path / "kept", half))
    return store, both, kept


def test_gc_repacks_and_keeps_every_live_blob(tmp_path: Path) -> None:
    store, both, kept = two_models_sharing_packs(tmp_path)
    before = sum(info.size for info in store.blobs())
    report = collect_garbage(store, [kept], dry_run=False, grace=timedelta(0))
    assert len(report.unreferenced) == 31  # 30 files and the manifest of `both`
    after = sum(info.size for info in store.blobs())
    assert after == before - report.reclaimable_bytes
    assert {info.digest for info in store.blobs()} == {kept.digest, *kept.blob_digests()}
    restore_directory(store, kept, tmp_path / "restored")
    for entry in kept.entries:
        assert (tmp_path / "restored" / entry.path).read_bytes() == (
            tmp_path / "kept" / entry.path
        ).read_bytes()


GC = """
import sys
from datetime import timedelta
from functools import partial
from modelyard.store import LocalStore, collect_garbage
# fsync and small packs: a repack publishes pack after pack, each made durable, which gives
# the kill below a window to land in.
store = LocalStore(sys.argv[1], fsync=True, pack_size=256 << 10)
print("ready", flush=True)
sys.stdin.readline()
collect_garbage(store, [sys.argv[2]], dry_run=False, grace=timedelta(0))
"""


def killed_gc(store: LocalStore, kept: Manifest, delay: float) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", GC, str(store.root), kept.digest],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.stdin.write("go\n")
    process.stdin.flush()
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.communicate()


def test_kill_9_during_a_repack_then_a_rerun_finishes_it(tmp_path: Path) -> None:
    for attempt in range(4):  # on a loaded machine one run of kills can step over the repack
        store, both, kept = two_models_sharing_packs(tmp_path / f"try-{attempt}")
        live = {kept.digest, *kept.blob_digests()}
        original = set(packs(store))
        midway = False
        delay = 0.0
        while {info.digest for info in LocalStore(store.root).blobs()} != live and delay < 1:
            killed_gc(store, kept, delay)
            repacking = bool(set(packs(store)) - original) or any(
                path.name.startswith("pack-") for path in (store.root / "tmp").iterdir()
            )
            reader = LocalStore(store.root)
            midway |= repacking and len(list(reader.blobs())) > len(live)
            assert all(read_bytes(reader, digest) for digest in live)
            delay += 0.004
        if midway:
            break
    assert midway  # at least one kill landed while packs were being rewritten
    collect_garbage(store, [kept], dry_run=False, grace=timedelta(0))
    store.remove_stale_temporaries(older_than=0)
    assert {info.digest for info in store.blobs()} == live
    assert list((store.root / "tmp").iterdir()) == []
    sizes = sum(info.size for info in store.blobs())
    on_disk = sum(path.stat().st_size for path in packs(store))
    assert on_disk < sizes + 4096 * len(packs(store))  # no blob left stored twice


def test_an_old_loose_only_store_still_reads(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    digests = [store.put(data) for data in blobs(5)]  # as every store before packs was written
    assert not (store.root / "packs").exists()
    reader = LocalStore(store.root)
    assert all(reader.exists(digest) for digest in digests)
    assert {info.digest for info in reader.blobs()} == set(digests)
    with reader.batch():
        assert [reader.put(read_bytes(reader, digest)) for digest in digests] == digests
    assert packs(store) == []


def test_a_pack_lost_before_it_is_published_fails_the_batch(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    with pytest.raises(StoreUnavailable), store.batch():
        digest = store.put(b"written, then its pack removed by a stale-temporaries sweep")
        assert store.remove_stale_temporaries(older_than=-60) == 1
    assert not store.exists(digest) and packs(store) == []


def test_a_typed_memoryview_is_packed_by_its_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    numbers = array("i", range(1000))
    with store.batch():
        digest = store.put(memoryview(numbers))
    assert read_bytes(LocalStore(store.root), digest) == numbers.tobytes()
    assert [info.size for info in store.blobs()] == [len(numbers.tobytes())]


def test_a_backup_copy_packs_small_blobs(tmp_path: Path) -> None:
    from modelyard.registry._backup import copy_blobs

    source, target = LocalStore(tmp_path / "source"), LocalStore(tmp_path / "target")
    contents = blobs(40)
    small = [source.put(data) for data in contents]
    big = source.put(os.urandom((1 << 20) + 1))
    assert copy_blobs(source, target)[0] == 41
    assert len(loose(target)) == 1 and len(packs(target)) == 1
    for digest, data in zip(small, contents, strict=True):
        assert read_bytes(target, digest) == data
    assert target.exists(big)
    assert copy_blobs(source, target) == (0, 0)
