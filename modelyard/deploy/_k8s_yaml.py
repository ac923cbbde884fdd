"""Manifests as YAML: one multi-document stream, or one file per object in a folder.

Rendered with `yaml.safe_dump`, never string templates, so a hostile name or tag cannot
inject keys or documents.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


def render_yaml(objects: Sequence[dict[str, Any]]) -> str:
    """The objects as one YAML stream (`---` between documents), keys in the written order.

    >>> print(render_yaml(serving_manifests(version)))
    """
    return yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True, width=100)


def file_name(index: int, obj: dict[str, Any]) -> str:
    """`01-deployment-fraud.yaml`: ordered as applied, named by kind and (checked) name."""
    kind = str(obj["kind"]).lower()
    name = re.sub(r"[^a-z0-9.-]", "-", str(obj["metadata"]["name"]))
    return f"{index:02d}-{kind}-{name}.yaml"


def write_yaml(objects: Sequence[dict[str, Any]], folder: Path) -> list[Path]:
    """Write each object to its own file in `folder` (created); the paths written.

    >>> write_yaml(serving_manifests(version), Path("k8s/fraud"))
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, obj in enumerate(objects, start=1):
        path = folder / file_name(index, obj)
        path.write_text(yaml.safe_dump(obj, sort_keys=False, width=100))
        paths.append(path)
    return paths
