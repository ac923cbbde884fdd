"""Every error modelyard raises on purpose, each with the HTTP status an API answers it with.

    ModelyardError (500)
    ├── ConfigurationError (400)        a setting or URL that cannot work
    ├── InvalidReference (400)          a digest or reference that does not parse
    ├── InvalidManifest (400)           a manifest that is malformed or points outside its folder
    ├── DigestMismatch (400)            uploaded bytes that do not hash to their stated digest
    ├── InvalidInput (400)              inputs that do not match a model's signature
    ├── UnsupportedModel (400)          an object or folder no flavor can save or load
    ├── IncompatibleModels (400)        versions that cannot be merged, naming the tensor
    ├── OptimizationRefused (422)       an optimized model whose metric fell past the tolerance
    ├── UntrustedModel (403)            a pickle-based file loaded without trust=True
    │   └── UnsafeModel (403)           a pickle that imports os.system, subprocess, eval, …
    ├── NotFound (404)
    │   └── BlobNotFound (404)          no blob with that digest
    ├── IntegrityError (500)            stored bytes no longer match their digest
    ├── InferenceError (500)            a model raised while predicting
    ├── ModelNotReady (503)             a served model is still loading, or failed to
    ├── ServerBusy (429)                the request queue is full; retry after `retry_after` s
    ├── PayloadTooLarge (413)           a request body over the configured limit
    ├── MissingDependency (500)         an optional extra is not installed
    ├── RegistryUnavailable (503)       the registry database cannot be used right now
    └── StoreUnavailable (503)          the blob store cannot be used right now
        ├── StoreAccessDenied (503)     credentials refused
        ├── BucketNotFound (503)        the configured bucket does not exist
        └── StorageFull (507)           no space left to write

Catch `ModelyardError` to handle them all; `str(error)` is a sentence that says what to do.
"""

from __future__ import annotations


class ModelyardError(Exception):
    """Base of every modelyard error; `status_code` is the HTTP status an API answers with."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(ModelyardError):
    """A setting, URL or option that cannot work as given."""

    status_code = 400


class InvalidReference(ModelyardError):
    """A digest or reference string that does not parse."""

    status_code = 400

    def __init__(self, reference: str, *, expected: str) -> None:
        super().__init__(f"invalid reference {reference!r}: expected {expected}")
        self.reference = reference


class InvalidManifest(ModelyardError):
    """A manifest that is malformed, or whose paths would escape the folder it restores into."""

    status_code = 400


class DigestMismatch(ModelyardError):
    """Bytes sent under a digest hash to something else; nothing was stored."""

    status_code = 400

    def __init__(self, digest: str, *, actual: str) -> None:
        super().__init__(f"the bytes sent as {digest} hash to {actual}; nothing was stored")
        self.digest = digest
        self.actual = actual


class InvalidInput(ModelyardError):
    """Inputs that do not match what a model's signature declares; the message names the input."""

    status_code = 400


class UnsupportedModel(ModelyardError):
    """An object no flavor knows how to save, or a folder no flavor can load."""

    status_code = 400


class IncompatibleModels(ModelyardError):
    """Two versions whose weights cannot be combined; the message names the first tensor."""

    status_code = 400


class UntrustedModel(ModelyardError):
    """A pickle-based file (pickle, joblib, `torch.save`) that was not explicitly trusted.

    Unpickling runs whatever code the file names, so it needs `trust=True`, and even then the
    file is scanned first.
    """

    status_code = 403

    def __init__(self, path: str, *, kind: str = "pickle") -> None:
        super().__init__(
            f"{path} is a {kind} file, which can run arbitrary code when loaded; pass trust=True "
            "if you trust its origin (it is scanned for unsafe imports first), or save the model "
            "in a safe format"
        )
        self.path = path


class UnsafeModel(UntrustedModel):
    """A pickle-based file that imports something dangerous (`os.system`, `subprocess`, `eval`)."""

    def __init__(self, path: str, *, imports: list[str]) -> None:
        ModelyardError.__init__(
            self,
            f"refusing to load {path}: it imports {', '.join(imports)}, which can run "
            "arbitrary code; it was not loaded even though trust=True",
        )
        self.path = path
        self.imports = imports


class NotFound(ModelyardError):
    """Something asked for by name or digest does not exist."""

    status_code = 404


class BlobNotFound(NotFound):
    """No blob with this digest is in the store."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"blob {digest} is not in the store")
        self.digest = digest


class IntegrityError(ModelyardError):
    """Bytes read back do not hash to the digest they are stored under."""

    def __init__(self, digest: str, *, actual: str) -> None:
        super().__init__(
            f"blob {digest} is corrupt: its bytes hash to {actual}; restore it from a replica "
            "or re-log the model version that holds it"
        )
        self.digest = digest
        self.actual = actual


class InferenceError(ModelyardError):
    """The model raised while predicting; the message is the model's."""

    def __init__(self, model: str, message: str) -> None:
        super().__init__(f"{model} failed to predict: {message}")
        self.model = model


class ModelNotReady(ModelyardError):
    """A served model that is still loading (or failed to load)."""

    status_code = 503


class ServerBusy(ModelyardError):
    """Too many requests are waiting; the client should retry after `retry_after` seconds."""

    status_code = 429

    def __init__(self, model: str, *, waiting: int, retry_after: int = 1) -> None:
        super().__init__(
            f"{model} has {waiting} requests waiting, the most it queues; retry in {retry_after} s"
        )
        self.model = model
        self.retry_after = retry_after


class PayloadTooLarge(ModelyardError):
    """A request body larger than the server accepts."""

    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the limit of {limit} bytes")
        self.limit = limit


class MissingDependency(ModelyardError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, module: str, *, extra: str) -> None:
        super().__init__(
            f'{module} is not installed; install it with: pip install "modelyard[{extra}]"'
        )
        self.module = module
        self.extra = extra


class RegistryUnavailable(ModelyardError):
    """The registry database cannot be reached or used."""

    status_code = 503


class StoreUnavailable(ModelyardError):
    """The blob store cannot be reached or used."""

    status_code = 503


class StoreAccessDenied(StoreUnavailable):
    """The store refused the credentials."""


class BucketNotFound(StoreUnavailable):
    """The bucket named in the store URL does not exist."""

    def __init__(self, bucket: str) -> None:
        super().__init__(
            f"bucket {bucket!r} does not exist; create it, or point MODELYARD_STORE_URL "
            "at an existing bucket"
        )
        self.bucket = bucket


class StorageFull(StoreUnavailable):
    """No space is left where the store writes."""

    status_code = 507


class OptimizationRefused(ModelyardError):
    """An optimized model whose metric fell by more than the tolerance; nothing was registered.
    `report` holds the figures (pass `force=True` to register it anyway, tagged)."""

    status_code = 422

    def __init__(self, message: str, *, report: object = None) -> None:
        super().__init__(message)
        self.report = report
