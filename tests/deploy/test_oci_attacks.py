"""What a hostile or broken registry sends is refused, and nothing of it is stored."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from modelyard import Settings, Yard
from modelyard.errors import (
    ConfigurationError,
    DigestMismatch,
    InvalidManifest,
    OciAuthenticationFailed,
    OciRegistryError,
)
from modelyard.store import LocalStore, digest_bytes
from tests.deploy.conftest import OciRegistry

Route = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


@contextmanager
def fake_registry(routes: dict[str, Route]) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A tiny registry on loopback answering `routes` (by path); yields its host and the
    headers of every request it saw."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            route = routes.get(self.path.split("?")[0])
            status, headers, body = route(self) if route else (404, {}, b"{}")
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _static(body: bytes, status: int = 200, **headers: str) -> Route:
    return lambda _: (status, headers, body)


def _manifest(layers: list[dict[str, object]]) -> bytes:
    config = b"{}"
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": digest_bytes(config), "size": len(config)},
        "layers": layers,
    }).encode()  # fmt: skip


def _layer(data: bytes, title: str, **annotations: str) -> dict[str, object]:
    return {
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": digest_bytes(data),
        "size": len(data),
        "annotations": {"org.opencontainers.image.title": title, **annotations},
    }


def _artifact(layers: list[tuple[dict[str, object], bytes]]) -> dict[str, Route]:
    routes: dict[str, Route] = {"/v2/m/manifests/1": _static(
        _manifest([layer for layer, _ in layers]),
        **{"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )}  # fmt: skip
    for layer, data in layers:
        routes[f"/v2/m/blobs/{layer['digest']}"] = _static(data)
    return routes


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[Yard]:
    with Yard(Settings(home=tmp_path / "home", user="ana")) as made:
        yield made


def _stored(yard: Yard) -> set[str]:
    return {info.digest for info in yard.store.blobs()}


def test_a_layer_whose_bytes_do_not_match_its_digest_is_refused(yard: Yard, tmp_path: Path) -> None:
    good = b"weights" * 1000
    layer = _layer(good, "w.bin")
    routes = _artifact([(layer, b"WEIGHTS" * 1000)])  # same size, other bytes
    with fake_registry(routes) as (host, _):
        with pytest.raises(DigestMismatch, match=str(layer["digest"])):
            yard.pull(f"oci://{host}/m:1", output=tmp_path / "out")
    assert _stored(yard) == set() and not (tmp_path / "out").exists()


def test_a_tampered_blob_in_a_real_registry_is_refused(
    yard: Yard, oci_registry: OciRegistry, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    unique = tmp_path.name.encode() * 4096  # this test's own bytes: no other test shares them
    (folder / "weights.bin").write_bytes(unique)
    version = yard.log_model(str(folder), name="tamper", flavor="pyfunc")
    yard.push(version.ref, oci_registry.url("models/tamper"))
    hexdigest = digest_bytes(unique).removeprefix("sha256:")
    data = (
        oci_registry.root / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    )
    data.write_bytes(b"X" * len(unique))
    fresh = LocalStore(tmp_path / "fresh")
    from modelyard.deploy import pull_artifact

    with pytest.raises(DigestMismatch):
        pull_artifact(oci_registry.url("models/tamper"), fresh)
    assert not fresh.exists("sha256:" + hexdigest)
    assert list(fresh.blobs()) == []  # nor the manifest that would name it


def test_a_longer_layer_than_declared_is_refused(yard: Yard) -> None:
    data = b"abc" * 100
    layer = _layer(data, "w.bin")
    routes = _artifact([(layer, data)])
    layer["size"] = 10
    routes["/v2/m/manifests/1"] = _static(_manifest([layer]))
    with fake_registry(routes) as (host, _), pytest.raises(InvalidManifest, match="over its 10"):
        yard.pull(f"oci://{host}/m:1")
    assert _stored(yard) == set()


@pytest.mark.parametrize("title", ["../x", "/etc/passwd", "a/../../x", "a\\..\\x"])
def test_a_title_that_climbs_out_is_refused(yard: Yard, title: str, tmp_path: Path) -> None:
    data = b"x"
    with fake_registry(_artifact([(_layer(data, title), data)])) as (host, _):
        with pytest.raises(InvalidManifest, match="escape the folder"):
            yard.pull(f"oci://{host}/m:1", output=tmp_path / "out")
    assert not (tmp_path / "x").exists() and _stored(yard) == set()


def test_an_oversized_manifest_is_refused(yard: Yard) -> None:
    huge = b'{"schemaVersion": 2, "pad": "' + b"x" * (5 << 20) + b'"}'
    with fake_registry({"/v2/m/manifests/1": _static(huge)}) as (host, _):
        with pytest.raises(InvalidManifest, match="over 4194304 bytes"):
            yard.pull(f"oci://{host}/m:1")


def test_a_manifest_pinned_by_digest_must_hash_to_it(yard: Yard) -> None:
    body = _manifest([])
    pinned = digest_bytes(b"something else")
    with fake_registry({f"/v2/m/manifests/{pinned}": _static(body)}) as (host, _):
        with pytest.raises(DigestMismatch):
            yard.pull(f"oci://{host}/m@{pinned}")


def _tar(add: Callable[[tarfile.TarFile], None]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        add(tar)
    return gzip.compress(raw.getvalue())


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("model/evil", tarfile.SYMTYPE, "../../../etc/passwd"),
        _member("model/abs", tarfile.SYMTYPE, "/etc/passwd"),
        _member("model/hard", tarfile.LNKTYPE, "../outside"),
        _member("model/dev", tarfile.CHRTYPE),
        _member("../model/x"),
        _member("other/x"),
        _member("model/up", tarfile.SYMTYPE, "../README.md"),
    ],
    ids=[
        "symlink-out",
        "symlink-absolute",
        "hardlink-out",
        "device",
        "climbing-name",
        "outside-prefix",
        "symlink-out-of-folder",
    ],
)
def test_a_tar_layer_with_an_unsafe_member_is_refused(
    yard: Yard, member: tarfile.TarInfo, tmp_path: Path
) -> None:
    archive = _tar(lambda tar: tar.addfile(member))
    layer = _layer(archive, "model", **{"io.deis.oras.content.unpack": "true"})
    with fake_registry(_artifact([(layer, archive)])) as (host, _):
        with pytest.raises(InvalidManifest, match="refused|special file"):
            yard.pull(f"oci://{host}/m:1", output=tmp_path / "out")
    assert not (tmp_path / "out").exists() and _stored(yard) == set()


def test_a_tar_layer_of_files_is_unpacked(yard: Yard, tmp_path: Path) -> None:
    def add(tar: tarfile.TarFile) -> None:
        data = b"weights"
        info = _member("model/sub/w.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.addfile(_member("model/sub/link", tarfile.SYMTYPE, "w.bin"))

    archive = _tar(add)
    layer = _layer(archive, "model", **{"io.deis.oras.content.unpack": "true"})
    readme = _layer(b"hello", "README.md")
    with fake_registry(_artifact([(layer, archive), (readme, b"hello")])) as (host, _):
        pulled = yard.pull(f"oci://{host}/m:1", output=tmp_path / "out")
    assert (tmp_path / "out/model/sub/w.bin").read_bytes() == b"weights"
    assert (tmp_path / "out/model/sub/link").readlink() == Path("w.bin")
    assert (tmp_path / "out/README.md").read_bytes() == b"hello"
    assert pulled.record is None


def test_bearer_auth_gets_a_token_from_the_realm_and_keeps_credentials_home(
    tmp_path: Path,
) -> None:
    data = b"model bytes"
    layer = _layer(data, "w.bin")
    host = ""

    def guarded(route: Route) -> Route:
        def answer(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
            if handler.headers.get("Authorization") != "Bearer t0ken":
                realm = (
                    f'Bearer realm="http://{host}/token",service="fake",scope="repository:m:pull"'
                )
                return 401, {"WWW-Authenticate": realm}, b'{"errors":[]}'
            return route(handler)

        return answer

    def token(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        ok = handler.headers.get("Authorization") == "Basic dXNlcjpwdw=="  # user:pw
        return (200, {}, b'{"token": "t0ken"}') if ok else (401, {}, b"{}")

    # The blob lives on another host (as behind S3 redirects): no credentials may go there.
    with fake_registry({"/blob": _static(data)}) as (elsewhere, elsewhere_seen):
        routes = {path: guarded(route) for path, route in _artifact([(layer, data)]).items()}
        routes[f"/v2/m/blobs/{layer['digest']}"] = guarded(
            _static(b"", 307, Location=f"http://{elsewhere}/blob")
        )
        routes["/token"] = token
        with fake_registry(routes) as (host, seen):
            with Yard(Settings(home=tmp_path / "h2")) as anonymous:
                with pytest.raises(OciAuthenticationFailed, match="token service"):
                    anonymous.pull(f"oci://{host}/m:1")
            settings = Settings(home=tmp_path / "h", oci_username="user", oci_password="pw")
            with Yard(settings) as yard:
                yard.pull(f"oci://{host}/m:1", output=tmp_path / "out")
    assert (tmp_path / "out/w.bin").read_bytes() == data
    assert any(h.get("authorization") == "Bearer t0ken" for h in seen)
    assert elsewhere_seen and all("authorization" not in h for h in elsewhere_seen)


def test_a_token_realm_over_plain_http_elsewhere_is_refused(tmp_path: Path) -> None:
    challenge = 'Bearer realm="http://auth.example.com/token",service="x"'
    routes = {"/v2/m/manifests/1": _static(b"", 401, **{"WWW-Authenticate": challenge})}
    with fake_registry(routes) as (host, _), Yard(Settings(home=tmp_path / "h")) as yard:
        with pytest.raises(ConfigurationError, match="plain HTTP"):
            yard.pull(f"oci://{host}/m:1")


def test_basic_auth_registry_works_with_credentials_and_fails_clearly_without(
    oci_registry_auth: OciRegistry, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"secret weights")
    target = oci_registry_auth.url("models/private", "v1")
    with Yard(Settings(home=tmp_path / "h")) as yard:
        version = yard.log_model(str(folder), name="private", flavor="pyfunc")
        with pytest.raises(OciAuthenticationFailed, match="401 Unauthorized"):
            yard.push(version.ref, target)
        with pytest.raises(OciAuthenticationFailed, match="credentials were refused"):
            yard.push(version.ref, target, username="yard", password="wrong")
        pushed = yard.push(
            version.ref, target, username=oci_registry_auth.username,
            password=oci_registry_auth.password,
        )  # fmt: skip
        assert pushed.uploaded > 0
    settings = Settings(
        home=tmp_path / "fresh", oci_username=oci_registry_auth.username,
        oci_password=oci_registry_auth.password,
    )  # fmt: skip
    with Yard(settings) as fresh:
        fresh.pull(target, output=tmp_path / "out")
    assert (tmp_path / "out/w.bin").read_bytes() == b"secret weights"
    assert httpx.get(f"http://{oci_registry_auth.host}/v2/").status_code == 401


def test_layers_whose_files_collide_are_refused(yard: Yard, tmp_path: Path) -> None:
    layers = [(_layer(b"1", "a"), b"1"), (_layer(b"22", "a/b"), b"22")]
    with fake_registry(_artifact(layers)) as (host, _):
        with pytest.raises(InvalidManifest, match="overlaps"):
            yard.pull(f"oci://{host}/m:1", output=tmp_path / "out")
    same = [(_layer(b"1", "a"), b"1"), (_layer(b"22", "a"), b"22")]
    with fake_registry(_artifact(same)) as (host, _):
        with pytest.raises(InvalidManifest, match="same file name"):
            yard.pull(f"oci://{host}/m:1")
    assert _stored(yard) == set()


def test_an_index_or_a_failing_registry_gets_a_clear_error(yard: Yard) -> None:
    index = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
    }).encode()  # fmt: skip
    error = b'{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}' + b" " * (1 << 20)
    routes = {"/v2/m/manifests/1": _static(index), "/v2/m/manifests/2": _static(error, 500)}
    with fake_registry(routes) as (host, _):
        with pytest.raises(InvalidManifest, match="image index"):
            yard.pull(f"oci://{host}/m:1")
        with pytest.raises(
            OciRegistryError, match="500 to GET /v2/m/manifests/2: UNKNOWN: disk on fire"
        ):
            yard.pull(f"oci://{host}/m:2")
        with pytest.raises(OciRegistryError, match="404"):
            yard.pull(f"oci://{host}/m:3")


def test_a_modelyard_manifest_naming_blobs_no_layer_holds_is_refused(yard: Yard) -> None:
    from modelyard.deploy._oci_media import MODELYARD_MANIFEST
    from modelyard.store import Chunk, Entry, Manifest

    absent = digest_bytes(b"abc")
    manifest = Manifest(
        entries=(Entry(path="w.bin", size=3, chunks=(Chunk(digest=absent, size=3),)),)
    )
    body = manifest.canonical()
    layer = {**_layer(body, "x"), "mediaType": MODELYARD_MANIFEST, "annotations": {}}
    with fake_registry(_artifact([(layer, body)])) as (host, _):
        with pytest.raises(InvalidManifest, match="names blobs no layer holds"):
            yard.pull(f"oci://{host}/m:1")
    assert _stored(yard) == set()
