from __future__ import annotations

from pathlib import Path

from modelyard.registry import Registry
from modelyard.store import MemoryStore, load_manifest, store_directory
from tests.store.test_chunking import safetensors_bytes


def test_diff_of_metadata_only(registry: Registry) -> None:
    registry.create_version("fraud", params={"lr": 0.1, "depth": 6}, metrics={"auc": 0.9})
    registry.create_version(
        "fraud", params={"lr": 0.2, "depth": 6, "seed": 1}, metrics={"auc": 0.93},
        tags={"team": "risk"}, signature={"inputs": []},
    )  # fmt: skip
    diff = registry.diff("fraud:1", "fraud:2")
    assert (diff.a, diff.b) == ("fraud:1", "fraud:2")
    assert [(c.key, c.a, c.b) for c in diff.params] == [("lr", "0.1", "0.2"), ("seed", None, "1")]
    assert [(c.key, c.a, c.b) for c in diff.metrics] == [("auc", 0.9, 0.93)]
    assert [c.key for c in diff.tags] == ["team"]
    assert diff.signature_changed and not diff.identical
    assert registry.diff("fraud:1", "fraud:1").identical


def test_diff_of_files_names_changed_tensors(registry: Registry, tmp_path: Path) -> None:
    store = MemoryStore()
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, tensors, extra in [
        (a, {"w": b"\x01" * 64, "b": b"\x02" * 8, "old": b"\x00" * 4}, "notes.txt"),
        (b, {"w": b"\x09" * 64, "b": b"\x02" * 8, "new": b"\x00" * 4}, "readme.txt"),
    ]:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(safetensors_bytes(tensors))
        (folder / extra).write_text("x")
        (folder / "config.json").write_text(folder.name)
        manifest = store_directory(store, folder)
        registry.create_version("fraud", manifest_digest=manifest.digest)
    diff = registry.compare("fraud:1", "fraud:2", manifests=lambda d: load_manifest(store, d))
    assert diff.files_added == ["readme.txt"]
    assert diff.files_removed == ["notes.txt"]
    by_path = {change.path: change for change in diff.files_changed}
    assert sorted(by_path) == ["config.json", "model.safetensors"]
    tensors = by_path["model.safetensors"]
    assert tensors.tensors_changed == ["w"]
    assert tensors.tensors_added == ["new"] and tensors.tensors_removed == ["old"]
    assert 64 <= tensors.changed_bytes < tensors.size_b
