"""Checks on everything that lands in a Kubernetes manifest: names, quantities, images, URIs.

A version's name is chosen by whoever registered it, so it is untrusted: it becomes a DNS-1123
label (lowercased, `.`/`_` as `-`) or is refused with a message naming the `--name` way out.
"""

from __future__ import annotations

import re

from modelyard.errors import ConfigurationError

MAX_APP_NAME = 50
"""Room for the suffixes added to an app's name (`-registry-migrate`) inside 63 characters."""

_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_LABEL_KEY = re.compile(
    r"(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
# Kubernetes resource.Quantity, as its own regular expression spells it.
_QUANTITY = re.compile(
    r"[+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?"
)
# An image reference as an operator types it (registry/repo:tag@digest); no spaces or quotes.
_IMAGE = re.compile(r"[a-z0-9][a-z0-9._/:@+-]{0,254}", re.IGNORECASE)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_URI = re.compile(r"(oci|s3)://[A-Za-z0-9][A-Za-z0-9._~:/@+%=-]{0,2040}")


def app_name(name: str) -> str:
    """A DNS-1123 label for a model's objects: `Fraud_Detector.v2` -> `fraud-detector-v2`.

    >>> app_name("Fraud_Detector")
    'fraud-detector'
    """
    candidate = re.sub(r"[._]", "-", name.lower())
    if len(candidate) > MAX_APP_NAME or not _LABEL.fullmatch(candidate):
        raise ConfigurationError(
            f"model name {name[:80]!r} cannot name Kubernetes objects (a DNS-1123 label of at "
            f"most {MAX_APP_NAME} characters: a-z, 0-9, '-'); give one with --name"
        )
    return candidate


def label_value(value: str) -> str | None:
    """`value` if Kubernetes accepts it as a label value, else None (then left out)."""
    return value if _LABEL_VALUE.fullmatch(value) else None


def check_label(value: str, *, what: str) -> str:
    """`value` if it is a DNS-1123 label (a namespace, a runtime name); else refused."""
    if not _LABEL.fullmatch(value):
        raise ConfigurationError(f"{what} {value[:80]!r} is not a DNS-1123 label (a-z, 0-9, '-')")
    return value


def check_secret_name(value: str, *, what: str) -> str:
    """A Secret's name (a DNS-1123 subdomain), else `ConfigurationError`."""
    if not _SUBDOMAIN.fullmatch(value):
        raise ConfigurationError(f"{what} {value[:80]!r} is not a valid Secret name")
    return value


def parse_labels(pairs: list[str], *, what: str) -> dict[str, str]:
    """`["team=ml", "release=kps"]` as a dict of checked label keys and values."""
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise ConfigurationError(f"{what} {pair[:80]!r}: expected KEY=VALUE, a valid label")
        labels[key] = value
    return labels


def check_quantity(value: str, *, what: str) -> str:
    """A CPU or memory quantity (`500m`, `2Gi`), else `ConfigurationError`."""
    if not _QUANTITY.fullmatch(value):
        raise ConfigurationError(f"{what} {value[:40]!r} is not a quantity such as 500m or 2Gi")
    return value


def check_image(value: str, *, what: str = "image") -> str:
    """An image reference with no spaces, quotes or control characters."""
    if not _IMAGE.fullmatch(value):
        raise ConfigurationError(f"{what} {value[:80]!r} is not an image reference")
    return value


def check_digest(value: str | None) -> str:
    """A version's manifest digest (`sha256:<64 hex>`); anything else is refused."""
    if value is None or not _DIGEST.fullmatch(value):
        raise ConfigurationError(f"manifest digest {str(value)[:80]!r} is not sha256:<hex>")
    return value


def check_storage_uri(value: str) -> str:
    """An `oci://` or `s3://` location KServe can fetch from, with no spaces or quotes."""
    if not _URI.fullmatch(value) or ".." in value.split("/"):
        raise ConfigurationError(
            f"storage URI {value[:80]!r}: expected oci://HOST/REPO:TAG or s3://BUCKET/PREFIX"
        )
    return value
