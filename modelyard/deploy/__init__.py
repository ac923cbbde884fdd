"""From a registered version to a running deployment: OCI artifacts, container images,
Kubernetes and KServe manifests.

Each part takes the narrow seams lower layers offer (a `BlobStore`, a `ModelVersion`, a model
folder), never the `Yard` facade, which offers them as methods.
"""

from __future__ import annotations

from modelyard.deploy._container import (
    BuildContext,
    default_base,
    pinned_requirements,
    version_record,
    write_context,
)
from modelyard.deploy._container_build import Builder, build_image, find_builder
from modelyard.deploy._k8s_kserve import kserve_manifests
from modelyard.deploy._k8s_names import check_label, parse_labels
from modelyard.deploy._k8s_objects import Placement
from modelyard.deploy._k8s_registry import RegistryOptions, registry_manifests
from modelyard.deploy._k8s_serving import ServingOptions, default_image, serving_manifests
from modelyard.deploy._k8s_yaml import render_yaml, write_yaml
from modelyard.deploy._modelcar import write_modelcar
from modelyard.deploy._oci_names import names_are_true
from modelyard.deploy._oci_pull import PulledArtifact, VersionRecord, pull_artifact
from modelyard.deploy._oci_push import PushResult, push_version
from modelyard.deploy._oci_refs import OciReference, parse_reference

__all__: list[str] = [
    "BuildContext",
    "Builder",
    "OciReference",
    "Placement",
    "PulledArtifact",
    "PushResult",
    "RegistryOptions",
    "ServingOptions",
    "VersionRecord",
    "build_image",
    "check_label",
    "default_base",
    "default_image",
    "find_builder",
    "kserve_manifests",
    "names_are_true",
    "parse_labels",
    "parse_reference",
    "pinned_requirements",
    "pull_artifact",
    "push_version",
    "registry_manifests",
    "render_yaml",
    "serving_manifests",
    "version_record",
    "write_context",
    "write_modelcar",
    "write_yaml",
]
