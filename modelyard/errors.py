"""Every error modelyard raises on purpose, each with the HTTP status an API answers it with.

    ModelyardError (500)
    ├── ConfigurationError (400)        a setting or URL that cannot work
    ├── InvalidReference (400)          a digest or reference that does not parse
    ├── InvalidManifest (400)           a manifest that is malformed or points outside its folder
    ├── InvalidFilter (400)             a search filter or ordering that does not parse
    ├── DigestMismatch (400)            uploaded bytes that do not hash to their stated digest
    ├── InvalidInput (400)              inputs that do not match a model's signature
    │   └── InvalidDataFile (400)       a file to score that cannot be read or does not fit
    ├── UnsupportedModel (400)          an object or folder no flavor can save or load
    │   └── ModelCrashed (400)          a model file that crashed the process probing it
    ├── IncompatibleModels (400)        versions that cannot be merged, naming the tensor
    ├── SignatureChanged (409)          a swap to a version that takes or answers otherwise
    ├── OptimizationRefused (422)       an optimized model whose metric fell past the tolerance
    ├── UntrustedModel (403)            a pickle, stored code or type the operator did not trust
    │   └── UnsafeModel (403)           a pickle that imports os.system, subprocess, eval, …
    ├── Unauthenticated (401)           no valid token: missing, unknown, expired or revoked
    ├── PermissionDenied (403)          a valid principal lacking the role the request needs
    ├── SelfApproval (403)              a version's creator approving it
    ├── CrossSiteRequest (403)          a web UI form posted from another site, or without its token
    ├── SignatureMissing (422)          a version with no signature where policy requires one
    ├── SignatureInvalid (422)          a signature that a trusted key does not verify, or files
    │                                   that differ from what was signed
    ├── WebhookSignatureInvalid (401)   a webhook delivery whose signature or timestamp fails
    ├── NotFound (404)
    │   ├── BlobNotFound (404)          no blob with that digest
    │   ├── ModelNotFound (404)         no model with that name
    │   ├── VersionNotFound (404)       no version a reference names
    │   ├── AliasNotFound (404)         no alias of that name on the model
    │   └── RunNotFound (404)           no run with that id
    ├── IdempotencyConflict (409)       an idempotency key reused for a different request
    ├── OutputExists (409)              a scoring output folder that already holds data
    ├── VersionInUse (409)              deleting a version that aliases point at
    ├── InvalidTransition (409)         a lifecycle move the lifecycle does not allow
    ├── GateFailed (409)                a promotion that gates refused, listing every failure
    ├── CollectionRefused (409)         garbage collection that could delete something referenced
    ├── IntegrityError (500)            stored bytes no longer match their digest
    ├── AuditHeadMissing (500)          the audit log's head row is gone (tampering)
    ├── InferenceError (500)            a model raised while predicting
    │   └── InputRejected (422)         … ValueError, TypeError, LookupError, ArithmeticError
    ├── ModelNotReady (503)             a served model is still loading, or failed to
    ├── ServerBusy (429)                the request queue is full; retry after `retry_after` s
    ├── PayloadTooLarge (413)           a request body over the configured limit
    ├── RequestTimeout (408)            a request body that did not arrive in time
    ├── MethodNotAllowed (405)          an HTTP method the path does not take
    ├── MissingDependency (500)         an optional extra is not installed
    ├── InvalidRequirement (400)        a package pin from a model's files that is not name==version
    ├── BuildFailed (500)               no podman or buildah, or a container build that failed
    ├── RegistryUnavailable (503)       the registry database cannot be used right now
    │   ├── DatabaseReplaced (503)      the SQLite file was replaced or deleted under this process
    │   └── InvalidDatabase (503)       a SQLite file that is not a registry: a stub, truncated
    ├── DatabaseInUse (409)             a restore over a database that processes have open
    ├── SourceUnavailable (502)         a system an import reads (an MLflow server) failed
    ├── OciRegistryError (502)          an OCI registry refused or failed a push or pull
    │   └── OciAuthenticationFailed (502) … refused the credentials (401/403), or none were given
    └── StoreUnavailable (503)          the blob store cannot be used right now
        ├── StoreAccessDenied (503)     credentials refused
        ├── BucketNotFound (503)        the configured bucket does not exist
        ├── StoreBusy (503)             writes and garbage collection waited too long for each other
        └── StorageFull (507)           no space left to write

Catch `ModelyardError` to handle them all; `str(error)` is a sentence that says what to do.
Over HTTP an error travels as its `code` (`"version_in_use"`), which never changes once
released, and the client raises the class registered under it (`CODES`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

_CODE = re.compile(r"[a-z][a-z0-9_]*")
_BY_CODE: dict[str, type[ModelyardError]] = {}

CODES: Mapping[str, type[ModelyardError]] = MappingProxyType(_BY_CODE)
"""Every error class by its wire `code`, read-only."""


class ModelyardError(Exception):
    """Base of every modelyard error; `status_code` is the HTTP status an API answers with.

    `code` names the class on the wire (`{"error": …, "code": "version_in_use"}`): clients
    rebuild the error from it, never from the class's Python name, so a class can be renamed or
    moved without changing the HTTP protocol. A subclass declaring a `code` already taken fails
    at import; a subclass declaring none travels as its nearest base that has one.
    """

    code: ClassVar[str] = "modelyard_error"
    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            _register(cls)


def _register(cls: type[ModelyardError]) -> None:
    if not _CODE.fullmatch(cls.code):
        raise TypeError(f"{cls.__qualname__}.code {cls.code!r} is not snake_case")
    taken = _BY_CODE.setdefault(cls.code, cls)
    if taken is not cls:
        raise TypeError(f"error code {cls.code!r} of {cls.__qualname__} is {taken.__qualname__}'s")


_register(ModelyardError)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`"; did you mean 'iris'?"` when a choice is close to `word` (a typo), else `""`: the
    tail of a not-found message, so the user sees the name they meant."""
    close = difflib.get_close_matches(word, [c for c in choices if c != word], n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


def class_for(code: str) -> type[ModelyardError]:
    """The error class a wire `code` names; `ModelyardError` for a code this version does not
    know (a newer server's)."""
    return _BY_CODE.get(code, ModelyardError)


class ConfigurationError(ModelyardError):
    """A setting, URL or option that cannot work as given."""

    code = "configuration_error"
    status_code = 400


class InvalidReference(ModelyardError):
    """A digest or reference string that does not parse."""

    code = "invalid_reference"
    status_code = 400

    def __init__(self, reference: str, *, expected: str) -> None:
        super().__init__(f"invalid reference {reference!r}: expected {expected}")
        self.reference = reference


class InvalidManifest(ModelyardError):
    """A manifest that is malformed, or whose paths would escape the folder it restores into."""

    code = "invalid_manifest"
    status_code = 400


class InvalidFilter(ModelyardError):
    """A search filter or ordering that does not parse or does not make sense."""

    code = "invalid_filter"
    status_code = 400


class DigestMismatch(ModelyardError):
    """Bytes sent under a digest hash to something else; nothing was stored."""

    code = "digest_mismatch"
    status_code = 400

    def __init__(self, digest: str, *, actual: str) -> None:
        super().__init__(f"the bytes sent as {digest} hash to {actual}; nothing was stored")
        self.digest = digest
        self.actual = actual


class InvalidInput(ModelyardError):
    """Inputs that do not match what a model's signature declares; the message names the input."""

    code = "invalid_input"
    status_code = 400


class InvalidDataFile(InvalidInput):
    """A data file to score that cannot be read (not Parquet or CSV, empty) or whose columns do
    not fit the model's signature; the message names the file, then the problem."""

    code = "invalid_data_file"

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self) -> tuple[type[InvalidDataFile], tuple[str, str]]:
        return type(self), (self.path, self.problem)  # travels between Dask processes


