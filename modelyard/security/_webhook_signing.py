"""Signing registry webhook deliveries, and checking them on the receiving side.

A delivery carries `X-Modelyard-Timestamp: <unix seconds>` and
`X-Modelyard-Signature: sha256=<hex>`, the HMAC-SHA256 under the subscription's secret of
`f"{timestamp}.{body}"`. A receiver recomputes it over the raw body it got (`verify_webhook`)
and refuses a timestamp too far from its clock, so a captured delivery cannot be replayed later.

    >>> headers = signed_headers(secret="whsec_…", body=body, timestamp=1767225600)
    >>> verify_webhook(secret="whsec_…", body=body, headers=headers, now=1767225601)
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from modelyard.errors import WebhookSignatureInvalid

SIGNATURE_HEADER = "X-Modelyard-Signature"
TIMESTAMP_HEADER = "X-Modelyard-Timestamp"
EVENT_HEADER = "X-Modelyard-Event"
DELIVERY_HEADER = "X-Modelyard-Delivery"
DEFAULT_TOLERANCE = 300
"""Seconds a delivery's timestamp may differ from the receiver's clock."""


def webhook_signature(*, secret: str | bytes, body: bytes, timestamp: int) -> str:
    """`sha256=<hex>`: HMAC-SHA256 under `secret` of `f"{timestamp}.{body}"`."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(*, secret: str | bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """The timestamp and signature headers of a delivery of `body`."""
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: webhook_signature(secret=secret, body=body, timestamp=timestamp),
    }


def verify_webhook(
    *,
    secret: str | bytes,
    body: bytes,
    headers: Mapping[str, str],
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a delivery a receiver got: `body` the raw request body, `headers` its headers
    (any case). Return its timestamp; raise `SignatureInvalid` when the signature does not
    match the body, or the timestamp is more than `tolerance` seconds from `now` (a replay).

    >>> verify_webhook(secret=os.environ["HOOK_SECRET"], body=request.body, headers=request.headers)
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise WebhookSignatureInvalid(
            f"the webhook's {TIMESTAMP_HEADER} header is missing or not a number"
        )
    timestamp = int(stamp)
    expected = webhook_signature(secret=secret, body=body, timestamp=timestamp)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise WebhookSignatureInvalid(
            f"the webhook's {SIGNATURE_HEADER} does not match its body: altered, or signed with "
            "another secret"
        )
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance:
        raise WebhookSignatureInvalid(
            f"the webhook's timestamp is {abs(clock - timestamp):.0f} s from this clock (more "
            f"than {tolerance:g} s): a replayed or delayed delivery"
        )
    return timestamp
