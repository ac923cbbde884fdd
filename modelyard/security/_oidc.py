"""OIDC/JWT bearer tokens: verified with PyJWT against the identity provider's JWKS.

The signing key is chosen by the token's `kid` among the keys the JWKS URL serves, and the
algorithm comes from that key (never from the token's own header, so `none` or an HMAC made
with a public key cannot pass). Expiry, issuer and audience are required and checked. A claim
names the user (`sub` by default) and another lists the groups (`groups`).

PyJWT is the `oidc` extra and is imported only when OIDC is configured.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from modelyard._imports import missing
from modelyard.errors import Unauthenticated
from modelyard.security._roles import Principal

LEEWAY_SECONDS = 30
"""Clock skew tolerated on `exp`, `nbf` and `iat`."""

REFRESH_SECONDS = 10.0
"""The JWKS is re-read for an unknown key id at most this often."""


class OidcVerifier:
    """Turns a JWT into a `Principal`, or raises `Unauthenticated` saying why.

    >>> verifier = OidcVerifier(jwks_url="https://idp/jwks", issuer="https://idp",
    ...                         audience="modelyard")
    >>> verifier.verify(token).name
    'ana'
    """

    def __init__(
        self,
        *,
        jwks_url: str,
        issuer: str,
        audience: str,
        user_claim: str = "sub",
        groups_claim: str = "groups",
    ) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.user_claim = user_claim
        self.groups_claim = groups_claim
        self._client: Any = None
        self._keys: list[Any] = []
        self._fetched = -float("inf")

    def verify(self, token: str) -> tuple[Principal, float]:
        """The principal a token names and the moment (epoch seconds) it expires."""
        jwt = _jwt()
        try:
            key = self._signing_key(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWKClientConnectionError as error:
            raise Unauthenticated(
                f"cannot check the token: the identity provider's keys at {self.jwks_url} "
                f"could not be fetched ({error})"
            ) from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"the OIDC token was refused: {error}") from None
        return self._principal(claims), float(claims["exp"])

    def _principal(self, claims: dict[str, Any]) -> Principal:
        user = claims.get(self.user_claim)
        if not isinstance(user, str) or not user:
            raise Unauthenticated(
                f"the OIDC token has no {self.user_claim!r} claim naming the user"
            )
        return Principal(name=user, groups=_groups(claims.get(self.groups_claim)), via="oidc")

    def _signing_key(self, token: str) -> Any:
        """The JWKS key the token's `kid` names. An unknown `kid` re-reads the JWKS (a key
        rotation), but at most every `REFRESH_SECONDS`: tokens naming made-up keys cannot make
        the server hammer the identity provider."""
        kid = _jwt().get_unverified_header(token).get("kid")
        key = self._find(kid)
        if key is None and time.monotonic() - self._fetched >= REFRESH_SECONDS:
            self._fetched = time.monotonic()
            self._keys = list(self._jwks().get_jwk_set(refresh=True).keys)
            key = self._find(kid)
        if key is None:
            raise Unauthenticated(f"the OIDC token was refused: no signing key {kid!r}")
        return key

    def _find(self, kid: object) -> Any:
        keys = [k for k in self._keys if k.public_key_use in (None, "sig")]
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        return next((k for k in keys if k.key_id == kid), None)

    def _jwks(self) -> Any:
        if self._client is None:
            self._client = _jwt().PyJWKClient(self.jwks_url, cache_jwk_set=False, timeout=10)
        return self._client


def _groups(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, Iterable):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()


def _jwt() -> Any:
    try:
        import jwt
    except ModuleNotFoundError:
        raise missing("PyJWT", extra="oidc") from None
    return jwt