class OutputExists(ModelyardError):
    """A scoring output folder that already holds files (pass `overwrite` to replace them)."""

    code = "output_exists"
    status_code = 409


class UnsupportedModel(ModelyardError):
    """An object no flavor knows how to save, or a folder no flavor can load."""

    code = "unsupported_model"
    status_code = 400


class ModelCrashed(UnsupportedModel):
    """A model file that crashed (or hung) the short-lived process that probed it, so no
    long-lived process loads it; the message names the file and the signal or exit code."""

    code = "model_crashed"

    def __init__(self, path: str, *, signal: str, detail: str = "") -> None:
        super().__init__(
            f"{path} crashed the process that loaded it ({signal}){': ' + detail if detail else ''}"
            "; it is refused so that it cannot crash a registry or serving process"
        )
        self.path = path
        self.signal = signal


class IncompatibleModels(ModelyardError):
    """Two versions whose weights cannot be combined; the message names the first tensor."""

    code = "incompatible_models"
    status_code = 400


class SignatureChanged(ModelyardError):
    """A served model asked to swap to a version whose signature differs from the served one's
    (other inputs, or other output names or datatypes): clients would get other answers. The
    operator allows it with `--allow-signature-change`."""

    code = "signature_changed"
    status_code = 409


class UntrustedModel(ModelyardError):
    """A pickle-based file (pickle, joblib, `torch.save`) or stored code that was not explicitly
    trusted, or a file naming types or classes (`types`) the operator has not allowed.

    Unpickling runs whatever code the file names, so it needs `trust=True`, and even then the
    file is checked first. Trust comes from the operator (flags, settings), never from a version.
    """

    code = "untrusted_model"
    status_code = 403

    def __init__(
        self,
        path: str,
        *,
        kind: str = "pickle",
        types: list[str] | None = None,
        setting: str = "trusted_types",
        hint: str = "",
    ) -> None:
        if types:
            message = (
                f"{path}: the {kind} names {', '.join(types)}, which modelyard does not trust; "
                f"an operator who trusts them can allow them with the `{setting}` setting "
                f"(MODELYARD_{setting.upper()}, or `modelyard serve "
                f"--{setting.replace('trusted_', 'trust-').removesuffix('s')}`); a version's "
                f"own files never can{hint}"
            )
        else:
            message = (
                f"{path} is a {kind} file, which can run arbitrary code when loaded; pass "
                "trust=True (`--trust`) if you trust its origin (it is still checked against an "
                "allow-list first), or save the model in a safe format"
            )
        super().__init__(message)
        self.path = path
        self.types = list(types or [])


