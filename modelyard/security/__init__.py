"""Who may do what, and what may run: the trust policy for loading model files, identities
(API tokens, OIDC/JWT), roles, and signed models. See docs/security.md for the threat model."""

from __future__ import annotations

from modelyard.security._keys import derive_key, load_secret
from modelyard.security._oidc import OidcVerifier
from modelyard.security._roles import EVERY_MODEL, Policy, Principal, Role, Rule
from modelyard.security._signing import (
    MAX_SIGNATURE_BYTES,
    SIGNATURE_FILE,
    SIGNATURE_TAG,
    Verified,
    sign_folder,
    verify_folder,
)
from modelyard.security._tokens import (
    hash_secret,
    is_api_token,
    new_secret,
    parse_duration,
    same_hash,
)
from modelyard.security._trust import SAFE_SKOPS_TYPES, TrustPolicy
from modelyard.security._webhook_signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signed_headers,
    verify_webhook,
    webhook_signature,
)
from modelyard.security._webhook_urls import (
    DEFAULT_PORTS,
    WebhookTarget,
    parse_webhook,
    webhook_url,
)

__all__: list[str] = [
    "DEFAULT_PORTS",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "EVERY_MODEL",
    "MAX_SIGNATURE_BYTES",
    "OidcVerifier",
    "Policy",
    "Principal",
    "Role",
    "Rule",
    "SAFE_SKOPS_TYPES",
    "SIGNATURE_FILE",
    "SIGNATURE_HEADER",
    "SIGNATURE_TAG",
    "TIMESTAMP_HEADER",
    "TrustPolicy",
    "Verified",
    "WebhookTarget",
    "derive_key",
    "hash_secret",
    "is_api_token",
    "load_secret",
    "new_secret",
    "parse_duration",
    "parse_webhook",
    "same_hash",
    "sign_folder",
    "signed_headers",
    "verify_folder",
    "verify_webhook",
    "webhook_signature",
    "webhook_url",
]
