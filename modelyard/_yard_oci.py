"""`Yard.push` and `Yard.pull`: model versions as OCI artifacts in any OCI registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.errors import ConfigurationError

if TYPE_CHECKING:
    from modelyard.deploy import PulledArtifact, PushResult, VersionRecord
    from modelyard.registry import ModelVersion, RegistryAPI
    from modelyard.settings import Settings
    from modelyard.store import BlobStore, Manifest


@dataclass(frozen=True)
class PullResult:
    """What `Yard.pull` did: the pinned `reference` and OCI `digest`, the stored
    `manifest_digest`, the registered `version` (with `register`), the restored `output`
    folder, the pushed version `record` (None for foreign artifacts) and what was downloaded."""

    reference: str
    digest: str
    manifest_digest: str
    version: ModelVersion | None
    output: Path | None
    record: VersionRecord | None
    downloaded: int
    downloaded_bytes: int


class _Host(Protocol):
    settings: Settings

    @property
    def store(self) -> BlobStore: ...

    @property
    def registry(self) -> RegistryAPI: ...

    def get_version(self, ref: str) -> ModelVersion: ...

    def log_model(
        self,
        model: Any,
        *,
        name: str,
        flavor: str | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
        alias: str | None = None,
        description: str = "",
    ) -> ModelVersion: ...


class OciMethods:
    """`push`/`pull`, mixed into `Yard` (which provides the store, settings and registry)."""

    def push(
        self: _Host,
        ref: str,
        target: str,
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> PushResult:
        """Push version `ref` to `target` (`oci://HOST/REPO:TAG`): one OCI manifest, each stored
        blob one layer; blobs the registry has already are not sent again.

        >>> yard.push("fraud@production", "oci://registry.example.com/models/fraud:v3").digest
        'sha256:…'
        """
        from modelyard.deploy import push_version

        user, secret = _credentials(self.settings, username, password)
        hints = _PushHints(self.settings.home, target, self.settings.oci_plain_http)
        result = push_version(
            self.store, self.get_version(ref), target,
            username=user, password=secret, plain_http=self.settings.oci_plain_http,
            known=hints.last(),
        )  # fmt: skip
        hints.remember(result.digest)
        return result

    def pull(
        self: _Host,
        source: str,
        *,
        register: str | None = None,
        alias: str | None = None,
        output: str | Path | None = None,
        flavor: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> PullResult:
        """Pull `source` (`oci://HOST/REPO:TAG` or `@sha256:…`) into the store, every digest
        verified. `register=NAME` registers it as a new version of NAME (moving `alias` to it);
        `output=DIR` restores its files there. Params, metrics, tags and description of a
        modelyard push are copied as data; `flavor` names a foreign artifact's flavor.

        >>> yard.pull("oci://registry.example.com/models/fraud:v3", register="fraud")
        """
        from modelyard._scratch import scratch_folder
        from modelyard.deploy import pull_artifact
        from modelyard.security import SIGNATURE_TAG
        from modelyard.store import guard_writes, restore_directory

        if alias is not None and register is None:
            raise ConfigurationError("--alias needs --register NAME: an alias names a version")
        target = Path(output) if output is not None else None
        if (
            target is not None
            and target.exists()
            and (not target.is_dir() or any(target.iterdir()))
        ):
            raise ConfigurationError(f"{target} already exists and is not an empty folder")
        user, secret = _credentials(self.settings, username, password)
        version = None
        with guard_writes(self.store), scratch_folder(self.settings.home, prefix="pull") as scratch:
            pulled = pull_artifact(
                source, self.store, username=user, password=secret,
                plain_http=self.settings.oci_plain_http, scratch=scratch,
            )  # fmt: skip
            if register is not None:
                version = _register_as_pulled(
                    self, pulled, register, flavor=flavor, alias=alias, scratch=scratch
                )
            if register is not None and version is None:
                folder = restore_directory(self.store, pulled.manifest_digest, scratch / "model")
                _write_signature(scratch / "model", pulled.signature, folder)
                record = pulled.record
                # A signature tag is a pointer into the pushing side's store, not data: the
                # bundle itself came as a layer and is attached as log_model attaches model.sig.
                tags = {
                    k: v for k, v in (record.tags if record else {}).items() if k != SIGNATURE_TAG
                }
                tags.setdefault("oci.source", pulled.reference)
                version = self.log_model(
                    str(scratch / "model"), name=register, flavor=flavor, alias=alias,
                    params=record.params if record else None,
                    metrics=record.metrics if record else None,
                    tags=tags, description=record.description if record else "",
                )  # fmt: skip
        if target is not None:
            manifest = restore_directory(self.store, pulled.manifest_digest, target)
            _write_signature(target, pulled.signature, manifest)
        return PullResult(
            reference=pulled.reference,
            digest=pulled.digest,
            manifest_digest=pulled.manifest_digest,
            version=version,
            output=target,
            record=pulled.record,
            downloaded=pulled.downloaded,
            downloaded_bytes=pulled.downloaded_bytes,
        )


class _PushHints:
    """The last manifest pushed to each repository, kept in `<home>/oci-pushed.json`: the next
    push there asks the registry for it (one GET instead of a HEAD per unchanged layer). Only a
    hint: a missing, stale or garbled file costs HEADs, never correctness."""

    LIMIT = 1 << 20
    KEEP = 1000

    def __init__(self, home: Path, target: str, plain_http: list[str]) -> None:
        from modelyard.deploy import parse_reference

        ref = parse_reference(target, plain_http=plain_http)
        self.key = f"{ref.host}/{ref.repository}"
        self.file = Path(home).expanduser() / "oci-pushed.json"

    def _read(self) -> dict[str, str]:
        import json

        try:
            with open(self.file, "rb") as handle:
                data = json.loads(handle.read(self.LIMIT + 1)[: self.LIMIT])
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def last(self) -> str | None:
        """The digest pushed last to this repository, if it looks like one."""
        from modelyard.errors import InvalidReference
        from modelyard.store import check_digest

        found = self._read().get(self.key)
        try:
            return check_digest(found) if found else None
        except InvalidReference:
            return None

    def remember(self, digest: str) -> None:
        """Record `digest` for this repository (atomically; a failure only loses the hint)."""
        import json
        import os
        import tempfile

        hints = self._read()
        hints.pop(self.key, None)
        hints[self.key] = digest  # newest last: the oldest are dropped first
        kept = dict(list(hints.items())[-self.KEEP :])
        try:
            fd, temp = tempfile.mkstemp(dir=self.file.parent, prefix=".oci-pushed.")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(kept))
            os.replace(temp, self.file)
        except OSError:
            Path(temp).unlink(missing_ok=True)


INFO_LIMIT = 16 << 20
"""Largest `modelyard.json` read from a pulled manifest (they are a few KiB)."""


def _register_as_pulled(
    host: _Host,
    pulled: PulledArtifact,
    name: str,
    *,
    flavor: str | None,
    alias: str | None,
    scratch: Path,
) -> ModelVersion | None:
    """Register the pulled manifest itself, when it is what logging its restored files would
    register: a modelyard push whose tensor names match its headers (`names_are_true`), with
    no `MLmodel` to convert nor `model.sig` to detach, into an embedded registry. That skips
    writing every byte to a folder and cutting and hashing it again. None: log the folder."""
    from modelyard.deploy import names_are_true
    from modelyard.flavors import MODEL_FILE, read_info
    from modelyard.security import SIGNATURE_FILE, SIGNATURE_TAG
    from modelyard.store import load_manifest, read_bytes

    record = pulled.record
    manifest = load_manifest(host.store, pulled.manifest_digest)
    paths = {entry.path: entry for entry in manifest.entries}
    info = paths.get(MODEL_FILE)
    if (
        record is None
        or SIGNATURE_FILE in paths
        or "MLmodel" in paths  # MLflow's: logging may convert it
        or (info is not None and (info.type != "file" or info.size > INFO_LIMIT))
        or not names_are_true(host.store, manifest)
    ):
        return None
    with host.registry.staging(host.store) as target:
        if target is not host.store:  # over HTTP the blobs travel with the folder's upload
            return None
        signature = None
        if info is not None:  # flavor and signature as `log_model` reads them
            (scratch / "info").mkdir()
            data = b"".join(read_bytes(host.store, chunk.digest) for chunk in info.chunks)
            (scratch / "info" / MODEL_FILE).write_bytes(data)
            described = read_info(scratch / "info")
            flavor = described.flavor
            signature = described.signature.to_json() if described.signature else None
        tags: dict[str, Any] = {k: v for k, v in record.tags.items() if k != SIGNATURE_TAG}
        tags.setdefault("oci.source", pulled.reference)
        if pulled.signature is not None:  # attached as `log_model` attaches a `model.sig`
            tags[SIGNATURE_TAG] = host.store.put(pulled.signature)
        return host.registry.create_version(
            name, manifest_digest=pulled.manifest_digest, flavor=flavor, signature=signature,
            params=record.params, metrics=record.metrics, tags=tags,
            description=record.description, alias=alias,
        )  # fmt: skip


def _write_signature(folder: Path, bundle: bytes | None, manifest: Manifest) -> None:
    """`model.sig` beside the files, as `download` writes it (unless the files have one)."""
    from modelyard.security import SIGNATURE_FILE

    if bundle is not None and all(entry.path != SIGNATURE_FILE for entry in manifest.entries):
        (folder / SIGNATURE_FILE).write_bytes(bundle)


def _credentials(
    settings: Settings, username: str | None, password: str | None
) -> tuple[str | None, str | None]:
    """The caller's credentials, else the settings' (`MODELYARD_OCI_USERNAME`/`_PASSWORD`)."""
    if username is not None:
        return username, password
    secret = settings.oci_password
    return settings.oci_username, secret.get_secret_value() if secret is not None else None
