"""`FolderSource`: model folders served with no registry; both layouts, the version record, and
every way an untrusted directory can be wrong, refused when the source is made."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard.errors import (
    ConfigurationError,
    SignatureInvalid,
    SignatureMissing,
    UnsupportedModel,
    UntrustedModel,
    VersionNotFound,
)
from modelyard.flavors import save_model
from modelyard.security import SIGNATURE_FILE, sign_folder
from modelyard.serving import FolderSource, Metrics, ModelPool
from modelyard.settings import Settings
from tests.security.test_signing import make_keys
from tests.serving.poison_models import Careless

X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [0.5, 0.2]])


def save(folder: Path) -> Path:
    """A small sklearn classifier saved as a model folder."""
    model = LogisticRegression().fit(X, [0, 1, 1, 0])
    save_model(model, folder, input_example=X[:2])
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """The many-models layout: iris/ with a record, fraud/ without one."""
    root = tmp_path / "models"
    save(root / "iris")
    save(root / "fraud")
    record = {"name": "iris", "number": 3, "params": {"C": "1"}, "metrics": {"auc": 0.9},
              "tags": {"team": "risk"}, "description": "tuned", "flavor": "pyfunc",
              "state": "production", "manifest_digest": "sha256:" + "a" * 64,
              "parents": ["iris:2"], "created_at": "2026-01-02T03:04:05Z"}  # fmt: skip
    (root / "iris.version.json").write_text(json.dumps(record))
    return root


def test_one_folder_is_version_one_of_its_name_or_of_name(
    tmp_path: Path, settings: Settings
) -> None:
    folder = save(tmp_path / "iris")
    source = FolderSource(folder, settings=settings)
    assert source.refs == ["iris:1"]
    version = source.get_version("iris")
    assert (version.name, version.number, version.flavor) == ("iris", 1, "sklearn")
    assert version.signature is not None  # the folder's own, for the metadata routes
    assert source.model_folder(version) == folder
    assert FolderSource(folder, settings=settings, names=["fraud"]).refs == ["fraud:1"]


def test_many_folders_with_a_record(models: Path, settings: Settings) -> None:
    source = FolderSource(models, settings=settings)
    assert source.refs == ["fraud:1", "iris:3"]
    iris = source.get_version("iris:3")
    assert iris.metrics == {"auc": 0.9} and iris.tags == {"team": "risk"}
    assert iris.parents == ["iris:2"] and iris.description == "tuned"
    # What decides loading comes from the folder, never the record; state is not taken.
    assert iris.flavor == "sklearn" and iris.state.value == "registered"
    assert FolderSource(models, settings=settings, names=["iris"]).refs == ["iris:3"]


def test_only_what_is_there_resolves(models: Path, settings: Settings) -> None:
    source = FolderSource(models, settings=settings)
    for ref in ("iris:2", "iris@production", "nothing"):
        with pytest.raises(VersionNotFound, match="serves only fraud:1, iris:3"):
            source.get_version(ref)


def test_a_bad_record_is_refused_naming_the_file(models: Path, settings: Settings) -> None:
    record = models / "iris.version.json"
    for text, message in [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"name": "fraud"}', "records model 'fraud', but its folder is 'iris'"),
        ('{"number": "three"}', "not a valid version record"),
        ('{"number": 0}', "version number 0 is not >= 1"),
        ("\udcff", "is not valid JSON"),
    ]:
        record.write_bytes(text.encode(errors="surrogateescape"))
        with pytest.raises(ConfigurationError, match=message) as raised:
            FolderSource(models, settings=settings)
        assert str(record) in str(raised.value)


def test_a_huge_record_is_refused_unread(models: Path, settings: Settings) -> None:
    (models / "iris.version.json").write_bytes(b" " * (2 << 20))
    with pytest.raises(ConfigurationError, match="iris.version.json is over 1048576 bytes"):
        FolderSource(models, settings=settings)


def test_names_are_checked(tmp_path: Path, models: Path, settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="'iris:2' is not a model name"):
        FolderSource(models, settings=settings, names=["iris:2"])
    with pytest.raises(ConfigurationError, match="'../x' is not a model name"):
        FolderSource(models, settings=settings, names=["../x"])
    with pytest.raises(ConfigurationError, match="is not a model folder \\(found: fraud, iris\\)"):
        FolderSource(models, settings=settings, names=["wine"])
    bad = save(tmp_path / "bad name")
    with pytest.raises(ConfigurationError, match="'bad name' is not a model name"):
        FolderSource(bad, settings=settings)
    with pytest.raises(ConfigurationError, match="give at most one --name"):
        FolderSource(bad, settings=settings, names=["a", "b"])


def test_a_folder_without_a_model_is_refused(tmp_path: Path, settings: Settings) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigurationError, match="holds no model: expected modelyard.json"):
        FolderSource(empty, settings=settings)
    (empty / "wine").mkdir()
    with pytest.raises(UnsupportedModel, match="wine/modelyard.json is missing"):
        FolderSource(empty, settings=settings, names=["wine"])
    with pytest.raises(ConfigurationError, match="not a directory"):
        FolderSource(tmp_path / "absent", settings=settings)


def test_links_out_of_the_folder_are_refused(
    tmp_path: Path, models: Path, settings: Settings
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("key")
    (models / "iris" / "extra.txt").symlink_to(secret)
    with pytest.raises(ConfigurationError, match="extra.txt leads outside .*: refused"):
        FolderSource(models, settings=settings)
    (models / "iris" / "extra.txt").unlink()
    (models / "iris" / "other").symlink_to(models / "fraud")  # inside: allowed
    FolderSource(models, settings=settings)
    outside = save(tmp_path / "elsewhere")
    (models / "wine").symlink_to(outside)
    with pytest.raises(ConfigurationError, match="wine leads outside"):
        FolderSource(models, settings=settings)
    (models / "wine").unlink()
    (models / "iris.version.json").unlink()
    (models / "iris.version.json").symlink_to(secret)
    with pytest.raises(ConfigurationError, match="iris.version.json leads outside"):
        FolderSource(models, settings=settings)


def test_a_fifo_is_refused(models: Path, settings: Settings) -> None:
    os.mkfifo(models / "fraud" / "weights.bin")  # reading it would hang the loader
    with pytest.raises(ConfigurationError, match="weights.bin is not a regular file"):
        FolderSource(models, settings=settings)


def test_signatures_when_required(tmp_path: Path, models: Path) -> None:
    private, public = make_keys(tmp_path / "keys")
    optional = FolderSource(models, settings=Settings(home=tmp_path / "h"))
    optional.check_signature(optional.get_version("iris"))  # not required: passes unsigned
    required = Settings(home=tmp_path / "h", require_signature=True, trusted_keys=[public])
    source = FolderSource(models, settings=required)
    iris = source.get_version("iris")
    with pytest.raises(SignatureMissing, match="iris:3 is not signed"):
        source.check_signature(iris)
    folder = models / "iris"
    (folder / SIGNATURE_FILE).write_bytes(sign_folder(folder, private_key=private))
    source.check_signature(iris)
    with (folder / "modelyard.json").open("a") as file:
        file.write(" ")
    with pytest.raises(SignatureInvalid):
        source.check_signature(iris)
    (folder / SIGNATURE_FILE).write_bytes(b"x" * ((1 << 20) + 1))
    with pytest.raises(SignatureInvalid, match="over 1048576 bytes"):
        source.check_signature(iris)


def test_the_root_may_be_a_link_and_is_served_as_given(tmp_path: Path, models: Path) -> None:
    """KServe's modelcar links /mnt/models in: the operator's path is used as given."""
    mounted = tmp_path / "mnt"
    mounted.symlink_to(models)
    source = FolderSource(mounted, settings=Settings(home=tmp_path / "home"))
    assert source.model_folder(source.get_version("iris")) == mounted / "iris"


def test_a_dangling_link_is_refused(models: Path, settings: Settings) -> None:
    (models / "fraud" / "gone").symlink_to(models / "fraud" / "nothing")
    with pytest.raises(ConfigurationError, match="gone is a link to nothing loadable"):
        FolderSource(models, settings=settings)


@pytest.mark.anyio
async def test_loading_follows_the_operators_trust(tmp_path: Path, settings: Settings) -> None:
    """Stored code in a folder loads only with --trust, as from the registry."""
    folder = tmp_path / "careless"
    save_model(Careless(), folder, input_example=np.ones((1, 3)))
    source = FolderSource(folder, settings=settings)
    refused = ModelPool(source, settings, metrics=Metrics())
    with pytest.raises(UntrustedModel):
        await refused.start(source.refs)
    await refused.stop()
    trusted = ModelPool(source, settings, metrics=Metrics(), trust=True)
    await trusted.start(source.refs)
    try:
        assert trusted.get("careless").version.ref == "careless:1"
    finally:
        await trusted.stop()
