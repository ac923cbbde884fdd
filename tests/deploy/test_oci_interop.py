"""Interop with ORAS (the `oras` Python SDK): each side pulls what the other pushed.

(a) `oras pull` of a version modelyard pushed gives every whole-file layer back as the same file;
(b) modelyard pulls, registers and loads a saved model folder that `oras push` uploaded as plain
files; (c) a folder `oras push` packed as one tar+gzip layer comes back unpacked.
(a) and (b) run against the open and the htpasswd registry.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from modelyard import Settings, Yard
from tests.deploy.conftest import OciRegistry

TITLE = "org.opencontainers.image.title"


@pytest.fixture(params=["open", "auth"])
def registry(request: pytest.FixtureRequest) -> OciRegistry:
    """Each interop test runs against the open and the basic-auth registry."""
    name = "oci_registry" if request.param == "open" else "oci_registry_auth"
    found: OciRegistry = request.getfixturevalue(name)
    return found


def oras_client(registry: OciRegistry) -> Any:
    """An ORAS client for the registry: plain HTTP, basic credentials set in memory only
    (`OrasClient.login` would write them to ~/.docker/config.json)."""
    import oras.client  # type: ignore[import-untyped]

    if registry.username is None:
        return oras.client.OrasClient(hostname=registry.host, insecure=True)
    client = oras.client.OrasClient(hostname=registry.host, insecure=True, auth_backend="basic")
    client.auth.set_basic_auth(registry.username, registry.password)
    return client


def yard_for(home: Path, registry: OciRegistry) -> Yard:
    """An embedded yard in `home` holding the registry's credentials, if any."""
    password = None if registry.password is None else SecretStr(registry.password)
    settings = Settings(home=home, user="ana", oci_username=registry.username)
    return Yard(settings.model_copy(update={"oci_password": password}))


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """ORAS takes only paths under the current directory, and names layers by them."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def plain_folder(root: Path) -> Path:
    """A model folder of tensors (cut one blob per tensor) and small whole files."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(3)
    root.mkdir()
    tensors = {f"layer{i}.weight": rng.standard_normal((64, 32)).astype("float32")
               for i in range(4)}  # fmt: skip
    save_file(tensors, str(root / "model.safetensors"))
    (root / "config.json").write_text('{"architectures": ["Tiny"], "hidden": 32}\n')
    (root / "README.md").write_text("# tiny\n\nA model for the interop test.\n")
    return root


def test_oras_pulls_what_modelyard_pushed(registry: OciRegistry, tmp_path: Path) -> None:
    folder = plain_folder(tmp_path / "model")
    with yard_for(tmp_path / "home", registry) as yard:
        version = yard.log_model(folder, name="tiny")
        target = registry.url("interop/from-modelyard", "v1")
        pushed = yard.push(version.ref, target)
    client = oras_client(registry)
    manifest = client.get_manifest(target.removeprefix("oci://"))
    assert pushed.layers == len(manifest["layers"]) > len(list(folder.iterdir()))
    titled = {layer["annotations"][TITLE]: layer for layer in manifest["layers"]
              if TITLE in (layer.get("annotations") or {})}  # fmt: skip
    assert {"config.json", "README.md"} <= set(titled)
    out = tmp_path / "oras-out"
    files = client.pull(target=target.removeprefix("oci://"), outdir=str(out))
    assert len(files) == len(manifest["layers"])
    for layer, file in zip(manifest["layers"], files, strict=True):  # ORAS does not check
        assert f"sha256:{hashlib.sha256(Path(file).read_bytes()).hexdigest()}" == layer["digest"]
    for title in titled:
        if (folder / title).is_file():  # the version's own record layers have no source file
            assert (out / title).read_bytes() == (folder / title).read_bytes(), title


def sklearn_folder(root: Path) -> tuple[Path, Any, np.ndarray]:
    """A saved scikit-learn model (flat files); returns it, the model and some inputs."""
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    from modelyard.flavors import save_model

    rng = np.random.default_rng(7)
    features = rng.standard_normal((60, 4))
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(features, labels)
    save_model(model, root, input_example=features[:3])
    return root, model, features


def oras_push(registry: OciRegistry, target: str, folder: Path) -> None:
    """`oras push TARGET entry...` from inside `folder`: files whole, folders as tar+gzip."""
    with working_directory(folder):
        oras_client(registry).push(target=target.removeprefix("oci://"),
                                   files=sorted(p.name for p in folder.iterdir()))  # fmt: skip


def cli_pull(registry: OciRegistry, home: Path, *args: str) -> None:
    """`modelyard pull ARGS` in `home`, with `--username --password-stdin` when it asks."""
    from modelyard.cli import app

    argv, stdin = ["pull", *args], None
    if registry.username is not None:
        argv += ["--username", registry.username, "--password-stdin"]
        stdin = f"{registry.password}\n"
    env: dict[str, str | None] = {"MODELYARD_HOME": str(home), "MODELYARD_USER": "ana"}
    env |= dict.fromkeys(("MODELYARD_URL", "MODELYARD_STORE_URL", "MODELYARD_DATABASE_URL"))
    result = CliRunner().invoke(app, argv, env=env, input=stdin)
    assert result.exit_code == 0, result.output


def test_modelyard_pulls_and_registers_what_oras_pushed(
    registry: OciRegistry, tmp_path: Path
) -> None:
    folder, model, features = sklearn_folder(tmp_path / "model")
    target = registry.url("interop/from-oras", "v1")
    oras_push(registry, target, folder)
    home = tmp_path / "fresh-home"
    cli_pull(registry, home, target, "--register", "iris")
    with Yard(Settings(home=home, user="ana")) as yard:
        loaded = yard.load_model("iris:1", trust=True)
        assert loaded.native is not model
        np.testing.assert_array_equal(np.asarray(loaded.predict(features)), model.predict(features))


def test_a_folder_oras_pushed_is_unpacked(oci_registry: OciRegistry, tmp_path: Path) -> None:
    """oras-py packs a folder as one `application/vnd.oci.image.layer.v1.tar+gzip` layer
    titled with its name and, unlike the ORAS CLI, without `io.deis.oras.content.unpack`: its
    own pull unpacks by that media type, so modelyard must too."""
    folder = tmp_path / "model"
    (folder / "docs" / "api").mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden": 8}\n')
    (folder / "docs" / "NOTES.md").write_text("trained on synthetic data\n")
    (folder / "docs" / "api" / "index.md").write_text("# api\n")
    target = oci_registry.url("interop/folder", "v1")
    oras_push(oci_registry, target, folder)
    cli_pull(oci_registry, tmp_path / "home", target, "--output", str(tmp_path / "out"))
    out = tmp_path / "out"
    assert (out / "docs" / "NOTES.md").read_text() == "trained on synthetic data\n"
    assert (out / "docs" / "api" / "index.md").read_text() == "# api\n"
    assert (out / "config.json").read_text() == '{"hidden": 8}\n'
