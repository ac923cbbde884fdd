"""Garbage collection: delete the blobs that no kept manifest references."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from modelyard.store._manifests import Manifest, load_manifest
from modelyard.store._protocol import BlobInfo, BlobStore

GRACE = timedelta(hours=1)
"""Blobs younger than this are kept: a version being written has blobs but no manifest yet."""


@dataclass(slots=True)
class GarbageReport:
    """What a collection found (and, unless it was a dry run, deleted)."""

    unreferenced: list[BlobInfo] = field(default_factory=list)
    kept: int = 0
    dry_run: bool = True

    @property
    def reclaimable_bytes(self) -> int:
        """Bytes the unreferenced blobs take."""
        return sum(info.size for info in self.unreferenced)


def collect_garbage(
    store: BlobStore,
    keep: Iterable[Manifest | str],
    *,
    dry_run: bool = True,
    grace: timedelta = GRACE,
) -> GarbageReport:
    """Find, and unless `dry_run` delete, every blob that no manifest in `keep` references.

    `keep` holds manifests or their digests; the manifests' own blobs are kept too. Blobs newer
    than `grace` are spared, so a concurrent write is never cut in half.
    """
    referenced: set[str] = set()
    for item in keep:
        manifest = load_manifest(store, item) if isinstance(item, str) else item
        referenced.add(manifest.digest)
        referenced.update(manifest.blob_digests())
    cutoff = datetime.now(UTC) - grace
    report = GarbageReport(dry_run=dry_run)
    for info in store.blobs():
        if info.digest in referenced or info.modified > cutoff:
            report.kept += 1
            continue
        report.unreferenced.append(info)
    if not dry_run:
        for info in report.unreferenced:
            store.delete(info.digest)
    return report
