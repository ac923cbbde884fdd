from __future__ import annotations

import json

import pytest

from modelyard.errors import InvalidManifest
from modelyard.store import Chunk, Entry, Manifest, MemoryStore, load_manifest, save_manifest

DIGEST = "sha256:" + "ab" * 32


def manifest_json(*entries: dict[str, object]) -> bytes:
    return json.dumps({"format": "modelyard.manifest/1", "entries": list(entries)}).encode()


def test_canonical_form_is_stable_and_compact() -> None:
    manifest = Manifest(
        entries=(
            Entry(path="a.bin", size=3, chunks=(Chunk(digest=DIGEST, size=3),)),
            Entry(path="d", type="dir", mode=0o755),
        )
    )
    text = manifest.canonical()
    assert b" " not in text
    assert Manifest.parse(text) == manifest
    assert Manifest.parse(text).digest == manifest.digest
    assert manifest.size == 3
    assert list(manifest.blob_digests()) == [DIGEST]


def test_save_and_load_round_trip() -> None:
    store = MemoryStore()
    manifest = Manifest(entries=(Entry(path="x", size=0),))
    assert save_manifest(store, manifest) == manifest.digest
    assert load_manifest(store, manifest.digest) == manifest


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/etc/passwd", "must be relative"),
        ("../escape", "must not contain"),
        ("a/../../b", "must not contain"),
        ("a//b", "must not contain"),
        ("./a", "must not contain"),
        ("a\\b", "must be relative"),
        ("", "must be relative"),
    ],
)
def test_unsafe_paths_are_refused(path: str, problem: str) -> None:
    with pytest.raises(InvalidManifest, match=problem):
        Manifest.parse(manifest_json({"path": path}))


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside", "a/../../outside"])
def test_escaping_symlinks_are_refused(target: str) -> None:
    with pytest.raises(InvalidManifest, match="points outside"):
        Manifest.parse(manifest_json({"path": "link", "type": "symlink", "target": target}))


def test_symlink_within_folder_is_accepted() -> None:
    manifest = Manifest.parse(
        manifest_json({"path": "d/link", "type": "symlink", "target": "../file"})
    )
    assert manifest.entries[0].target == "../file"


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ([{"path": "b"}, {"path": "a"}], "sorted"),
        ([{"path": "a"}, {"path": "a"}], "sorted"),
        ([{"path": "f", "size": 2}], "do not add up"),
        ([{"path": "d", "type": "dir", "size": 1}], "only files"),
        ([{"path": "l", "type": "symlink"}], "has a target"),
        ([{"path": "f", "target": "x"}], "has a target"),
        ([{"path": "l", "type": "symlink", "target": "d"}, {"path": "l/x"}], "lies under"),
        ([{"path": "f", "chunks": [{"digest": "md5:00", "size": 0}]}], "64 lowercase hex"),
        ([{"path": "f", "mode": 4095}], "less than or equal"),
        ([{"path": "f", "extra": 1}], "Extra inputs"),
    ],
)
def test_malformed_manifests_name_the_problem(
    entries: list[dict[str, object]], problem: str
) -> None:
    with pytest.raises(InvalidManifest, match=problem):
        Manifest.parse(manifest_json(*entries))


def test_not_json_at_all() -> None:
    with pytest.raises(InvalidManifest, match="invalid manifest"):
        Manifest.parse(b"\x00 not json")
