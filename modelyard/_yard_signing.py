"""Signed versions: where `Yard` keeps a version's signature, and when it checks one.

A version is immutable, so a signature made after registration cannot be one of its files: the
bundle (`model.sig`, in the OpenSSF model-signing format) is a blob in the version's store, and
the version's tag `modelyard.signature` holds its digest. The tag is only a pointer: every check
downloads the bundle and verifies it, with the operator's trusted public keys, against the very
files that are loaded. A folder logged with a `model.sig` of its own (signed by the
`model_signing` tool) keeps it the same way, outside the version's files; a download puts it back.

A mixin, so that `_yard.py` stays about the registry and the store; its methods need only what
the `_Host` protocol names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelyard._scratch import scratch_folder
from modelyard.errors import (
    BlobNotFound,
    ConfigurationError,
    InvalidReference,
    SignatureInvalid,
    SignatureMissing,
)
from modelyard.security import (
    MAX_SIGNATURE_BYTES,
    SIGNATURE_FILE,
    SIGNATURE_TAG,
    Verified,
    sign_folder,
    verify_folder,
)
from modelyard.store import (
    BlobStore,
    Manifest,
    check_digest,
    guard_writes,
    restore_directory,
    save_manifest,
)

if TYPE_CHECKING:
    from modelyard._remote import HttpRegistry
    from modelyard.registry import ModelVersion, Registry
    from modelyard.settings import Settings

"""The version tag that points at the signature bundle's blob (`sha256:…`)."""

log = logging.getLogger("modelyard.signing")


class _Host(Protocol):
    settings: Settings

    @property
    def registry(self) -> Registry | HttpRegistry: ...

    @property
    def store(self) -> BlobStore: ...

    def get_version(self, ref: str) -> ModelVersion: ...

    def model_folder(self, version: ModelVersion) -> Path: ...


class Signing:
    """`Yard.sign` and `Yard.verify`, and the checks `load_model`, `transition` and the
    `signed` gate make."""

    def sign(
        self: _Host, ref: str, *, key: str | Path | None = None, password: str | None = None
    ) -> ModelVersion:
        """Sign a version's files with an EC private key (PEM; default `settings.signing_key`)
        and keep the signature with the version (its tag `modelyard.signature`).

        >>> yard.sign("fraud:3", key="signing.pem")
        """
        private_key = Path(key) if key is not None else self.settings.signing_key
        if private_key is None:
            raise ConfigurationError("no signing key: pass --key or set MODELYARD_SIGNING_KEY")
        if password is None and self.settings.signing_key_password is not None:
            password = self.settings.signing_key_password.get_secret_value()
        version = self.get_version(ref)
        with scratch_folder(self.settings.home, prefix="sign") as scratch:
            folder = scratch / "model"
            restore_directory(self.store, _manifest_of(version), folder)  # verified on the way
            bundle = sign_folder(folder, private_key=private_key, password=password,
                                 scratch=scratch)  # fmt: skip
        with guard_writes(self.store):  # gc waits until the tag names the bundle
            digest = self.store.put(bundle)
            return self.registry.set_tag(version.ref, SIGNATURE_TAG, digest)

    def verify(self: _Host, ref: str, *, keys: list[Path] | None = None) -> Verified:
        """Check a version's signature with trusted public keys (default
        `settings.trusted_keys`) against its files; `SignatureMissing` or `SignatureInvalid`
        (naming the files that differ) when it does not hold.

        >>> yard.verify("fraud@production").key
        PosixPath('/etc/modelyard/team.pub')
        """
        version = self.get_version(ref)
        folder = self.model_folder(version)
        return _check(self, version, folder, keys or self.settings.trusted_keys)

    def check_signature(self: _Host, version: ModelVersion) -> None:
        """Refuse `version` (`SignatureMissing`, `SignatureInvalid`) if the settings require a
        signature (`require_signature`) and its files do not verify with `trusted_keys`; what
        `load_model` checks, for a caller (serving) that must check before anything else runs.
        """
        if self.settings.require_signature:  # else not even the cache is opened
            check_policy(self, version, self.model_folder(version))


def check_policy(host: _Host, version: ModelVersion, folder: Path) -> None:
    """Refuse to load `folder` (the files of `version`) unless its signature verifies, when the
    operator's settings require signatures."""
    if host.settings.require_signature:
        _check(host, version, folder, host.settings.trusted_keys)