class UnsafeModel(UntrustedModel):
    """A pickle-based file that imports something dangerous (`os.system`, `subprocess`, `eval`)."""

    code = "unsafe_model"

    def __init__(self, path: str, *, imports: list[str]) -> None:
        ModelyardError.__init__(
            self,
            f"refusing to load {path}: it imports {', '.join(imports)}, which can run "
            "arbitrary code; it was not loaded even though trust=True",
        )
        self.path = path
        self.imports = imports


class Unauthenticated(ModelyardError):
    """The request carries no valid identity: no token, or one that is unknown, expired or
    revoked. Servers answer it with `WWW-Authenticate: Bearer`."""

    code = "unauthenticated"
    status_code = 401


class PermissionDenied(ModelyardError):
    """A known principal that lacks the role a request needs; the message names the role and
    the model."""

    code = "permission_denied"
    status_code = 403

    def __init__(
        self, principal: str, *, role: str, model: str | None = None, any_model: bool = False
    ) -> None:
        where = f"model {model!r}" if model else "some model" if any_model else "every model"
        super().__init__(
            f"{principal} needs the {role} role on {where} for this; ask an admin to grant it "
            f"(modelyard role grant {principal} {role}"
            + (f" --models {model!r})" if model else ")")
        )
        self.principal = principal
        self.role = role
        self.model = model or ""


class CrossSiteRequest(ModelyardError):
    """A web UI form that came from another site or lacks its security token (CSRF)."""

    code = "cross_site_request"
    status_code = 403


