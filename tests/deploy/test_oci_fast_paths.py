"""The shortcuts that make push and pull fast keep every check: a pulled manifest is registered
as it is only when its tensor names match the headers, and a push hint is only a hint."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard import Settings, Yard
from modelyard.deploy import names_are_true
from modelyard.deploy._oci_media import MODELYARD_MANIFEST, MODELYARD_VERSION
from modelyard.store import (
    Chunk,
    Entry,
    Manifest,
    MemoryStore,
    digest_bytes,
    load_manifest,
    store_directory,
)
from tests.deploy.conftest import OciRegistry
from tests.deploy.test_oci_attacks import Route, _artifact, _layer, fake_registry


def _safetensors(tensors: dict[str, bytes]) -> bytes:
    header, offset = {}, 0
    for name, data in tensors.items():
        header[name] = {
            "dtype": "U8",
            "shape": [len(data)],
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + b"".join(tensors.values())


def _folder(path: Path) -> Path:
    path.mkdir()
    (path / "w.safetensors").write_bytes(_safetensors({"a": b"a" * 300, "b": b"b" * 200}))
    (path / "notes.txt").write_text("fine-tuned")
    return path


def _renamed(manifest: Manifest, path: str, names: dict[str | None, str | None]) -> Manifest:
    """`manifest` with the chunks of `path` renamed by `names` (a lie about which is which)."""
    entries = []
    for entry in manifest.entries:
        if entry.path == path:
            chunks = tuple(
                Chunk(digest=c.digest, size=c.size, name=names.get(c.name, c.name))
                for c in entry.chunks
            )
            entry = entry.model_copy(update={"chunks": chunks})
        entries.append(entry)
    return Manifest(entries=tuple(entries))


@pytest.fixture
def honest(tmp_path: Path) -> tuple[MemoryStore, Manifest]:
    store = MemoryStore()
    return store, store_directory(store, _folder(tmp_path / "model"))


def test_true_names_pass_and_swapped_or_misplaced_ones_do_not(
    honest: tuple[MemoryStore, Manifest],
) -> None:
    store, manifest = honest
    assert names_are_true(store, manifest)
    assert not names_are_true(store, _renamed(manifest, "w.safetensors", {"a": "b", "b": "a"}))
    assert not names_are_true(store, _renamed(manifest, "w.safetensors", {"__header__": "x"}))
    assert not names_are_true(store, _renamed(manifest, "notes.txt", {None: "a"}))
    moved = Manifest(
        entries=tuple(
            Entry(path="w.bin", size=e.size, chunks=e.chunks) if e.path == "w.safetensors" else e
            for e in manifest.entries
        )
    )
    assert not names_are_true(store, moved)


def _pushed_artifact(store: MemoryStore, manifest: Manifest) -> dict[str, Route]:
    body = manifest.canonical()
    record = json.dumps({"name": "m", "number": 1}).encode()
    layers = [
        ({**_layer(body, "m"), "mediaType": MODELYARD_MANIFEST, "annotations": {}}, body),
        ({**_layer(record, "r"), "mediaType": MODELYARD_VERSION, "annotations": {}}, record),
    ]
    digests = {c.digest for e in manifest.entries for c in e.chunks}
    for digest in sorted(digests):
        data = b"".join(store.get(digest))
        layers.append(({**_layer(data, "x"), "annotations": {}}, data))
    return _artifact(layers)


@pytest.mark.parametrize("lie", [False, True])
def test_a_pulled_manifest_is_registered_with_the_names_its_headers_give(
    honest: tuple[MemoryStore, Manifest], tmp_path: Path, lie: bool
) -> None:
    store, manifest = honest
    served = _renamed(manifest, "w.safetensors", {"a": "b", "b": "a"}) if lie else manifest
    with (
        fake_registry(_pushed_artifact(store, served)) as (host, _),
        Yard(Settings(home=tmp_path / "home", user="ana")) as yard,
    ):
        pulled = yard.pull(f"oci://{host}/m:1", register="m")
    assert pulled.manifest_digest == served.digest  # what was pulled, stored as it came
    assert pulled.version is not None
    # Registered: the manifest logging the files gives, whatever names the registry claimed.
    assert pulled.version.manifest_digest == manifest.digest


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[Yard]:
    with Yard(Settings(home=tmp_path / "home", user="ana")) as made:
        yield made


def test_a_push_hint_that_is_garbled_stale_or_wrong_costs_only_heads(
    yard: Yard, oci_registry: OciRegistry, tmp_path: Path
) -> None:
    version = yard.log_model(str(_folder(tmp_path / "model")), name="hinted")
    repo = f"hints/{tmp_path.name.lower()}"
    first = yard.push(version.ref, oci_registry.url(repo, "v1"))
    assert first.uploaded == first.layers + 1  # a fresh repository: every blob, no HEADs
    hints = Path(yard.settings.home).expanduser() / "oci-pushed.json"
    assert first.digest in hints.read_text()
    assert yard.push(version.ref, oci_registry.url(repo, "v2")).uploaded == 0
    for garbage in ("{not json", json.dumps({"x": 1}), json.dumps([1]), ""):
        hints.write_text(garbage)
        assert yard.push(version.ref, oci_registry.url(repo, "v3")).uploaded == 0
    key = f"{oci_registry.host}/{repo}"
    hints.write_text(json.dumps({key: digest_bytes(b"never pushed")}))
    assert yard.push(version.ref, oci_registry.url(repo, "v4")).uploaded == 0

    # The registry lost one blob but still serves the hinted manifest: the manifest PUT fails,
    # the push checks each blob and sends the lost one.
    lost = sorted(
        c.digest
        for e in load_manifest(yard.store, str(version.manifest_digest)).entries
        for c in e.chunks
    )[0]
    link = oci_registry.root / "docker/registry/v2/repositories" / repo / "_layers/sha256"
    shutil.rmtree(link / lost.removeprefix("sha256:"))
    again = yard.push(version.ref, oci_registry.url(repo, "v5"))
    assert (again.uploaded, again.digest) == (1, first.digest)
