"""Signing and verifying a folder in the OpenSSF model-signing format (modelyard.security)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from modelyard.errors import ConfigurationError, SignatureInvalid
from modelyard.security import SIGNATURE_FILE, sign_folder, verify_folder


def make_keys(folder: Path, name: str = "team") -> tuple[Path, Path]:
    """A fresh P-256 key pair as PEM files: (private, public)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return make_keys(tmp_path / "keys")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "data").mkdir(parents=True)
    (root / "weights.bin").write_bytes(b"w" * 1000)
    (root / "data" / "vocab.txt").write_text("a\nb\n")
    return root


def test_round_trip(model: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    bundle = sign_folder(model, private_key=private)
    assert json.loads(bundle)["mediaType"].startswith("application/vnd.dev.sigstore.bundle")
    verified = verify_folder(model, bundle, trusted_keys=[public], ref="fraud:1")
    assert verified.key == public
    assert verified.files == ("data/vocab.txt", "weights.bin")


def test_a_changed_file_is_named(model: Path, keys: tuple[Path, Path]) -> None:
    bundle = sign_folder(model, private_key=keys[0])
    (model / "weights.bin").write_bytes(b"x" + b"w" * 999)
    with pytest.raises(SignatureInvalid, match=r"changed: weights\.bin") as caught:
        verify_folder(model, bundle, trusted_keys=[keys[1]], ref="fraud:1")
    assert caught.value.status_code == 422 and "fraud:1" in str(caught.value)


def test_added_and_missing_files_are_named(model: Path, keys: tuple[Path, Path]) -> None:
    bundle = sign_folder(model, private_key=keys[0])
    (model / "extra.py").write_text("import os\n")
    with pytest.raises(SignatureInvalid, match=r"not signed: extra\.py"):
        verify_folder(model, bundle, trusted_keys=[keys[1]], ref="fraud:1")
    (model / "extra.py").unlink()
    (model / "data" / "vocab.txt").unlink()
    with pytest.raises(SignatureInvalid, match=r"missing: data/vocab\.txt"):
        verify_folder(model, bundle, trusted_keys=[keys[1]], ref="fraud:1")


def test_files_at_paths_the_signer_ignored_are_refused_too(
    model: Path, keys: tuple[Path, Path]
) -> None:
    # model_signing skips .git* paths when hashing; nothing unsigned may reach a loader anyway.
    bundle = sign_folder(model, private_key=keys[0])
    (model / ".gitattributes").write_text("* binary\n")
    with pytest.raises(SignatureInvalid, match=r"not signed: \.gitattributes"):
        verify_folder(model, bundle, trusted_keys=[keys[1]], ref="fraud:1")


def test_model_sig_in_the_folder_is_not_signed_nor_checked(
    model: Path, keys: tuple[Path, Path]
) -> None:
    (model / SIGNATURE_FILE).write_text("an old signature")
    bundle = sign_folder(model, private_key=keys[0])
    (model / SIGNATURE_FILE).write_bytes(bundle)
    assert SIGNATURE_FILE not in verify_folder(model, bundle, trusted_keys=[keys[1]], ref="m").files


def test_a_key_that_is_not_trusted_is_refused(
    model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    _, other = make_keys(tmp_path / "other", "other")
    bundle = sign_folder(model, private_key=keys[0])
    with pytest.raises(SignatureInvalid, match="not made by any trusted key"):
        verify_folder(model, bundle, trusted_keys=[other], ref="fraud:1")
    # any one of several trusted keys will do
    verified = verify_folder(model, bundle, trusted_keys=[other, keys[1]], ref="fraud:1")
    assert verified.key == keys[1]


def test_a_forged_key_hint_does_not_help(
    model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    # Signed by an attacker's key, but claiming (by its hint) to be the trusted key's.
    trusted = json.loads(sign_folder(model, private_key=keys[0]))
    attacker, _ = make_keys(tmp_path / "attacker", "attacker")
    forged = json.loads(sign_folder(model, private_key=attacker))
    forged["verificationMaterial"] = trusted["verificationMaterial"]
    with pytest.raises(SignatureInvalid, match="not made by any trusted key"):
        verify_folder(model, json.dumps(forged).encode(), trusted_keys=[keys[1]], ref="m")


def test_garbage_and_oversized_signatures_are_refused(model: Path, keys: tuple[Path, Path]) -> None:
    for garbage in (b"", b"{}", b"not json", json.dumps({"dsseEnvelope": 1}).encode()):
        with pytest.raises(SignatureInvalid):
            verify_folder(model, garbage, trusted_keys=[keys[1]], ref="m")
    with pytest.raises(SignatureInvalid, match="over 1048576 bytes"):
        verify_folder(model, b" " * (2 << 20), trusted_keys=[keys[1]], ref="m")


def test_keys_are_checked(model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    bundle = sign_folder(model, private_key=keys[0])
    with pytest.raises(ConfigurationError, match="no trusted public keys"):
        verify_folder(model, bundle, trusted_keys=[], ref="m")
    with pytest.raises(ConfigurationError, match="is not a file"):
        verify_folder(model, bundle, trusted_keys=[tmp_path / "nope.pub"], ref="m")
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ConfigurationError, match="is not an elliptic-curve key"):
        sign_folder(model, private_key=rsa_key)


def test_an_encrypted_private_key_needs_its_password(model: Path, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    private = tmp_path / "locked.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    public = tmp_path / "locked.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(ConfigurationError, match="cannot read the private key"):
        sign_folder(model, private_key=private)
    with pytest.raises(ConfigurationError, match="cannot read the private key"):
        sign_folder(model, private_key=private, password="wrong")
    bundle = sign_folder(model, private_key=private, password="s3cret")
    assert verify_folder(model, bundle, trusted_keys=[public], ref="m").key == public
