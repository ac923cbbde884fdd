"""modelyard: model management in one install.

>>> from modelyard import Settings
>>> from modelyard.store import open_store, store_directory
>>> manifest = store_directory(open_store(Settings()), "model/")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelyard.__about__ import __version__
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

if TYPE_CHECKING:
    from modelyard._active_run import ActiveRun
    from modelyard._yard import Yard

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


def __getattr__(name: str) -> Any:
    # The client pulls in SQLAlchemy, httpx and the registry: import it only when asked for, so
    # `import modelyard.store` (and every `modelyard.*` import) stays light.
    if name == "Yard":
        from modelyard._yard import Yard

        return Yard
    if name == "ActiveRun":
        from modelyard._active_run import ActiveRun

        return ActiveRun
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
