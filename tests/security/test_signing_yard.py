"""Signed versions through `Yard` and the CLI: where the signature lives, the load policy,
signing on promotion, the `signed` gate, and interop with the `model_signing` tool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyRegressor
from typer.testing import CliRunner

from modelyard import Settings, Yard
from modelyard.api import create_app
from modelyard.cli import app
from modelyard.errors import SignatureInvalid, SignatureMissing
from modelyard.flavors import save_model
from modelyard.registry import GateFailed, Registry
from modelyard.store import load_manifest
from tests.asgi import in_process_client
from tests.conftest import YardFactory
from tests.security.test_signing import make_keys

X = np.zeros((1, 3), np.float32)
TAG = "modelyard.signature"
MODEL_SIGNING = [sys.executable, "-m", "model_signing"]


def constant(value: float) -> DummyRegressor:
    return DummyRegressor(strategy="constant", constant=value).fit(np.zeros((2, 3)), [0, 0])


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return make_keys(tmp_path / "keys")


@pytest.fixture
def settings(tmp_path: Path, keys: tuple[Path, Path]) -> Settings:
    return Settings(home=tmp_path / "home", user="ana", trusted_keys=[keys[1]])


@pytest.fixture
def yard(settings: Settings) -> Yard:
    with Yard(settings) as yard:
        yield yard  # type: ignore[misc]


def test_sign_and_verify_through_every_client(
    make_yard: YardFactory, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    yard = make_yard()
    yard.log_model(constant(1.0), name="fraud", input_example=X)
    signed = yard.sign("fraud:1", key=keys[0])
    assert signed.tags[TAG].startswith("sha256:")
    verified = yard.verify("fraud:1", keys=[keys[1]])
    assert verified.key == keys[1] and "modelyard.json" in verified.files
    _, stranger = make_keys(tmp_path / "stranger", "stranger")
    with pytest.raises(SignatureInvalid, match="not made by any trusted key"):
        yard.verify("fraud:1", keys=[stranger])


def test_the_signature_is_not_one_of_the_files(yard: Yard, keys: tuple[Path, Path]) -> None:
    version = yard.log_model(constant(1.0), name="fraud", input_example=X)
    signed = yard.sign(version.ref, key=keys[0])
    assert signed.manifest_digest == version.manifest_digest  # the version is unchanged
    paths = [e.path for e in load_manifest(yard.store, signed.manifest_digest or "").entries]
    assert "model.sig" not in paths


def test_changed_files_under_a_copied_signature_are_refused_by_name(
    yard: Yard, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w" * 1000)
    (folder / "config.json").write_text("{}")
    signed = yard.sign(yard.log_model(folder, name="raw").ref, key=keys[0])
    (folder / "weights.bin").write_bytes(b"x" * 1000)  # an attacker's weights, same signature
    forged = yard.log_model(folder, name="raw", tags={TAG: signed.tags[TAG]})
    with pytest.raises(SignatureInvalid, match=r"raw:2 does not verify: .*changed: weights\.bin"):
        yard.verify(forged.ref)
    assert yard.verify(signed.ref).files == ("config.json", "weights.bin")


def test_require_signature_on_load(yard: Yard, keys: tuple[Path, Path]) -> None:
    yard.log_model(constant(1.0), name="fraud", input_example=X)
    yard.log_model(constant(2.0), name="fraud", input_example=X)
    assert yard.load_model("fraud:1").predict(X) is not None  # no policy: loads
    yard.settings.require_signature = True
    with pytest.raises(SignatureMissing, match="fraud:1 is not signed") as caught:
        yard.load_model("fraud:1")
    assert caught.value.status_code == 422
    yard.sign("fraud:1", key=keys[0])
    assert float(np.ravel(yard.load_model("fraud:1").predict(X))[0]) == 1.0
    # An attacker who can set tags points version 2 at version 1's signature: refused.
    yard.set_tag("fraud:2", TAG, yard.get_version("fraud:1").tags[TAG])
    with pytest.raises(SignatureInvalid, match="files differ from what was signed"):
        yard.load_model("fraud:2")
    # ... or at a blob that is not a signature, or at nothing at all.
    yard.set_tag("fraud:2", TAG, yard.get_version("fraud:2").manifest_digest)
    with pytest.raises(SignatureInvalid):
        yard.load_model("fraud:2")
    yard.set_tag("fraud:2", TAG, "sha256:" + "0" * 64)
    with pytest.raises(SignatureInvalid, match="is not in the store"):
        yard.load_model("fraud:2")
    yard.set_tag("fraud:2", TAG, "../../etc/passwd")
    with pytest.raises(SignatureInvalid, match="is not a blob digest"):
        yard.load_model("fraud:2")


def test_require_signature_covers_merge_and_optimize(yard: Yard, keys: tuple[Path, Path]) -> None:
    # Every way of loading a version's model checks the policy, not only `load_model`.
    yard.log_model(constant(1.0), name="fraud", input_example=X)
    yard.log_model(constant(2.0), name="fraud", input_example=X)
    yard.settings.require_signature = True
    with pytest.raises(SignatureMissing, match="fraud:1 is not signed"):
        yard.merge("fraud:1", "fraud:2")
    with pytest.raises(SignatureMissing, match="fraud:2 is not signed"):
        yard.optimize.quantize("fraud:2", eval_data=(X, np.zeros(1)))


def test_signed_by_modelyard_verifies_with_the_model_signing_tool(
    yard: Yard, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    yard.log_model(constant(1.0), name="fraud", input_example=X)
    yard.sign("fraud:1", key=keys[0])
    out = tmp_path / "download"
    code, _, err = _cli(yard.settings, "versions", "download", "fraud:1", str(out))
    assert code == 0, err
    assert (out / "model.sig").is_file()
    checked = subprocess.run(
        [*MODEL_SIGNING, "verify", "key", str(out), "--signature", str(out / "model.sig"),
         "--public_key", str(keys[1])],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "Verification succeeded" in checked.stdout
    (out / "modelyard.json").chmod(0o644)
    (out / "modelyard.json").write_text("{}")
    checked = subprocess.run(
        [*MODEL_SIGNING, "verify", "key", str(out), "--signature", str(out / "model.sig"),
         "--public_key", str(keys[1])],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 1 and "modelyard.json" in checked.stderr


def test_a_bad_signature_pointer_does_not_fail_a_download(yard: Yard, tmp_path: Path) -> None:
    yard.log_model(constant(1.0), name="fraud", input_example=X, tags={TAG: "sha256:" + "0" * 64})
    out = yard.download("fraud:1", tmp_path / "out")
    assert (out / "modelyard.json").is_file() and not (out / "model.sig").exists()


def test_signed_by_the_model_signing_tool_verifies_with_modelyard(
    settings: Settings, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "signed"
    save_model(constant(3.0), folder, input_example=X)
    signed = subprocess.run(
        [*MODEL_SIGNING, "sign", "key", str(folder), "--signature", str(folder / "model.sig"),
         "--private_key", str(keys[0])],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    # through the Python client ...
    with Yard(settings) as yard:
        version = yard.log_model(folder, name="fraud")
        assert TAG in version.tags
        paths = [e.path for e in load_manifest(yard.store, version.manifest_digest or "").entries]
        assert "model.sig" not in paths
        assert yard.verify(version.ref).key == keys[1]
        yard.settings.require_signature = True
        assert float(np.ravel(yard.load_model(version.ref).predict(X))[0]) == 3.0
    # ... and through the CLI
    env = {"MODELYARD_TRUSTED_KEYS": json.dumps([str(keys[1])])}
    code, out, err = _cli(settings, "log", str(folder), "-n", "fraud", env=env)
    assert code == 0, err
    code, out, err = _cli(settings, "verify", "fraud:2", "--json", env=env)
    assert code == 0, err
    assert json.loads(out)["ref"] == "fraud:2" and "modelyard.json" in json.loads(out)["files"]
    (folder / "notes.txt").write_text("added after signing")
    code, out, err = _cli(settings, "log", str(folder), "-n", "fraud", env=env)
    assert code == 0, err
    code, out, err = _cli(settings, "verify", "fraud:3", env=env)
    assert code == 1 and "not signed: notes.txt" in err


def test_cli_sign_and_verify(settings: Settings, keys: tuple[Path, Path], tmp_path: Path) -> None:
    with Yard(settings) as yard:
        yard.log_model(constant(1.0), name="fraud", input_example=X, alias="champion")
    code, _, err = _cli(settings, "verify", "fraud@champion", "--key", str(keys[1]))
    assert code == 1 and "fraud:1 is not signed" in err
    code, out, err = _cli(settings, "sign", "fraud@champion", "--key", str(keys[0]))
    assert code == 0 and out.startswith("signed fraud:1 (signature sha256:"), err
    code, out, err = _cli(settings, "verify", "fraud@champion", "--key", str(keys[1]))
    assert code == 0 and out.startswith("verified fraud:1:"), err
    _, other = make_keys(tmp_path / "other", "other")
    code, _, err = _cli(settings, "verify", "fraud:1", "--key", str(other))
    assert code == 1 and "not made by any trusted key" in err
    code, _, err = _cli(settings, "sign", "fraud:1")
    assert code == 1 and "MODELYARD_SIGNING_KEY" in err
    code, _, err = _cli(settings, "gate", "add", "fraud", "signed", "--to-state", "validated")
    assert code == 0, err
    trusted = {"MODELYARD_TRUSTED_KEYS": json.dumps([str(keys[1])])}
    code, out, err = _cli(settings, "promote", "fraud:1", "validated", env=trusted)
    assert code == 0 and "fraud:1 is now validated" in out, err
    code, _, err = _cli(settings, "verify", "fraud:1", env={"MODELYARD_TRUSTED_KEYS": "[]"})
    assert code == 1 and "no trusted public keys" in err


def test_signing_on_promotion(settings: Settings, keys: tuple[Path, Path]) -> None:
    settings = settings.model_copy(update={"signing_key": keys[0]})
    with Yard(settings) as yard:
        yard.log_model(constant(1.0), name="fraud", input_example=X)
        validated = yard.transition("fraud:1", "validated")
        assert TAG not in validated.tags  # not one of signing_states
        staged = yard.transition("fraud:1", "staging")
        assert TAG in staged.tags and yard.verify("fraud:1").key == keys[1]
        produced = yard.transition("fraud:1", "production")
        assert produced.tags[TAG] == staged.tags[TAG]  # already signed: kept as it is
        audit = [event.action for event in yard.audit_log(target="fraud:1")]
        assert audit.count("version.tag") == 1


def test_signing_on_promotion_replaces_a_signature_no_trusted_key_made(
    settings: Settings, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    stranger, _ = make_keys(tmp_path / "stranger", "stranger")
    settings = settings.model_copy(update={"signing_key": keys[0], "signing_states": ["validated"]})
    with Yard(settings) as yard:
        yard.log_model(constant(1.0), name="fraud", input_example=X)
        yard.sign("fraud:1", key=stranger)
        yard.transition("fraud:1", "validated")
        assert yard.verify("fraud:1").key == keys[1]


def test_the_signed_gate(yard: Yard, keys: tuple[Path, Path]) -> None:
    yard.log_model(constant(1.0), name="fraud", input_example=X)
    yard.log_model(constant(2.0), name="fraud", input_example=X)
    yard.add_gate("fraud", "signed", to_state="validated")
    with pytest.raises(GateFailed, match="the version is not signed"):
        yard.transition("fraud:2", "validated")
    yard.sign("fraud:1", key=keys[0])
    # Setting the tag is not enough: it must point at a signature of these files.
    yard.set_tag("fraud:2", TAG, yard.get_version("fraud:1").tags[TAG])
    with pytest.raises(GateFailed, match="files differ from what was signed"):
        yard.transition("fraud:2", "validated")
    assert yard.transition("fraud:1", "validated").state.value == "validated"
    yard.sign("fraud:2", key=keys[0])
    assert yard.transition("fraud:2", "validated").state.value == "validated"


def test_the_signed_gate_through_the_server(settings: Settings, keys: tuple[Path, Path]) -> None:
    # The server checks the gate with its operator's trusted keys, against its own store.
    app = create_app(settings)
    with in_process_client(app) as client:
        remote_settings = settings.model_copy(update={"home": settings.home.parent / "client"})
        with Yard(remote_settings, url="http://testserver", http_client=client) as remote:
            remote.log_model(constant(1.0), name="fraud", input_example=X)
            remote.add_gate("fraud", "signed", to_state="validated")
            with pytest.raises(GateFailed, match="the version is not signed"):
                remote.transition("fraud:1", "validated")
            remote.sign("fraud:1", key=keys[0])
            assert remote.transition("fraud:1", "validated").state.value == "validated"


def test_the_signed_gate_fails_closed_without_a_verifier(
    yard: Yard, keys: tuple[Path, Path]
) -> None:
    yard.log_model(constant(1.0), name="fraud", input_example=X)
    yard.add_gate("fraud", "signed", to_state="validated")
    yard.sign("fraud:1", key=keys[0])
    bare = Registry(yard.local_registry().database, actor="ana")  # no store, no keys
    with pytest.raises(GateFailed, match="no verifier is configured"):
        bare.transition("fraud:1", "validated")
    yard.settings.trusted_keys = []
    with pytest.raises(GateFailed, match="no trusted public keys"):
        yard.transition("fraud:1", "validated")


def _cli(settings: Settings, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    base = {
        "MODELYARD_HOME": str(settings.home),
        "MODELYARD_USER": "ana",
        "MODELYARD_STORE_URL": "",
        "MODELYARD_DATABASE_URL": "",
    }
    result = CliRunner().invoke(app, list(args), env={**base, **(env or {})})
    return result.exit_code, result.stdout, result.stderr