def signature_problem(host: _Host, version: ModelVersion) -> str:
    """Why `version` does not pass a `signed` gate ('' when it does): checked here, with this
    process's trusted keys and its store, never taken from the tag alone."""
    try:
        _check(host, version, host.model_folder(version), host.settings.trusted_keys)
    except SignatureMissing:
        return "a signature by a trusted key is required; the version is not signed"
    except SignatureInvalid as error:
        return f"a signature by a trusted key is required; {error.reason}"
    except ConfigurationError as error:
        return f"a signature by a trusted key is required, but {error}"
    return ""


def sign_on_promotion(host: _Host, version: ModelVersion) -> ModelVersion:
    """Sign a version that just entered one of `settings.signing_states` with
    `settings.signing_key`, unless it already carries a signature that verifies with the
    trusted keys."""
    settings = host.settings
    if settings.signing_key is None or version.state.value not in settings.signing_states:
        return version
    if SIGNATURE_TAG in version.tags and settings.trusted_keys:
        try:
            _check(host, version, host.model_folder(version), settings.trusted_keys)
            return version
        except SignatureInvalid:
            pass  # signed by someone else, or badly: sign it with the operator's key
    return Signing.sign(host, version.ref)


def write_signature(host: _Host, version: ModelVersion, folder: Path) -> None:
    """Put the version's signature bundle, if it has one, at `folder/model.sig` (so that
    `model_signing verify key FOLDER --signature FOLDER/model.sig` checks a download)."""
    digest = version.tags.get(SIGNATURE_TAG)
    if digest is None:
        return
    try:
        bundle = _bundle(host.store, version, str(digest))
    except SignatureInvalid as error:  # a bad pointer must not fail the download itself
        log.warning("%s: no model.sig written: %s", version.ref, error.reason)
        return
    (folder / SIGNATURE_FILE).write_bytes(bundle)


def detach_signature(
    store: BlobStore, manifest: Manifest, folder: Path, tags: Mapping[str, Any] | None
) -> tuple[str, Mapping[str, Any] | None]:
    """The digest of `manifest` without a top-level `model.sig`, and `tags` pointing at that
    file's bytes as the signature (the manifest and tags unchanged when there is none)."""
    entry = next((e for e in manifest.entries if e.path == SIGNATURE_FILE), None)
    if entry is None or entry.type != "file":
        return manifest.digest, tags
    digest = store.put((folder / SIGNATURE_FILE).read_bytes())
    kept = Manifest(entries=tuple(e for e in manifest.entries if e is not entry))
    return save_manifest(store, kept), {**(tags or {}), SIGNATURE_TAG: digest}


def _check(host: _Host, version: ModelVersion, folder: Path, keys: list[Path]) -> Verified:
    digest = version.tags.get(SIGNATURE_TAG)
    if digest is None:
        raise SignatureMissing(version.ref)
    bundle = _bundle(host.store, version, str(digest))
    with scratch_folder(host.settings.home, prefix="verify") as scratch:
        return verify_folder(folder, bundle, trusted_keys=keys, ref=version.ref, scratch=scratch)


def _bundle(store: BlobStore, version: ModelVersion, digest: str) -> bytes:
    """The bundle the tag points at, read with a size cap (a tag may point at any blob)."""
    try:
        check_digest(digest)
        pieces: list[bytes] = []
        size = 0
        for piece in store.get(digest):
            size += len(piece)
            if size > MAX_SIGNATURE_BYTES:
                raise SignatureInvalid(
                    version.ref, reason=f"its signature blob is over {MAX_SIGNATURE_BYTES} bytes"
                )
            pieces.append(piece)
    except BlobNotFound:
        raise SignatureInvalid(
            version.ref, reason=f"its signature blob {digest} is not in the store"
        ) from None
    except InvalidReference:
        raise SignatureInvalid(version.ref, reason=f"{digest!r} is not a blob digest") from None
    return b"".join(pieces)


def _manifest_of(version: ModelVersion) -> str:
    if version.manifest_digest is None:
        raise ConfigurationError(f"{version.ref} has no stored files to sign")
    return version.manifest_digest
