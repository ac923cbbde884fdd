"""From a registered version to a running deployment: OCI artifacts, container images,
Kubernetes and KServe manifests.

Each part takes the narrow seams lower layers offer (a `BlobStore`, a `ModelVersion`, a model
folder), never the `Yard` facade, which offers them as methods.
"""

from __future__ import annotations

__all__: list[str] = []
