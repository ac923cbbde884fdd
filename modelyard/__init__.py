"""modelyard: model management in one install.

>>> from modelyard import Settings
>>> from modelyard.store import open_store, store_directory
>>> manifest = store_directory(open_store(Settings()), "model/")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelyard.__about__ import __version__
from modelyard.errors import (
    AliasNotFound,
    AuditHeadMissing,
    BlobNotFound,
    BucketNotFound,
    BuildFailed,
    CollectionRefused,
    ConfigurationError,
    CrossSiteRequest,
    DatabaseInUse,
    DatabaseReplaced,
    DigestMismatch,
    GateFailed,
    IdempotencyConflict,
    IncompatibleModels,
    InferenceError,
    InputRejected,
    IntegrityError,
    InvalidDatabase,
    InvalidDataFile,
    InvalidFilter,
    InvalidInput,
    InvalidManifest,
    InvalidReference,
    InvalidRequirement,
    InvalidTransition,
    MethodNotAllowed,
    MissingDependency,
    ModelCrashed,
    ModelNotFound,
    ModelNotReady,
    ModelyardError,
    NotFound,
    OciAuthenticationFailed,
    OciRegistryError,
    OptimizationRefused,
    OutputExists,
    PayloadTooLarge,
    PermissionDenied,
    RegistryUnavailable,
    RequestTimeout,
    RunNotFound,
    SelfApproval,
    ServerBusy,
    SignatureChanged,
    SignatureInvalid,
    SignatureMissing,
    SourceUnavailable,
    StorageFull,
    StoreAccessDenied,
    StoreBusy,
    StoreUnavailable,
    Unauthenticated,
    UnsafeModel,
    UnsupportedModel,
    UntrustedModel,
    VersionInUse,
    VersionNotFound,
    WebhookSignatureInvalid,
)

if TYPE_CHECKING:
    from modelyard._active_run import ActiveRun
    from modelyard._yard import Yard
    from modelyard.security import verify_webhook
    from modelyard.settings import Settings

__all__ = [
    "ActiveRun",
    "AliasNotFound",
    "AuditHeadMissing",
    "BlobNotFound",
    "BucketNotFound",
    "BuildFailed",
    "CollectionRefused",
    "ConfigurationError",
    "CrossSiteRequest",
    "DatabaseInUse",
    "DatabaseReplaced",
    "DigestMismatch",
    "GateFailed",
    "IdempotencyConflict",
    "IncompatibleModels",
    "InferenceError",
    "InputRejected",
    "IntegrityError",
    "InvalidDataFile",
    "InvalidDatabase",
    "InvalidFilter",
    "InvalidInput",
    "InvalidManifest",
    "InvalidReference",
    "InvalidRequirement",
    "InvalidTransition",
    "MethodNotAllowed",
    "MissingDependency",
    "ModelCrashed",
    "ModelNotFound",
    "ModelNotReady",
    "ModelyardError",
    "NotFound",
    "OciAuthenticationFailed",
    "OciRegistryError",
    "OptimizationRefused",
    "OutputExists",
    "PayloadTooLarge",
    "PermissionDenied",
    "RegistryUnavailable",
    "RequestTimeout",
    "RunNotFound",
    "SelfApproval",
    "ServerBusy",
    "Settings",
    "SignatureChanged",
    "SignatureInvalid",
    "SignatureMissing",
    "SourceUnavailable",
    "StorageFull",
    "StoreAccessDenied",
    "StoreBusy",
    "StoreUnavailable",
    "Unauthenticated",
    "UnsafeModel",
    "UnsupportedModel",
    "UntrustedModel",
    "VersionInUse",
    "VersionNotFound",
    "WebhookSignatureInvalid",
    "Yard",
    "__version__",
    "verify_webhook",
]


# Imported on first use, so that `import modelyard` (and so every `modelyard.*` import, and the
# CLI's `--help`) costs the errors alone: the client pulls in SQLAlchemy, httpx and the registry,
# and `Settings` pydantic-settings (a third of a second on its own).
_LAZY = {
    "ActiveRun": "modelyard._active_run",
    "Settings": "modelyard.settings",
    "Yard": "modelyard._yard",
    "verify_webhook": "modelyard.security",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
