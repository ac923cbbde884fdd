"""Everything in the store the registry references: the root set of garbage collection.

One place knows every column that holds a digest, so a new one is added here or nowhere:

- `versions.manifest_digest`: each version's files (reference profiles, explanations,
  optimisation reports and the model card are files in that manifest);
- the version tag `modelyard.signature`: the signature bundle's blob;
- `runs.artifacts`: folders logged with `log_artifact` (tuning trials' models among them);
- `runs.datasets`: digests of the data a run used, kept when they name stored bytes.

Prediction logs and feedback are JSON lines under the home folder, not in the store.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from modelyard.registry._database import Database
from modelyard.registry._tables import models, runs, versions
from modelyard.security import SIGNATURE_TAG
from modelyard.store import BlobStore, UniqueBytes, unique_bytes

"""The version tag holding the signature bundle's blob digest (see `modelyard._yard_signing`)."""

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Root:
    """A digest the registry references, and what holds it.

    `manifest` says the digest names a manifest, whose blobs are referenced too; `version_id`
    is set for a version's own digests, so a deletion can tell which bytes were only its.
    """

    digest: str
    manifest: bool
    holder: str
    version_id: str | None = None


def registry_roots(database: Database) -> Iterator[Root]:
    """Every digest the registry references, read in one snapshot of the database.

    >>> digests = {root.digest for root in registry_roots(registry.database)}
    """
    with database.read() as connection:
        rows = connection.execute(
            select(
                versions.c.id,
                versions.c.number,
                versions.c.manifest_digest,
                versions.c.tags,
                models.c.name,
            ).join(models, models.c.id == versions.c.model_id)
        ).all()
        run_rows = connection.execute(select(runs.c.id, runs.c.artifacts, runs.c.datasets)).all()
    for version_id, number, manifest_digest, tags, name in rows:
        yield from _version_roots(version_id, f"{name}:{number}", manifest_digest, tags)
    for run_id, artifacts, datasets in run_rows:
        for key, digest in _digests(artifacts):
            yield Root(digest, manifest=True, holder=f"run {run_id} artifact {key}")
        for key, digest in _digests(datasets):
            yield Root(digest, manifest=False, holder=f"run {run_id} dataset {key}")


def _version_roots(
    version_id: str, ref: str, manifest_digest: str | None, tags: Any
) -> Iterator[Root]:
    if manifest_digest:
        yield Root(manifest_digest, manifest=True, holder=ref, version_id=version_id)
    bundle = tags.get(SIGNATURE_TAG) if isinstance(tags, Mapping) else None
    if isinstance(bundle, str) and _DIGEST.fullmatch(bundle):
        yield Root(bundle, manifest=False, holder=f"{ref} signature", version_id=version_id)


def _digests(mapping: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(mapping, Mapping):
        return
    for key, value in mapping.items():
        if isinstance(value, str) and _DIGEST.fullmatch(value):
            yield str(key), value


def bytes_only_in(
    database: Database, store: BlobStore, *, version_ids: Collection[str]
) -> UniqueBytes:
    """What the versions `version_ids` alone reference: the blobs and bytes that deleting them
    (and then `modelyard store gc`) frees."""
    removed: list[Root] = []
    kept: list[Root] = []
    for root in registry_roots(database):
        (removed if root.version_id in version_ids else kept).append(root)
    return unique_bytes(store, removed=removed, kept=kept)
