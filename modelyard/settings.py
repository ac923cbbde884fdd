"""One typed configuration for the whole process, read from `MODELYARD_*` environment variables.

Build it once at the entry point (CLI, server, `Yard()`) and pass it down; nothing else reads the
environment.

    >>> settings = Settings(home="/srv/yard")
    >>> settings.store_url
    'file:///srv/yard/blobs'
"""

from __future__ import annotations

import getpass
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from modelyard.errors import ConfigurationError


class Settings(BaseSettings):
    """Where modelyard keeps its metadata and blobs, and how it reaches remote services."""

    model_config = SettingsConfigDict(
        env_prefix="MODELYARD_", env_file=None, extra="ignore", use_attribute_docstrings=True
    )

    home: Path = Path("~/.modelyard")
    """Folder for the embedded defaults: the SQLite registry and the local blob store."""

    database_url: str = ""
    """SQLAlchemy URL of the registry; empty means `sqlite:///<home>/registry.db`."""

    store_url: str = ""
    """Blob store: `file:///path` or `s3://bucket/prefix`; empty means `file://<home>/blobs`."""

    url: str | None = None
    """Address of a `modelyard server`; when set, clients use it instead of the local registry."""

    user: str = ""
    """Who is acting, as recorded in the audit log; empty means the login name."""

    client_retries: int = Field(default=3, ge=0)
    """How many times a client of a `modelyard server` sends a registration again after a
    dropped connection or a 5xx answer (with backoff); its idempotency key makes that safe."""

    s3_endpoint_url: str | None = None
    """Endpoint of an S3-compatible server (SeaweedFS, MinIO, …); unset means AWS itself."""

    s3_region: str | None = None
    """Region passed to the S3 client; most S3-compatible servers accept any value."""

    s3_access_key_id: str | None = None
    """Access key for S3; unset means boto3's usual chain (AWS_* variables, profiles, roles)."""

    s3_secret_access_key: str | None = None
    """Secret key for S3, paired with `s3_access_key_id`."""

    s3_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long the S3 client waits to connect, and for each answer, before it gives up on an
    attempt: an endpoint that stops answering fails with `StoreUnavailable` instead of hanging."""

    s3_retries: int = Field(default=2, ge=0)
    """How many times a failed S3 call is tried again (with backoff) before `StoreUnavailable`."""

    oci_username: str | None = None
    """User name for `oci://` registries (push/pull); the password comes from `oci_password`."""

    oci_password: SecretStr | None = None
    """Password or token for `oci://` registries, sent only to the registry or its token realm."""

    oci_plain_http: list[str] = Field(default_factory=list, examples=[["registry.lan:5000"]])
    """Registries (`host` or `host:port`) reached over plain HTTP, like Docker's
    insecure-registries; loopback hosts always may be. Every other registry needs HTTPS."""

    serve_max_batch_size: int = Field(default=64, ge=1)
    """Serving: the most rows one batched call of a model gets."""

    serve_max_wait_ms: float = Field(default=0.0, ge=0)
    """Serving: how long a batch waits for more requests once the last batch had several.
    0 (the default) measured best: while one batch runs, the next fills up by itself."""

    serve_max_queue: int = Field(default=512, ge=1)
    """Serving: requests that may wait per model; past that the server answers 429."""

    serve_max_body_bytes: int = Field(default=64 << 20, ge=1024)
    """Serving: the largest request body accepted; larger ones get 413."""

    serve_log_sample: float = Field(default=0.0, ge=0, le=1)
    """Serving: the share of requests logged for monitoring (inputs, outputs, version, latency);
    0 logs none."""

    serve_log_buffer: int = Field(default=10_000, ge=1)
    """Serving: records the prediction log holds before it drops (and counts) new ones."""

    serve_alerts: Path | None = None
    """Serving: a rules file (YAML or JSON) of alerts the server evaluates on a schedule."""

    serve_alert_seconds: float = Field(default=30.0, gt=0)
    """Serving: how often alert rules are evaluated."""

    alert_lease_seconds: float | None = Field(default=None, gt=0, le=86_400)
    """Serving: how long the alert lease lasts: the replicas (and workers) running the same rules
    evaluate them once, in the process holding the lease, which renews it at each evaluation;
    when it dies another takes over after this long (at once when it stops cleanly). Default:
    three `serve_alert_seconds`."""

    alert_webhooks: list[str] = Field(
        default_factory=list, examples=[["https://hooks.example.com/alerts"]]
    )
    """URLs alert webhooks may post to (a JSON list): a webhook needs the same scheme, host and
    port as an entry and a path at or under the entry's (compared parsed and normalised, no
    userinfo); any other webhook is refused."""

    registry_webhooks: list[str] = Field(
        default_factory=list, examples=[["https://ci.example.com/hooks/modelyard"]]
    )
    """URLs registry webhooks (`modelyard webhook add`) may post to (a JSON list), checked like
    `alert_webhooks`; empty: no registry webhook can be created."""

    serve_poll_seconds: float = Field(default=2.0, gt=0)
    """Serving: how often served aliases are checked for a move (then hot-swapped)."""

    serve_alias_events: bool = True
    """Serving: also check a served alias as soon as the registry tells of a move (PostgreSQL
    LISTEN/NOTIFY, a registry server's event stream, a 0.25 s look at SQLite); off: polling
    alone (e.g. behind a PgBouncer in transaction mode, where LISTEN does not work)."""

    serve_allow_signature_change: bool = False
    """Serving: swap in a version whose signature differs from the served one's (other inputs,
    or other output names or datatypes); refused, logged and counted otherwise."""

    trusted_types: list[str] = Field(default_factory=list)
    """Loading: skops types (`module.Name`, a JSON list) trusted beyond modelyard's fixed list of
    safe scikit-learn types. Types recorded in a version's own files are never trusted."""

    trusted_modules: list[str] = Field(default_factory=list)
    """Loading: module prefixes (a JSON list, `mycompany.models` covers its submodules) whose
    classes a version may name (a torch `class` setting) and a trusted pickle may import."""

    probe_timeout_seconds: float = Field(default=60.0, gt=0)
    """Loading: how long the probe of a natively loaded model (LightGBM, XGBoost) may take in
    its own process, before a registry or serving process loads it."""

    token: SecretStr | None = None
    """Client: the bearer token sent to a `modelyard server` (an API token from `modelyard token
    create`, or an OIDC access token)."""

    auth: bool = False
    """Server: require a bearer token on every request. Off, everyone acts as the server's own
    user, which `modelyard server` allows only on a loopback address (or with `--insecure`)."""

    auth_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    """Server: how long a verified token and the grants are cached in memory; a revoked token
    or a removed grant stops working within this time."""

    oidc_jwks_url: str | None = None
    """Server: the identity provider's JWKS URL; set it (with issuer and audience) to accept
    OIDC/JWT bearer tokens."""

    oidc_issuer: str | None = None
    """Server: the `iss` an OIDC token must carry."""

    oidc_audience: str | None = None
    """Server: the `aud` an OIDC token must carry."""

    oidc_user_claim: str = "sub"
    """Server: the OIDC claim naming the user (`sub`, or `preferred_username`, `email`, …)."""

    oidc_groups_claim: str = "groups"
    """Server: the OIDC claim listing the user's groups; grants to a group apply to them."""

    trusted_proxies: list[str] = Field(default_factory=list)
    """Server: addresses (or networks, `10.0.0.0/8`) of reverse proxies that authenticate users
    themselves; only requests from them may name the user in `X-Modelyard-User` (a JSON list)."""

    protected_aliases: list[str] = Field(default_factory=lambda: ["production"])
    """Server: aliases that only an approver (or admin) may move, delete or roll back."""

    require_signature: bool = False
    """Loading and serving: refuse a version whose signature does not verify with one of
    `trusted_keys` (see docs/signing.md)."""

    trusted_keys: list[Path] = Field(default_factory=list)
    """Signing: public keys (EC, PEM files; a JSON list) whose signatures are trusted, by
    `require_signature`, `modelyard verify` and the `signed` gate."""

    signing_key: Path | None = None
    """Signing: a private key (EC, PEM) with which a version is signed when it is promoted into
    one of `signing_states` through this client; unset signs nothing on promotion."""

    signing_key_password: SecretStr | None = None
    """Signing: the password of `signing_key` (and of `modelyard sign --key`), if encrypted."""

    signing_states: list[str] = Field(default_factory=lambda: ["staging", "production"])
    """Signing: the states whose entry signs a version with `signing_key` (a JSON list)."""

    secret_key: SecretStr | None = None
    """Registry: the secret that keys the audit chain and search page tokens (a key derived per
    purpose). Unset, a random one is made once and kept in `<home>/secret.key` (mode 0600).
    Every process writing the same database (several servers, a server and the CLI) needs the
    same secret."""

    server_max_body_bytes: int = Field(default=64 << 20, ge=1024)
    """Registry server: the largest request body accepted (larger ones get 413); blob uploads
    have their own limit."""

    server_max_inline_bytes: int = Field(default=8 << 20, ge=0)
    """Registry server: the most blob bytes that may ride along inline with one registration
    (larger models upload their blobs first, as the client does by itself)."""

    server_read_timeout_seconds: float = Field(default=30.0, gt=0)
    """Servers (`server` and `serve`): how long a client may take to send a request body, and
    to send the headers of the next request on a kept-alive connection (then it is closed)."""

    server_log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    """Servers (`server` and `serve`): what they print on stderr. `info` logs one line per
    request; `warning` only problems (and where they listen); `error` and `critical` less."""

    tls_certfile: Path | None = None
    """Servers (`server` and `serve`): serve HTTPS with this certificate chain (PEM); needs
    `tls_keyfile`. Unset means plain HTTP (put a TLS proxy in front beyond loopback)."""

    tls_keyfile: Path | None = None
    """Servers: the private key (PEM) of `tls_certfile`."""

    tls_ca_file: Path | None = None
    """Clients: a CA bundle (PEM) to verify a server's certificate with, such as a team's own
    CA; unset means the system's trusted CAs."""

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.home = self.home.expanduser()
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together: set both or neither")
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'registry.db'}"
        if not self.store_url:
            self.store_url = (self.home / "blobs").as_uri()
        if not self.user:
            self.user = getpass.getuser()
        return self


