"""`modelyard push` and `modelyard pull` from the command line, and over a registry server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier
from typer.testing import CliRunner

from modelyard import Settings, Yard
from modelyard.cli import app
from tests.deploy.conftest import OciRegistry


def run(home: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    env = {"MODELYARD_HOME": str(home), "MODELYARD_USER": "ana"}
    result = CliRunner().invoke(app, list(args), input=stdin, env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELYARD_STORE_URL", "MODELYARD_DATABASE_URL", "MODELYARD_URL"):
        monkeypatch.delenv(name, raising=False)


def _model() -> tuple[DecisionTreeClassifier, np.ndarray]:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 3))
    return DecisionTreeClassifier(random_state=0).fit(x, x[:, 0] > 0), x


def test_push_and_pull_register_from_the_cli(oci_registry: OciRegistry, tmp_path: Path) -> None:
    model, x = _model()
    with Yard(Settings(home=tmp_path / "a")) as yard:
        version = yard.log_model(model, name="tree", input_example=x[:3], metrics={"acc": 1.0})
        expected = yard.load_model(version.ref, trust=True).predict(x)
    target = oci_registry.url("cli/tree", "v1")
    code, out, err = run(tmp_path / "a", "push", "tree:1", target)
    assert code == 0, err
    assert "digest: sha256:" in out and "layers:" in out and "skipped 0 B" in out
    code, out, err = run(tmp_path / "a", "push", "tree:1", target, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["uploaded"] == 0 and again["skipped_bytes"] > 0

    code, out, err = run(tmp_path / "b", "pull", target, "--register", "tree", "--alias", "prod")
    assert code == 0, err
    assert "registered tree:1 as @prod" in out
    with Yard(Settings(home=tmp_path / "b")) as fresh:
        got = fresh.load_model("tree@prod", trust=True).predict(x)
        assert fresh.get_version("tree@prod").metrics == {"acc": 1.0}
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))

    code, out, err = run(
        tmp_path / "c", "pull", again["reference"], "--output", str(tmp_path / "o")
    )
    assert code == 0, err
    assert (tmp_path / "o" / "modelyard.json").is_file()


def test_cli_credentials_from_stdin(oci_registry_auth: OciRegistry, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"w" * 100)
    with Yard(Settings(home=tmp_path / "a")) as yard:
        yard.log_model(str(folder), name="w", flavor="pyfunc")
    target = oci_registry_auth.url("cli/w")
    code, _, err = run(tmp_path / "a", "push", "w:1", target)
    assert code == 1 and "error:" in err and "401 Unauthorized" in err and "--username" in err
    code, out, err = run(
        tmp_path / "a", "push", "w:1", target, "--username", str(oci_registry_auth.username),
        "--password-stdin", stdin=f"{oci_registry_auth.password}\n",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run(tmp_path / "a", "pull", target, "--password-stdin", stdin="x\n")
    assert code == 1 and "--password-stdin needs --username" in err
    code, _, err = run(tmp_path / "a", "pull", "oci://example.com/Bad:1")
    assert code == 1 and "invalid reference" in err


def test_push_and_pull_over_a_registry_server(oci_registry: OciRegistry, tmp_path: Path) -> None:
    """Through `MODELYARD_URL` (the API in-process): blobs are read and written via the server."""
    from modelyard.api import create_app
    from tests.asgi import in_process_client

    model, x = _model()
    server = Settings(home=tmp_path / "server", user="ana")
    with in_process_client(create_app(server)) as client:
        with Yard(server.model_copy(), url="http://testserver", http_client=client) as remote:
            version = remote.log_model(model, name="remote", input_example=x[:2])
            pushed = remote.push(version.ref, oci_registry.url("remote/tree"))
            pulled = remote.pull(pushed.reference, register="copy")
            assert pulled.version is not None
            assert pulled.version.manifest_digest == version.manifest_digest
            got = remote.load_model("copy:1", trust=True).predict(x)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(model.predict(x)))
