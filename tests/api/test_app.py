"""The REST API in-process: routes, error bodies, OpenAPI, blob uploads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelyard import Settings, Yard
from modelyard.api import create_app
from modelyard.errors import BlobNotFound, ModelyardError, RegistryUnavailable
from modelyard.registry import GateFailed
from modelyard.store import digest_bytes
from tests.asgi import in_process_client
from tests.servers import free_port
from tests.store.test_chunking import safetensors_bytes


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    with in_process_client(create_app(Settings(home=tmp_path, user="server"))) as client:
        client.base_url = httpx.URL("http://testserver")
        yield client


def test_health_and_openapi(client: httpx.Client) -> None:
    assert client.get("/health").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    expected = ["models", "version", "versions/search", "models/{name}/aliases/{alias}", "runs",
                "blobs/{digest}"]  # fmt: skip
    for path in expected:
        assert f"/api/v1/{path}" in paths, path


def test_errors_render_as_oip_error_bodies(client: httpx.Client) -> None:
    missing = client.get("/api/v1/version", params={"ref": "fraud:1"})
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "model 'fraud' does not exist",
        "code": "model_not_found",
        "type": "ModelNotFound",
        "details": {"name": "fraud"},
    }
    bad_ref = client.get("/api/v1/version", params={"ref": "fraud:x"})
    assert bad_ref.status_code == 400 and "NAME:VERSION" in bad_ref.json()["error"]
    bad_body = client.post("/api/v1/models/fraud/versions", json={"metrics": {"auc": "high"}})
    assert bad_body.status_code == 400
    assert bad_body.json()["error"].startswith("invalid request: body.metrics.auc")
    unknown_field = client.post("/api/v1/versions/search", json={"filtr": "x"})
    assert unknown_field.status_code == 400 and "filtr" in unknown_field.json()["error"]


def test_the_user_header_is_ignored_from_untrusted_addresses(client: httpx.Client) -> None:
    created = client.post(
        "/api/v1/models/fraud/versions", json={}, headers={"X-Modelyard-User": "ana"}
    )
    assert created.status_code == 201 and created.json()["created_by"] == "server"


def test_a_trusted_proxy_names_the_actor(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, user="server", trusted_proxies=["127.0.0.0/8"])
    with in_process_client(create_app(settings)) as client:  # its client is 127.0.0.1
        created = client.post(
            "http://testserver/api/v1/models/fraud/versions", json={},
            headers={"X-Modelyard-User": "ana"},
        )  # fmt: skip
        assert created.status_code == 201 and created.json()["created_by"] == "ana"
        anonymous = client.post("http://testserver/api/v1/models/fraud/versions", json={})
        assert anonymous.json()["created_by"] == "server"


def test_gate_failures_come_back_typed_with_every_failure(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, user="ana")
    with in_process_client(create_app(settings)) as client:
        yard = Yard(settings, url="http://testserver", http_client=client)
        yard.add_gate("fraud", "metric", metric="auc", op=">=", value=0.9)
        yard.add_gate("fraud", "signature")
        yard.registry.create_version("fraud", metrics={"auc": 0.5})
        yard.transition("fraud:1", "validated")
        yard.transition("fraud:1", "staging")
        with pytest.raises(GateFailed) as caught:
            yard.transition("fraud:1", "production")
        assert caught.value.status_code == 409
        assert caught.value.failures == [
            "metric auc = 0.5 (needs >= 0.9)",
            "a signature is required",
        ]


def test_blob_upload_is_verified(client: httpx.Client) -> None:
    good = digest_bytes(b"weights")
    assert client.put(f"/api/v1/blobs/{good}", content=b"weights").status_code == 201
    assert client.head(f"/api/v1/blobs/{good}").status_code == 200
    assert client.get(f"/api/v1/blobs/{good}").content == b"weights"
    wrong = client.put(f"/api/v1/blobs/{good[:-1]}0", content=b"weights")
    assert wrong.status_code == 400 and wrong.json()["type"] == "DigestMismatch"
    assert client.head(f"/api/v1/blobs/{good[:-1]}0").status_code == 404
    assert client.get(f"/api/v1/blobs/{good[:-1]}0").status_code == 404
    assert client.put("/api/v1/blobs/sha256:nope", content=b"x").status_code == 400


def test_blob_upload_size_limit(client: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.api import _blobs

    monkeypatch.setattr(_blobs, "MAX_BLOB", 4)
    response = client.put(f"/api/v1/blobs/{digest_bytes(b'too long')}", content=b"too long")
    assert response.status_code == 400 and "at most 4 bytes" in response.json()["error"]


def test_remote_store_reads_verify_and_refuses_server_jobs(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, user="ana")
    with in_process_client(create_app(settings)) as client:
        yard = Yard(settings, url="http://testserver", http_client=client)
        store = yard.store
        digest = store.put(b"abc")
        assert store.put(b"abc") == digest  # present already: not sent again
        assert b"".join(store.get(digest)) == b"abc"
        with pytest.raises(BlobNotFound):
            store.get(digest_bytes(b"absent"))
        with pytest.raises(ModelyardError, match="server's job"):
            store.delete(digest)
        with pytest.raises(ModelyardError, match="server's job"):
            list(store.blobs())


def test_unreachable_server(tmp_path: Path) -> None:
    yard = Yard(Settings(home=tmp_path), url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RegistryUnavailable, match="cannot reach the modelyard server"):
        yard.list_models()
    yard.close()


def test_non_json_error_bodies_still_raise(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    client = httpx.Client(transport=httpx.MockTransport(handler))
    yard = Yard(Settings(home=tmp_path), url="http://proxy", http_client=client)
    with pytest.raises(ModelyardError, match="HTTP 502: bad gateway") as caught:
        yard.list_models()
    assert caught.value.status_code == 502
    with pytest.raises(ModelyardError, match="HTTP 502"):
        yard.store.get(digest_bytes(b"x"))


def test_register_needs_its_manifest_on_the_server(client: httpx.Client) -> None:
    missing = digest_bytes(b"never uploaded")
    response = client.post("/api/v1/models/fraud/versions", json={"manifest_digest": missing})
    assert (
        response.status_code == 400 and "is not stored on this server" in response.json()["error"]
    )


def test_small_blobs_ride_along_and_are_verified(client: httpx.Client, tmp_path: Path) -> None:
    import base64

    from modelyard.store import MemoryStore, read_bytes, store_directory

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.txt").write_text("tiny")
    local = MemoryStore()
    digest = store_directory(local, folder).digest
    content = read_bytes(local, digest)
    inline = {info.digest: base64.b64encode(read_bytes(local, info.digest)).decode()
              for info in local.blobs()}  # fmt: skip
    body = {"manifest_digest": digest, "blobs": inline}
    assert client.post("/api/v1/models/fraud/versions", json=body).status_code == 201
    assert client.get(f"/api/v1/blobs/{digest}").content == content
    forged = {"blobs": {digest_bytes(b"other"): base64.b64encode(content).decode()}}
    response = client.post("/api/v1/models/fraud/versions", json=forged)
    assert response.status_code == 400 and response.json()["type"] == "DigestMismatch"
    garbage = {"blobs": {digest: "!!not base64!!"}}
    response = client.post("/api/v1/models/fraud/versions", json=garbage)
    assert response.status_code == 400 and "not valid base64" in response.json()["error"]


def test_big_files_go_up_before_the_registration(tmp_path: Path) -> None:
    from modelyard._remote import INLINE_BLOB

    settings = Settings(home=tmp_path / "home", user="ana")
    folder = tmp_path / "model"
    folder.mkdir()
    tensor = bytes(range(256)) * (INLINE_BLOB // 256 + 1)  # one tensor bigger than rides along
    (folder / "big.safetensors").write_bytes(safetensors_bytes({"w": tensor}))
    (folder / "small.txt").write_text("x")
    with in_process_client(create_app(settings)) as client:
        yard = Yard(settings, url="http://testserver", http_client=client)
        version = yard.log_model(folder, name="fraud")
        yard.download(version.ref, tmp_path / "out")
    restored = (tmp_path / "out" / "big.safetensors").read_bytes()
    assert restored == (folder / "big.safetensors").read_bytes()


def test_registering_a_manifest_whose_blobs_are_gone_is_refused(tmp_path: Path) -> None:
    # A client saw the blobs stored and did not send them, then a collection removed them
    # before the registration arrived: the server checks again and refuses, naming them.
    import numpy as np
    from sklearn.dummy import DummyRegressor

    from modelyard.store import load_manifest

    settings = Settings(home=tmp_path / "server")
    with in_process_client(create_app(settings)) as http:
        remote = Yard(Settings(home=tmp_path / "client"), url="http://testserver", http_client=http)
        model = DummyRegressor().fit(np.zeros((2, 3)), [0.0, 1.0])
        version = remote.log_model(model, name="fraud", input_example=np.zeros((1, 3)))
        assert version.manifest_digest is not None
        with Yard(settings) as server_side:
            store = server_side.store
            blob = sorted(load_manifest(store, version.manifest_digest).blob_digests())[0]
            store.delete(blob)
        answer = http.post(
            "http://testserver/api/v1/models/fraud/versions",
            json={"manifest_digest": version.manifest_digest, "flavor": "sklearn"},
        )
        assert answer.status_code == 400, answer.text
        assert "does not hold" in answer.json()["error"] and blob in answer.json()["error"]
        remote.close()
