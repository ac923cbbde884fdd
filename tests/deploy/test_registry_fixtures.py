"""The registry fixtures themselves: open answers /v2/, auth wants the credentials."""

from __future__ import annotations

import httpx

from tests.deploy.conftest import OciRegistry


def test_open_and_auth_registries_answer(
    oci_registry: OciRegistry, oci_registry_auth: OciRegistry
) -> None:
    assert httpx.get(f"http://{oci_registry.host}/v2/").status_code == 200
    assert oci_registry.username is None and oci_registry.root.is_dir()
    assert oci_registry.url("m/x", "v1") == f"oci://{oci_registry.host}/m/x:v1"
    anonymous = httpx.get(f"http://{oci_registry_auth.host}/v2/")
    assert anonymous.status_code == 401
    assert "Basic" in anonymous.headers["www-authenticate"]
    assert oci_registry_auth.username and oci_registry_auth.password
    auth = (oci_registry_auth.username, oci_registry_auth.password)
    assert httpx.get(f"http://{oci_registry_auth.host}/v2/", auth=auth).status_code == 200