def load_settings(**values: Any) -> Settings:
    """`Settings(**values)` over the environment; a `MODELYARD_*` variable that does not parse
    raises one `ConfigurationError` naming the variable and the form it expects, instead of
    pydantic's multi-line report.

    >>> load_settings()  # with MODELYARD_ALERT_WEBHOOKS=https://x/
    ConfigurationError: MODELYARD_ALERT_WEBHOOKS='https://x/': not valid JSON; expected a JSON list…
    """
    try:
        return Settings(**values)
    except SettingsError as error:  # a list or other JSON field whose text is not JSON
        found = re.search(r'field "(\w+)"', str(error))
        raise _setting_error(found[1] if found else "", "not valid JSON") from None
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise _setting_error(field, first["msg"].removeprefix("Value error, ")) from None


_FORMS = {
    list: 'a JSON list such as \'["first", "second"]\'',
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    Path: "a path",
}


def _setting_error(field: str, problem: str) -> ConfigurationError:
    info = Settings.model_fields.get(field)
    if info is None:  # a check across fields (tls_certfile with tls_keyfile)
        return ConfigurationError(f"MODELYARD_* settings: {problem}")
    variable = f"MODELYARD_{field.upper()}"
    kind = getattr(info.annotation, "__origin__", info.annotation)
    form = next((text for cls, text in _FORMS.items() if kind is cls), "")
    if info.examples:  # the field's own example says more than the generic form
        form = f"{form.split(' such as ')[0]} such as '{json.dumps(info.examples[0])}'"
    if not form:  # `X | None`: the form of X
        args = getattr(info.annotation, "__args__", ())
        form = next((_FORMS[a] for a in args if a in _FORMS), "text")
    secret = SecretStr in (info.annotation, *getattr(info.annotation, "__args__", ()))
    value = None if secret else os.environ.get(variable)
    given = f"={value!r}" if value is not None else ""
    return ConfigurationError(
        f"{variable}{given}: {problem[:1].lower()}{problem[1:]}; expected {form}"
    )
