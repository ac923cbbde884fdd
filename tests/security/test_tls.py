"""HTTPS on both servers from the operator's certificate, and clients that verify it."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
from modelyard.errors import RegistryUnavailable
from tests.servers import free_port

X = np.zeros((2, 3), np.float32)


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key, as PEM files."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelyard test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def https_process(
    command: list[str], *, env: dict[str, str], ca: Path, ready: str
) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "modelyard", *command, "--port", str(port)],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if (
                    httpx.get(
                        f"{url}{ready}",
                        verify=ssl.create_default_context(cafile=str(ca)),
                        timeout=1,
                    ).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                raise RuntimeError(f"{command[0]} did not start: {output}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=30)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return make_certificate(tmp_path / "tls")


def test_registry_server_over_https(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    env = {"MODELYARD_HOME": str(tmp_path / "server"), "MODELYARD_TLS_CERTFILE": str(cert),
           "MODELYARD_TLS_KEYFILE": str(key)}  # fmt: skip
    with https_process(["server"], env=env, ca=cert, ready="/health") as url:
        trusting = Settings(home=tmp_path / "client", url=url, tls_ca_file=cert)
        with Yard(trusting) as yard:
            model = DummyRegressor().fit(X, [0.0, 1.0])
            assert yard.log_model(model, name="fraud", input_example=X).number == 1
        # A client that does not trust the certificate refuses to talk to the server.
        with Yard(Settings(home=tmp_path / "stranger", url=url)) as stranger:
            with pytest.raises(RegistryUnavailable, match="MODELYARD_TLS_CA_FILE"):
                stranger.get_version("fraud:1")
        # Plain HTTP to the HTTPS port gets nothing.
        with pytest.raises(httpx.TransportError):
            httpx.get(url.replace("https", "http") + "/health", timeout=5)


def test_inference_server_over_https(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    home = tmp_path / "home"
    with Yard(Settings(home=home)) as yard:
        yard.log_model(DummyRegressor(strategy="constant", constant=2.5).fit(X, [0.0, 1.0]),
                       name="fraud", input_example=X, alias="production")  # fmt: skip
    env = {"MODELYARD_HOME": str(home), "MODELYARD_TLS_CERTFILE": str(cert),
           "MODELYARD_TLS_KEYFILE": str(key)}  # fmt: skip
    with https_process(["serve", "fraud@production"], env=env, ca=cert,
                       ready="/v2/health/ready") as url:  # fmt: skip
        body = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32",
                            "data": [0.0, 0.0, 0.0]}]}  # fmt: skip
        answer = httpx.post(
            f"{url}/v2/models/fraud/infer",
            json=body,
            verify=ssl.create_default_context(cafile=str(cert)),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == [2.5]


def test_half_a_tls_setting_is_refused(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    env = {
        **os.environ,
        "MODELYARD_HOME": str(tmp_path),
        "MODELYARD_TLS_CERTFILE": str(certificate[0]),
    }
    done = subprocess.run([sys.executable, "-m", "modelyard", "server", "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert "tls_certfile and tls_keyfile go together" in done.stderr
