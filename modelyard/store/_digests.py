"""Content addresses: `sha256:<64 lowercase hex>`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator

from modelyard.errors import InvalidReference

PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def check_digest(digest: str) -> str:
    """Return `digest` unchanged if it is a well-formed address, else raise `InvalidReference`."""
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise InvalidReference(
            str(digest), expected="'sha256:' followed by 64 lowercase hex digits"
        )
    return digest


def digest_bytes(data: bytes | memoryview) -> str:
    """The address of `data`."""
    return PREFIX + hashlib.sha256(data).hexdigest()


def verified(digest: str, pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Yield `pieces`, holding the last one back until the whole has been checked against `digest`.

    A reader therefore never receives every byte of a corrupt blob: the check fails first.
    """
    from modelyard.errors import IntegrityError

    hasher = hashlib.sha256()
    held: bytes | None = None
    for piece in pieces:
        if held is not None:
            yield held
        hasher.update(piece)
        held = piece
    actual = PREFIX + hasher.hexdigest()
    if actual != digest:
        raise IntegrityError(digest, actual=actual)
    if held is not None:
        yield held
