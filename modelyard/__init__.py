"""modelyard: model management in one install.

>>> from modelyard import Settings
>>> from modelyard.store import open_store, store_directory
>>> manifest = store_directory(open_store(Settings()), "model/")
"""

from __future__ import annotations

from modelyard.__about__ import __version__
from modelyard._yard import ActiveRun, Yard
from modelyard.errors import (
    BlobNotFound,
    BucketNotFound,
    ConfigurationError,
    DigestMismatch,
    IntegrityError,
    InvalidManifest,
    InvalidReference,
    MissingDependency,
    ModelyardError,
    NotFound,
    RegistryUnavailable,
    StorageFull,
    StoreAccessDenied,
    StoreUnavailable,
)
from modelyard.settings import Settings

__all__ = [
    "ActiveRun",
    "BlobNotFound",
    "BucketNotFound",
    "ConfigurationError",
    "DigestMismatch",
    "IntegrityError",
    "InvalidManifest",
    "InvalidReference",
    "MissingDependency",
    "ModelyardError",
    "NotFound",
    "RegistryUnavailable",
    "Settings",
    "StorageFull",
    "StoreAccessDenied",
    "StoreUnavailable",
    "Yard",
    "__version__",
]
