"""Sign a model folder, and verify one, in the OpenSSF model-signing format (elliptic-curve keys).

The signature is the Sigstore bundle `model_signing` writes (`model.sig` by convention): a DSSE
envelope over an in-toto statement that lists every file of the folder with its SHA-256. It is
made and checked by the `model_signing` package itself, so a folder signed here verifies with
`model_signing verify key` and the other way round. `model.sig` at the top of the folder is never
part of what is signed.

Pure: folders and bytes in, bytes or a typed error out; where a version's signature is kept is
the registry's and the client's business.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard._imports import require
from modelyard.errors import ConfigurationError, SignatureInvalid

SIGNATURE_FILE = "model.sig"
SIGNATURE_TAG = "modelyard.signature"
"""The version tag naming the blob of its signature bundle (a pointer, always re-verified)."""
"""Where `model_signing` puts a folder's signature, and where a downloaded version gets it."""

MAX_SIGNATURE_BYTES = 1 << 20
"""A bundle is a few KiB per hundred files; anything past this is refused unread."""


@dataclass(frozen=True, slots=True)
class Verified:
    """A signature that verified: the trusted key that made it, and the files it covers."""

    key: Path
    files: tuple[str, ...]


def sign_folder(
    folder: Path, *, private_key: Path, password: str | None = None, scratch: Path | None = None
) -> bytes:
    """Sign every file under `folder` (but a top-level `model.sig`) with an EC private key (PEM)
    and return the signature bundle (JSON bytes, as `model_signing` writes `model.sig`). The
    bundle is written in a folder made in `scratch` (default: the system's temporary directory).

    >>> bundle = sign_folder(Path("model/"), private_key=Path("signing.pem"))
    """
    model_signing = require("model_signing", extra="sign")
    _check_key_file(private_key, what="private", password=password)
    with tempfile.TemporaryDirectory(prefix="modelyard-sign-", dir=scratch) as private:
        target = Path(private) / SIGNATURE_FILE
        try:
            secret = None if password is None else password.encode()  # str in its annotation,
            config = model_signing.signing.Config().use_elliptic_key_signer(  # bytes in use
                private_key=private_key, password=secret
            )
            config.set_hashing_config(_hashing(model_signing, folder)).sign(folder, target)
        except (ValueError, TypeError) as error:  # a key that is not EC, or a wrong password
            raise ConfigurationError(f"cannot sign with {private_key}: {error}") from None
        return target.read_bytes()


def verify_folder(
    folder: Path,
    signature: bytes,
    *,
    trusted_keys: Sequence[Path],
    ref: str,
    scratch: Path | None = None,
) -> Verified:
    """Check that `signature` was made by one of `trusted_keys` (EC public keys, PEM) over
    exactly the files under `folder` (a top-level `model.sig` aside); `SignatureInvalid` names
    the files that differ, or says that no trusted key made it. The bundle is written to a
    folder made in `scratch` (default: the system's temporary directory) for the library.

    >>> verify_folder(Path("model/"), bundle, trusted_keys=[Path("team.pub")], ref="fraud:3")
    """
    model_signing = require("model_signing", extra="sign")
    if not trusted_keys:
        raise ConfigurationError(
            "no trusted public keys to verify with: set MODELYARD_TRUSTED_KEYS or pass --key"
        )
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise SignatureInvalid(ref, reason=f"the signature is over {MAX_SIGNATURE_BYTES} bytes")
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="modelyard-verify-", dir=scratch) as private:
        bundle = Path(private) / SIGNATURE_FILE
        bundle.write_bytes(signature)
        for key in trusted_keys:
            _check_key_file(key, what="public")
            try:
                model_signing.verifying.Config().use_elliptic_key_verifier(public_key=key).verify(
                    folder, bundle
                )
            except Exception as error:  # the library raises whatever its parsers raise
                mismatch = _mismatch(str(error))
                if mismatch:  # a trusted key made it, over other files: no other key helps
                    raise SignatureInvalid(ref, reason=mismatch) from None
                problems.append(f"{key.name}: {_short(error)}")
                continue
            return Verified(key=key, files=_covered(folder, signature, ref=ref))
    raise SignatureInvalid(
        ref, reason="it was not made by any trusted key (" + "; ".join(problems) + ")"
    )


def _hashing(model_signing: Any, folder: Path) -> Any:
    links = any(path.is_symlink() for path in folder.rglob("*"))
    return (
        model_signing.hashing.Config()
        .set_ignored_paths(paths=[SIGNATURE_FILE])
        .set_allow_symlinks(links)
    )


def _check_key_file(key: Path, *, what: str, password: str | None = None) -> None:
    """Refuse, by name, a key file that is absent or not an elliptic-curve key in PEM."""
    if not key.is_file():
        raise ConfigurationError(f"the {what} key {key} is not a file")
    serialization = require("cryptography.hazmat.primitives.serialization", extra="sign")
    ec = require("cryptography.hazmat.primitives.asymmetric.ec", extra="sign")
    try:
        if what == "private":
            secret = None if password is None else password.encode()
            loaded = serialization.load_pem_private_key(key.read_bytes(), password=secret)
        else:
            loaded = serialization.load_pem_public_key(key.read_bytes())
    except (ValueError, TypeError) as error:
        raise ConfigurationError(f"cannot read the {what} key {key}: {error}") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        raise ConfigurationError(
            f"the {what} key {key} is not an elliptic-curve key (model signing uses EC keys, "
            "such as `openssl ecparam -name prime256v1 -genkey`)"
        )


def _mismatch(message: str) -> str:
    """The files a 'Signature mismatch' error of `model_signing` names, as a sentence."""
    if not message.startswith("Signature mismatch"):
        return ""
    changed = re.findall(r"Hash mismatch for '([^']+)'", message)
    extra = re.findall(r"Extra files found in model '[^']*': ([^'\"\]]+)", message)
    missing = re.findall(r"Missing files in model '[^']*': ([^'\"\]]+)", message)
    parts = [f"changed: {', '.join(changed)}"] if changed else []
    parts += [f"not signed: {names.strip()}" for names in extra]
    parts += [f"missing: {names.strip()}" for names in missing]
    return "files differ from what was signed (" + "; ".join(parts or [message]) + ")"


def _short(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "…"


def _covered(folder: Path, signature: bytes, *, ref: str) -> tuple[str, ...]:
    """The files the (verified) statement lists; any other file in `folder`, even at a path
    the signer chose to ignore (`.git*`), is refused: nothing unsigned reaches a loader."""
    statement = json.loads(base64.b64decode(json.loads(signature)["dsseEnvelope"]["payload"]))
    signed = {resource["name"] for resource in statement["predicate"]["resources"]}
    present = {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if not path.is_dir() or path.is_symlink()
    }
    present.discard(SIGNATURE_FILE)
    unsigned = sorted(present - signed)
    if unsigned:
        raise SignatureInvalid(
            ref, reason=f"files differ from what was signed (not signed: {', '.join(unsigned)})"
        )
    return tuple(sorted(signed))
