"""The server secret, and the keys derived from it, one per purpose.

One secret keys several things (search page tokens, the audit chain); each gets its own key,
`HMAC-SHA256(secret, "modelyard/" + purpose)`, so a key leaked or misused for one purpose says
nothing about another. The secret is the operator's (`MODELYARD_SECRET_KEY`); when unset, a
random one is made on first use and kept in `<home>/secret.key`, readable by its owner only.
Processes that share a database (several servers, a server and the CLI) must share the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from modelyard.errors import ConfigurationError

SECRET_FILE = "secret.key"
"""The file under the home that holds the generated secret (hex, mode 0600)."""

PURPOSES = ("audit-chain", "page-tokens", "ui-forms", "webhook-secrets")
"""What keys are derived for."""


def derive_key(secret: bytes, purpose: str) -> bytes:
    """The key for `purpose` (one of `PURPOSES`), derived from `secret`.

    >>> page_key = derive_key(load_secret(configured=None, home=home), "page-tokens")
    """
    if purpose not in PURPOSES:
        raise ConfigurationError(f"unknown key purpose {purpose!r}; one of {', '.join(PURPOSES)}")
    return hmac.new(secret, f"modelyard/{purpose}".encode(), hashlib.sha256).digest()


def load_secret(*, configured: str | None, home: Path) -> bytes:
    """The secret: `configured` when set, else the one kept in `home`/secret.key, made (32
    random bytes, written atomically with mode 0600) when that file does not exist yet."""
    if configured:
        return configured.encode()
    path = home / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    except ValueError:
        raise ConfigurationError(
            f"{path} does not hold a hex secret; remove it to make a new one"
        ) from None
    return _create(path)


def _create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secret.hex() + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # fails if another process made it first: use theirs
        except FileExistsError:
            return bytes.fromhex(path.read_text().strip())
    finally:
        temporary.unlink(missing_ok=True)
    return secret
