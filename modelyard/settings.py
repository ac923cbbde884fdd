"""One typed configuration for the whole process, read from `MODELYARD_*` environment variables.

Build it once at the entry point (CLI, server, `Yard()`) and pass it down; nothing else reads the
environment.

    >>> settings = Settings(home="/srv/yard")
    >>> settings.store_url
    'file:///srv/yard/blobs'
"""

from __future__ import annotations

import getpass
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    s3_endpoint_url: str | None = None
    """Endpoint of an S3-compatible server (SeaweedFS, MinIO, …); unset means AWS itself."""

    s3_region: str | None = None
    """Region passed to the S3 client; most S3-compatible servers accept any value."""

    s3_access_key_id: str | None = None
    """Access key for S3; unset means boto3's usual chain (AWS_* variables, profiles, roles)."""

    s3_secret_access_key: str | None = None
    """Secret key for S3, paired with `s3_access_key_id`."""

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

    alert_webhooks: list[str] = Field(default_factory=list)
    """URL prefixes alert webhooks may post to (a JSON list); any other webhook is refused."""

    serve_poll_seconds: float = Field(default=2.0, gt=0)
    """Serving: how often served aliases are checked for a move (then hot-swapped)."""

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.home = self.home.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'registry.db'}"
        if not self.store_url:
            self.store_url = (self.home / "blobs").as_uri()
        if not self.user:
            self.user = getpass.getuser()
        return self