class SelfApproval(ModelyardError):
    """A version's creator cannot approve it."""

    code = "self_approval"
    status_code = 403

    def __init__(self, actor: str, *, ref: str) -> None:
        super().__init__(f"{actor} created {ref} and cannot approve it; ask someone else")


class SignatureMissing(ModelyardError):
    """A version has no signature, and the operator's policy (`require_signature`, a `signed`
    gate) requires one. 422: the version, not the caller's identity, is what is refused."""

    code = "signature_missing"
    status_code = 422

    def __init__(self, ref: str) -> None:
        super().__init__(
            f"{ref} is not signed, and a signature is required; sign it with "
            f"`modelyard sign {ref} --key PRIVATE.pem` (see docs/signing.md)"
        )
        self.ref = ref


class SignatureInvalid(ModelyardError):
    """A version's signature does not verify with the operator's trusted keys, or its files
    differ from what was signed; `reason` says which, naming the files."""

    code = "signature_invalid"
    status_code = 422

    def __init__(self, ref: str, *, reason: str) -> None:
        super().__init__(f"the signature of {ref} does not verify: {reason}")
        self.ref = ref
        self.reason = reason


class WebhookSignatureInvalid(ModelyardError):
    """A registry webhook delivery whose signature does not match its body, or whose timestamp
    lies outside the receiver's tolerance (a replay); raised by `verify_webhook`."""

    code = "webhook_signature_invalid"
    status_code = 401


class NotFound(ModelyardError):
    """Something asked for by name or digest does not exist."""

    code = "not_found"
    status_code = 404


class BlobNotFound(NotFound):
    """No blob with this digest is in the store."""

    code = "blob_not_found"

    def __init__(self, digest: str) -> None:
        super().__init__(f"blob {digest} is not in the store")
        self.digest = digest


class ModelNotFound(NotFound):
    """No model has this name."""

    code = "model_not_found"

    def __init__(self, name: str, *, known: Iterable[str] = ()) -> None:
        super().__init__(f"model {name!r} does not exist" + did_you_mean(name, known))
        self.name = name


class VersionNotFound(NotFound):
    """The reference names no version."""

    code = "version_not_found"

    def __init__(self, reference: str, *, detail: str = "") -> None:
        super().__init__(f"version {reference} does not exist" + (f": {detail}" if detail else ""))
        self.reference = reference


class AliasNotFound(NotFound):
    """The model has no alias of this name."""

    code = "alias_not_found"

    def __init__(self, name: str, alias: str, *, known: Iterable[str] = ()) -> None:
        super().__init__(f"model {name!r} has no alias {alias!r}" + did_you_mean(alias, known))


class RunNotFound(NotFound):
    """No run has this id."""

    code = "run_not_found"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} does not exist")


class IntegrityError(ModelyardError):
    """Bytes read back do not hash to the digest they are stored under."""

    code = "integrity_error"

    def __init__(self, digest: str, *, actual: str) -> None:
        super().__init__(
            f"blob {digest} is corrupt: its bytes hash to {actual}; restore it from a replica "
            "or re-log the model version that holds it"
        )
        self.digest = digest
        self.actual = actual


class AuditHeadMissing(ModelyardError):
    """The audit head row is gone: the audit log was tampered with; nothing can be appended."""

    code = "audit_head_missing"


class InferenceError(ModelyardError):
    """The model raised while predicting; the message is the model's."""

    code = "inference_error"

    def __init__(self, model: str, message: str) -> None:
        super().__init__(f"{model} failed to predict: {message}")
        self.model = model


class InputRejected(InferenceError):
    """The model refused the request's values: it raised `ValueError`, `TypeError`,
    `LookupError` (`KeyError`, `IndexError`) or `ArithmeticError` (a division by zero, an
    overflow), the errors Python code raises for arguments it cannot take. The request matched
    the signature, so only the model can say what is wrong; the message is its own."""

    code = "input_rejected"
    status_code = 422


class ModelNotReady(ModelyardError):
    """A served model that is still loading (or failed to load)."""

    code = "model_not_ready"
    status_code = 503


