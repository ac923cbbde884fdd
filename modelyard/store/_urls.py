"""Turn a store URL from the settings into a `BlobStore`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelyard.errors import ConfigurationError
from modelyard.settings import Settings
from modelyard.store._local import LocalStore
from modelyard.store._protocol import BlobStore


def open_store(settings: Settings) -> BlobStore:
    """The store `settings.store_url` names: `file:///path` or `s3://bucket[/prefix]`."""
    url = settings.store_url
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(f"store URL {url!r} names a host; use file:///absolute/path")
        return LocalStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        from modelyard.store._s3 import S3Store

        return S3Store.from_settings(settings)
    raise ConfigurationError(
        f"store URL {url!r} is not supported; use file:///absolute/path or s3://bucket/prefix"
    )
