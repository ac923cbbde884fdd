"""Media types and annotations of modelyard's OCI artifacts (CNCF ModelPack where it fits)."""

from __future__ import annotations

import posixpath
from typing import Final

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_ACCEPT: Final = f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"

MODEL_ARTIFACT: Final = "application/vnd.cncf.model.manifest.v1+json"
MODEL_CONFIG: Final = "application/vnd.cncf.model.config.v1+json"
WEIGHT: Final = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_CONFIG: Final = "application/vnd.cncf.model.weight.config.v1.raw"
DOC: Final = "application/vnd.cncf.model.doc.v1.raw"
CODE: Final = "application/vnd.cncf.model.code.v1.raw"

MODELYARD_MANIFEST: Final = "application/vnd.modelyard.manifest.v1+json"
MODELYARD_VERSION: Final = "application/vnd.modelyard.version.v1+json"
MODELYARD_SIGNATURE: Final = "application/vnd.modelyard.signature.v1+json"
"""The version's OpenSSF model-signing bundle (`model.sig`), when it is signed."""
MODELYARD_CHUNK: Final = "application/vnd.modelyard.chunk.v1"
"""A piece of a file (one tensor, or a content-defined chunk): only modelyard reassembles it."""
MODELYARD_FILE: Final = "application/vnd.modelyard.file.v1.raw"
"""A whole file that is none of ModelPack's kinds."""

FILEPATH: Final = "org.cncf.model.filepath"
TITLE: Final = "org.opencontainers.image.title"
CREATED: Final = "org.opencontainers.image.created"
UNPACK: Final = "io.deis.oras.content.unpack"
"""ORAS marks a layer that is a directory packed as tar+gzip with this annotation."""
DIR_LAYER: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
"""oras-py packs a folder as a layer of this type (without `UNPACK`), and unpacks by it."""
VERSION_REF: Final = "io.modelyard.version"

_CONFIG_FILES = {"modelyard.json", "config.json", "generation_config.json", "tokenizer.json"}
_CONFIG_EXTS = {".json", ".yaml", ".yml", ".toml"}
_DOC_EXTS = {".md", ".rst"}
_WEIGHT_EXTS = {
    ".safetensors", ".onnx", ".pt", ".pth", ".bin", ".pkl", ".pickle", ".joblib", ".ubj",
    ".gguf", ".h5", ".npz", ".npy", ".msgpack", ".model",
}  # fmt: skip
_WEIGHT_FILES = {"model.txt"}  # LightGBM's text model


def file_media_type(path: str) -> str:
    """The ModelPack media type of a whole file at `path`, by its name.

    >>> file_media_type("model.safetensors")
    'application/vnd.cncf.model.weight.v1.raw'
    """
    name = posixpath.basename(path)
    ext = posixpath.splitext(name)[1].lower()
    if name in _WEIGHT_FILES or ext in _WEIGHT_EXTS:
        return WEIGHT
    if name in _CONFIG_FILES or ext in _CONFIG_EXTS:
        return WEIGHT_CONFIG
    if ext in _DOC_EXTS or name.upper().startswith(("README", "LICENSE")):
        return DOC
    if ext == ".py":
        return CODE
    return MODELYARD_FILE
