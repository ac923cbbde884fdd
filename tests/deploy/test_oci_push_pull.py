"""Push registered versions to a real registry (docker-registry) and pull them into fresh homes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from modelyard.errors import ConfigurationError, InvalidReference
from modelyard.flavors import load_model
from tests.deploy.conftest import OciRegistry


def _yard(home: Path) -> Yard:
    return Yard(Settings(home=home, user="ana"))


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[Yard]:
    with _yard(tmp_path / "home") as made:
        yield made


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    return x, (x[:, 0] + x[:, 1] > 0).astype(int)


def test_push_then_pull_into_a_fresh_home_predicts_identically(
    yard: Yard, oci_registry: OciRegistry, tmp_path: Path
) -> None:
    x, y = _data()
    model = LogisticRegression().fit(x, y)
    version = yard.log_model(
        model, name="iris", input_example=x[:5], params={"C": "1.0"}, metrics={"acc": 0.9},
        description="first",
    )  # fmt: skip
    pushed = yard.push(version.ref, oci_registry.url("models/iris", "v1"))
    assert pushed.digest.startswith("sha256:") and pushed.uploaded >= pushed.layers
    again = yard.push(version.ref, oci_registry.url("models/iris", "v1"))
    assert (again.digest, again.uploaded, again.uploaded_bytes) == (pushed.digest, 0, 0)

    with _yard(tmp_path / "fresh") as fresh:
        pulled = fresh.pull(oci_registry.url("models/iris", "v1"), register="iris", alias="prod")
        assert pulled.version is not None and pulled.version.ref == "iris:1"
        got = fresh.get_version("iris@prod")
        assert got.params == {"C": "1.0"} and got.metrics == {"acc": 0.9}
        assert got.flavor == "sklearn" and got.description == "first"
        assert got.manifest_digest == version.manifest_digest
        predicted = fresh.load_model("iris@prod", trust=True).predict(x)
    expected = yard.load_model(version.ref, trust=True).predict(x)
    np.testing.assert_array_equal(np.asarray(predicted), np.asarray(expected))


def test_pull_by_digest_to_an_output_folder_that_load_model_accepts(
    yard: Yard, oci_registry: OciRegistry, tmp_path: Path
) -> None:
    x, y = _data()
    version = yard.log_model(LogisticRegression().fit(x, y), name="out", input_example=x[:2])
    pushed = yard.push(version.ref, oci_registry.url("models/out", "v1"))
    with _yard(tmp_path / "other") as other:
        pulled = other.pull(pushed.reference, output=tmp_path / "folder")
    assert pulled.digest == pushed.digest and pulled.version is None
    assert pulled.record is not None and pulled.record.name == "out"
    loaded = load_model(tmp_path / "folder", trust=True)
    expected = yard.load_model(version.ref, trust=True).predict(x)
    np.testing.assert_array_equal(np.asarray(loaded.predict(x)), np.asarray(expected))


def _variants(yard: Yard, folder: Path, count: int) -> list[str]:
    """`count` versions of a safetensors model differing in one small tensor each."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    shared = {f"layer{i}": rng.normal(size=(256, 256)).astype(np.float32) for i in range(4)}
    refs = []
    for number in range(count):
        path = folder / f"v{number}"
        path.mkdir(parents=True)
        save_file(
            {**shared, "head": np.full((8,), number, np.float32)}, str(path / "w.safetensors")
        )
        (path / "README.md").write_text("variant\n")
        refs.append(yard.log_model(str(path), name="tuned", flavor="pyfunc").ref)
    return refs


def test_ten_variants_upload_shared_blobs_once(
    yard: Yard, oci_registry: OciRegistry, tmp_path: Path
) -> None:
    refs = _variants(yard, tmp_path / "variants", 10)
    first = yard.push(refs[0], oci_registry.url("models/tuned", "v0"))
    shared = 4 * 256 * 256 * 4
    assert first.uploaded_bytes > shared
    for number, ref in enumerate(refs[1:], start=1):
        result = yard.push(ref, oci_registry.url("models/tuned", f"v{number}"))
        # Only the changed tensor, the header, the manifests, record and config are new.
        assert result.skipped_bytes >= shared
        assert result.uploaded_bytes < 8192, result
    with _yard(tmp_path / "fresh") as fresh:
        one = fresh.pull(oci_registry.url("models/tuned", "v3"))
        two = fresh.pull(oci_registry.url("models/tuned", "v4"))
    assert one.downloaded_bytes > shared and two.downloaded_bytes < 8192


def test_references_are_checked(yard: Yard) -> None:
    with pytest.raises(InvalidReference, match="repository"):
        yard.pull("oci://127.0.0.1:5000/Models/X:1")
    with pytest.raises(InvalidReference, match="oci://HOST"):
        yard.pull("https://127.0.0.1:5000/models/x:1")
    with pytest.raises(ConfigurationError, match="alias needs --register"):
        yard.pull("oci://127.0.0.1:5000/models/x:1", alias="prod")


def test_plain_http_to_a_remote_host_is_refused_without_the_allow_list(tmp_path: Path) -> None:
    with _yard(tmp_path / "h") as yard, pytest.raises(ConfigurationError, match="plain HTTP"):
        yard.pull("oci+http://registry.example.com/models/x:1")
    settings = Settings(home=tmp_path / "h2", oci_plain_http=["registry.example.com"])
    from modelyard.deploy import parse_reference

    ref = parse_reference(
        "oci://registry.example.com/models/x:1", plain_http=settings.oci_plain_http
    )
    assert ref.base_url.startswith("http://")
    assert parse_reference("oci://registry.example.com/m:1").base_url.startswith("https://")


def test_a_signed_version_travels_with_its_signature(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    from modelyard.security import SIGNATURE_TAG
    from tests.security.test_signing import make_keys

    private, public = make_keys(tmp_path / "keys")
    x, y = _data()
    with _yard(tmp_path / "a") as yard:
        version = yard.log_model(LogisticRegression().fit(x, y), name="signed", input_example=x[:2])
        yard.sign(version.ref, key=private)
        yard.push(version.ref, oci_registry.url("models/signed"))
    settings = Settings(home=tmp_path / "b", user="ana", trusted_keys=[public])
    with Yard(settings) as fresh:
        pulled = fresh.pull(oci_registry.url("models/signed"), register="signed")
        assert pulled.version is not None and SIGNATURE_TAG in pulled.version.tags
        assert fresh.verify("signed:1", keys=[public]).key == public
        fresh.pull(oci_registry.url("models/signed"), output=tmp_path / "out")
    assert (tmp_path / "out" / "model.sig").is_file()
