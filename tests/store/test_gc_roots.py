"""The registry's root set: every digest it references, found in one place."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from modelyard import Settings, Yard
from modelyard.registry import Root, registry_roots
from modelyard.store import collect_garbage, read_bytes, store_directory


def folder(root: Path, text: str) -> Path:
    root.mkdir()
    (root / "weights.bin").write_text(text)
    return root


def test_roots_name_every_reference_and_who_holds_it(tmp_path: Path) -> None:
    with Yard(Settings(home=tmp_path / "home")) as yard:
        version = yard.log_model(folder(tmp_path / "v", "v1"), name="fraud")
        bundle = yard.store.put(b'{"a signature bundle": true}')
        yard.local_registry().set_tag(version.ref, "modelyard.signature", bundle)
        artifact = store_directory(yard.store, folder(tmp_path / "a", "artifact")).digest
        dataset = store_directory(yard.store, folder(tmp_path / "d", "dataset")).digest
        with yard.start_run("train", datasets={"train": dataset, "note": "not a digest"}) as run:
            yard.registry.log_artifact(run.id, "model", artifact)
        stray = yard.store.put(b"nobody's")

        roots = set(registry_roots(yard.local_registry().database))
        assert roots == {
            Root(version.manifest_digest or "", True, "fraud:1", version.id),
            Root(bundle, False, "fraud:1 signature", version.id),
            Root(artifact, True, f"run {run.id} artifact model"),
            Root(dataset, False, f"run {run.id} dataset train"),
        }
        report = collect_garbage(
            yard.store,
            lambda: registry_roots(yard.local_registry().database),
            dry_run=False,
            grace=timedelta(0),
        )
        assert [info.digest for info in report.unreferenced] == [stray]
        yard.download(version.ref, tmp_path / "out")
        assert yard.store.exists(bundle)


def test_deleting_a_model_reports_the_bytes_only_it_had(tmp_path: Path) -> None:
    with Yard(Settings(home=tmp_path / "home")) as yard:
        shared = tmp_path / "shared"
        shared.mkdir()
        (shared / "weights.bin").write_bytes(b"w" * 5000)
        yard.log_model(shared, name="fraud")
        yard.log_model(shared, name="churn")  # the same blobs and manifest as fraud:1
        own = folder(tmp_path / "own", "fraud's own" * 100)
        second = yard.log_model(own, name="fraud")
        freed = yard.delete_model("fraud")
        assert freed is not None and freed.blobs == 2  # fraud:2's file and manifest
        manifest = read_bytes(yard.store, second.manifest_digest or "")
        assert freed.size == len("fraud's own" * 100) + len(manifest)
        report = collect_garbage(
            yard.store,
            lambda: registry_roots(yard.local_registry().database),
            dry_run=False,
            grace=timedelta(0),
        )
        assert report.reclaimable_bytes == freed.size
        yard.download("churn:1", tmp_path / "churn")