class ServerBusy(ModelyardError):
    """Too many requests are waiting; the client should retry after `retry_after` seconds."""

    code = "server_busy"
    status_code = 429

    def __init__(self, model: str, *, waiting: int, retry_after: int = 1) -> None:
        super().__init__(
            f"{model} has {waiting} requests waiting, the most it queues; retry in {retry_after} s"
        )
        self.model = model
        self.retry_after = retry_after


class PayloadTooLarge(ModelyardError):
    """A request body larger than the server accepts."""

    code = "payload_too_large"
    status_code = 413

    def __init__(self, limit: int, *, what: str = "the request body", hint: str = "") -> None:
        super().__init__(
            f"{what} is over the limit of {limit} bytes" + (f"; {hint}" if hint else "")
        )
        self.limit = limit


class RequestTimeout(ModelyardError):
    """A client that did not send its whole request body within the server's read timeout."""

    code = "request_timeout"
    status_code = 408

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body did not arrive within {seconds:g} seconds")
        self.seconds = seconds


class MethodNotAllowed(ModelyardError):
    """A method the path does not take; `allowed` lists those it does (the `Allow` header)."""

    code = "method_not_allowed"
    status_code = 405

    def __init__(self, method: str, path: str, *, allowed: list[str]) -> None:
        super().__init__(f"{method} is not allowed on {path}; use {', '.join(allowed)}")
        self.allowed = allowed


