"""API tokens: a high-entropy random secret shown once, kept only as its SHA-256.

A secret is `myd_` and 43 URL-safe characters (256 random bits), so a hash of it cannot be
brute-forced and a plain SHA-256 is the right digest (a slow password hash buys nothing here).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from modelyard.errors import ConfigurationError

PREFIX = "myd_"
"""Every API token starts with this, so a leaked one is easy to recognise (and to scan for)."""

_DURATION = re.compile(r"(?P<count>\d{1,6})(?P<unit>[smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def new_secret() -> str:
    """A fresh token secret: `myd_` and 256 random bits."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The hex SHA-256 a token is stored and looked up by."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Compare two token hashes in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())


def is_api_token(value: str) -> bool:
    """Whether a bearer value is one of our API tokens (rather than a JWT)."""
    return value.startswith(PREFIX)


def parse_duration(text: str) -> timedelta | None:
    """`30d`, `12h`, `90m`, `2w`, `3600s` as a duration; `never` as None.

    >>> parse_duration("30d")
    datetime.timedelta(days=30)
    """
    if text.strip().lower() == "never":
        return None
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or int(match["count"]) == 0:
        raise ConfigurationError(
            f"invalid duration {text!r}: expected a number and a unit (s, m, h, d, w), "
            "such as 30d, or `never`"
        )
    return timedelta(seconds=int(match["count"]) * _UNITS[match["unit"]])
