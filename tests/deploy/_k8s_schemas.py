"""Validators for generated manifests: Kubernetes' own schemas (kubernetes-validate, strict)
and the vendored CRDs' openAPIV3Schema (jsonschema), made strict the way the API server prunes."""

from __future__ import annotations

import functools
import gzip
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from modelyard.registry import ModelVersion

DATA = Path(__file__).parent / "data"
KUBERNETES_VERSIONS = ("1.35.0", "1.36.0", "1.37.0")
CRD_FILES = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "serving.kserve.io_servingruntimes.yaml.gz",
    (
        "serving.kserve.io/v1beta1",
        "InferenceService",
    ): "serving.kserve.io_inferenceservices.yaml.gz",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml.gz",
}
DIGEST = "sha256:" + "ab" * 32


def version(name: str = "fraud", *, number: int = 3, flavor: str | None = "sklearn",
            digest: str | None = DIGEST) -> ModelVersion:  # fmt: skip
    """A version record as the registry returns it (its fields are untrusted data)."""
    now = datetime.now(UTC)
    return ModelVersion(id="v", name=name, number=number, manifest_digest=digest, flavor=flavor,
                        created_at=now, updated_at=now)  # fmt: skip


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever the API server would prune them."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if out.get("x-kubernetes-int-or-string"):
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):  # fmt: skip
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    """A validator for the served version `api_version` of the vendored CRD for `kind`."""
    crd = yaml.safe_load(gzip.decompress((DATA / CRD_FILES[api_version, kind]).read_bytes()))
    assert crd["spec"]["names"]["kind"] == kind
    served = api_version.split("/")[1]
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == served and v["served"]]
    schema = _strict(entry["schema"]["openAPIV3Schema"])
    # metadata is the API server's ObjectMeta, which the CRD leaves open; kubernetes-validate
    # checks that part on the built-in objects
    return jsonschema.Draft7Validator(schema)


def validate(obj: dict[str, Any]) -> None:
    """Raise unless `obj` is valid: a CRD kind against its schema, anything else against
    every `KUBERNETES_VERSIONS` schema in strict mode (unknown fields refused)."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CRD_FILES:
        crd_validator(*key).validate(obj)
        return
    for release in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(obj, release, strict=True)