class MissingDependency(ModelyardError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    code = "missing_dependency"

    def __init__(self, module: str, *, extra: str, packages: Sequence[str] = ()) -> None:
        # modelyard is installed from a clone or a wheel, not from PyPI, so `pip install
        # "modelyard[extra]"` finds nothing: name the extra's own packages when they are known.
        clone = f'pip install -e ".[{extra}]"'
        fix = f"{clone} in a clone of modelyard (modelyard's {extra!r} extra)"
        if packages:
            names = " ".join(packages)
            fix = f"pip install {names} (modelyard's {extra!r} extra; in a clone: {clone})"
        super().__init__(f"{module} is not installed; install it with: {fix}")
        self.module = module
        self.extra = extra
        self.packages = tuple(packages)


class InvalidRequirement(ModelyardError):
    """A package name or version read from a model's files (its recorded environment) that is
    not a plain `name==version` pin; refused rather than written into a build."""

    code = "invalid_requirement"
    status_code = 400

    def __init__(self, requirement: str, *, reason: str) -> None:
        super().__init__(
            f"refusing requirement {requirement} from the model's files: {reason}; only "
            "name==version pins of plain names and versions go into an image"
        )
        self.requirement = requirement
        self.reason = reason


class BuildFailed(ModelyardError):
    """A container image could not be built: no builder installed, or the build failed.
    `context` is the build context's folder, left in place to inspect or build by hand."""

    code = "build_failed"

    def __init__(self, message: str, *, hint: str = "", context: object = None) -> None:
        where = f"; the build context is kept at {context}" if context is not None else ""
        super().__init__(f"{message}{where}" + (f" ({hint})" if hint else ""))
        self.context = context


class IdempotencyConflict(ModelyardError):
    """An idempotency key already used for a different request to the same model."""

    code = "idempotency_conflict"
    status_code = 409

    def __init__(self, key: str, *, model: str, version: str) -> None:
        super().__init__(
            f"idempotency key {key!r} already registered {version} with a different request; "
            f"send a new key for a new version of {model!r}"
        )
        self.key = key
        self.model = model
        self.version = version


class VersionInUse(ModelyardError):
    """The version cannot be deleted while aliases point at it."""

    code = "version_in_use"
    status_code = 409

    def __init__(self, ref: str, *, aliases: list[str]) -> None:
        super().__init__(
            f"version {ref} is the target of alias(es) {', '.join(aliases)}; "
            "move or delete them first"
        )
        self.aliases = aliases


class InvalidTransition(ModelyardError):
    """The lifecycle does not allow this move; the message lists the moves it allows."""

    code = "invalid_transition"
    status_code = 409

    def __init__(self, ref: str, *, current: str, wanted: str, allowed: list[str]) -> None:
        super().__init__(
            f"{ref} cannot move from {current} to {wanted}; allowed: {', '.join(allowed) or 'none'}"
        )


class GateFailed(ModelyardError):
    """One or more promotion gates refused the move; `failures` lists every one."""

    code = "gate_failed"
    status_code = 409

    def __init__(self, ref: str, *, wanted: str, failures: list[str]) -> None:
        super().__init__(f"{ref} cannot enter {wanted}: " + "; ".join(failures))
        self.failures = failures


class RegistryUnavailable(ModelyardError):
    """The registry database cannot be reached or used."""

    code = "registry_unavailable"
    status_code = 503


class DatabaseReplaced(RegistryUnavailable):
    """The SQLite file this process opened was replaced (a restore, a copy) or deleted while it
    ran: writing on would go into a file nobody else sees, so nothing more is written."""

    code = "database_replaced"

    def __init__(self, path: str, *, vanished: bool) -> None:
        what = "was deleted" if vanished else "was replaced by another file"
        super().__init__(
            f"the registry database {path} {what} while this process had it open; nothing "
            "more is written to it. Restart this process (servers too) to use the file now there"
        )
        self.path = path
        self.vanished = vanished


class DatabaseInUse(ModelyardError):
    """A restore refused: other processes have the target database open."""

    code = "database_in_use"
    status_code = 409

    def __init__(self, path: str) -> None:
        super().__init__(
            f"the registry database {path} is open in another process (a server, a serve, a "
            "script); stop them and restore again, or pass --force and restart them after"
        )
        self.path = path


class InvalidDatabase(RegistryUnavailable):
    """A file at the registry's path that is not a usable registry (an empty stub, a truncated
    copy, another kind of file); it is never migrated over."""

    code = "invalid_database"

    def __init__(self, path: str, *, reason: str) -> None:
        super().__init__(f"the registry database {path} cannot be used: {reason}")
        self.path = path
        self.reason = reason


class SourceUnavailable(ModelyardError):
    """A system an import reads from (an MLflow tracking server) cannot be reached, refused the
    credentials, or answered with an error; the message names the server and what it said."""

    code = "source_unavailable"
    status_code = 502


class OciRegistryError(ModelyardError):
    """An OCI registry (push/pull of `oci://` references) could not be reached or answered with
    an error; the message names the registry, the request and what it said."""

    code = "oci_registry_error"
    status_code = 502


class OciAuthenticationFailed(OciRegistryError):
    """An OCI registry refused the credentials (401/403), or asked for some and none were given."""

    code = "oci_authentication_failed"


class StoreUnavailable(ModelyardError):
    """The blob store cannot be reached or used."""

    code = "store_unavailable"
    status_code = 503


class StoreAccessDenied(StoreUnavailable):
    """The store refused the credentials."""

    code = "store_access_denied"


class BucketNotFound(StoreUnavailable):
    """The bucket named in the store URL does not exist."""

    code = "bucket_not_found"

    def __init__(self, bucket: str) -> None:
        super().__init__(
            f"bucket {bucket!r} does not exist; create it, or point MODELYARD_STORE_URL "
            "at an existing bucket"
        )
        self.bucket = bucket


class StorageFull(StoreUnavailable):
    """No space is left where the store writes."""

    code = "storage_full"
    status_code = 507


class StoreBusy(StoreUnavailable):
    """Garbage collection waited too long for writes in flight (or a write for a collection)."""

    code = "store_busy"


class CollectionRefused(ModelyardError):
    """Garbage collection refused to run: it could not know everything that is referenced."""

    code = "collection_refused"
    status_code = 409


class OptimizationRefused(ModelyardError):
    """An optimized model whose metric fell by more than the tolerance; nothing was registered.
    `report` holds the figures (pass `force=True` to register it anyway, tagged)."""

    code = "optimization_refused"
    status_code = 422

    def __init__(self, message: str, *, report: object = None) -> None:
        super().__init__(message)
        self.report = report
