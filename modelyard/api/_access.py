"""Who a request is, and whether it may: bearer tokens checked with a short in-memory cache.

A request names itself with `Authorization: Bearer <token>`: an API token (`myd_…`, looked up
by its SHA-256 in the registry database) or, when OIDC is configured, a JWT verified against
the identity provider's JWKS. A verified token is cached for `auth_cache_seconds` (5 s by
default), and so are the grants, so a request pays a hash and a dict lookup; a revoked token,
or a removed grant, stops working within that time.

With auth off (`modelyard server` on loopback) every request acts as the server's own user
with every role, as before tokens existed. `X-Modelyard-User` is honoured only from the
addresses in `trusted_proxies`: reverse proxies that authenticate users themselves.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeAlias

from modelyard.errors import PermissionDenied, Unauthenticated
from modelyard.registry import Database, ModelVersion, Principals, Registry
from modelyard.security import (
    OidcVerifier,
    Policy,
    Principal,
    Role,
    is_api_token,
)
from modelyard.settings import Settings

CACHE_LIMIT = 10_000
"""Cached tokens at most; the cache starts over when full (a flood of bad tokens cannot grow
memory)."""

NO_TOKEN = (
    "the server requires a token: set MODELYARD_TOKEN (create one with `modelyard token create`)"
)

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
_Entry: TypeAlias = tuple[Principal | str, float, float]  # principal or refusal, until, expires


class Access:
    """Authentication and the role check of one registry server (built once, in `create_app`)."""

    def __init__(
        self,
        settings: Settings,
        database: Callable[[], Database],
        *,
        clock: Callable[[], float],
        signatures: Callable[[ModelVersion], str] | None = None,
    ) -> None:
        self.required = settings.auth
        self.server_user = settings.user
        self.ttl = settings.auth_cache_seconds
        self.protected = frozenset(settings.protected_aliases)
        self._database = database
        self._signatures = signatures  # checks `signed` gates with this process's keys
        self._clock = clock
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        self._trusted: dict[str, bool] = {}
        self._tokens: dict[str, _Entry] = {}
        self._policy: tuple[Policy, float] | None = None
        self._oidc = _verifier(settings)

    # who --------------------------------------------------------------------------------------

    def cached(self, authorization: str | None, *, client: str | None, proxy_user: str | None
               ) -> Principal | None:  # fmt: skip
        """The request's principal when it can be answered without I/O (no auth, a cached
        token); None when `authenticate` must run (in a thread: it may query the database)."""
        if proxy_user is not None and self.trusts(client):
            return Principal(proxy_user, via="proxy" if self.required else "open")
        if not self.required:
            return Principal(self.server_user, via="open")
        token = _bearer(authorization)
        entry = self._tokens.get(token)
        if entry is None:
            return None
        answer, until, expires = entry
        if self._clock() >= until or time.time() >= expires:
            return None
        if isinstance(answer, str):
            raise Unauthenticated(answer)  # a fresh error: a raised one keeps its traceback
        return answer

    def authenticate(
        self, authorization: str | None, *, client: str | None, proxy_user: str | None
    ) -> Principal:
        """The request's principal, or `Unauthenticated` saying what is wrong."""
        found = self.cached(authorization, client=client, proxy_user=proxy_user)
        if found is not None:
            return found
        token = _bearer(authorization)
        try:
            principal, expires = self._verify(token)
        except Unauthenticated as error:
            self._remember(token, error.message, float("inf"))
            raise
        self._remember(token, principal, expires)
        return principal

    def trusts(self, client: str | None) -> bool:
        """Whether `client` (an IP address) is one of the trusted proxies."""
        if client is None or not self._proxies:
            return False
        known = self._trusted.get(client)
        if known is None:
            try:
                address = ipaddress.ip_address(client)
            except ValueError:
                known = False
            else:
                known = any(address in network for network in self._proxies)
            if len(self._trusted) < CACHE_LIMIT:
                self._trusted[client] = known
        return known

    def _verify(self, token: str) -> tuple[Principal, float]:
        if is_api_token(token):
            return self._api_token(token)
        if self._oidc is None:
            raise Unauthenticated(
                "the token was refused: it is not a modelyard API token (myd_…) and this "
                "server accepts no OIDC tokens"
            )
        return self._oidc.verify(token)

    def _api_token(self, secret: str) -> tuple[Principal, float]:
        record = Principals(self._database(), actor=self.server_user).find_token(secret)
        if record is None:
            raise Unauthenticated("the token was refused: this server does not know it")
        if record.revoked_at is not None:
            raise Unauthenticated("the token was refused: it was revoked")
        expires = record.expires_at.timestamp() if record.expires_at else float("inf")
        if not record.usable(datetime.now(UTC)):
            raise Unauthenticated(
                f"the token was refused: it expired at {record.expires_at}; create a new one "
                "with `modelyard token create`"
            )
        return Principal(record.user, via="token"), expires

    def _remember(self, token: str, answer: Principal | str, expires: float) -> None:
        if len(self._tokens) >= CACHE_LIMIT:
            self._tokens.clear()
        self._tokens[token] = (answer, self._clock() + self.ttl, expires)

    def forget(self) -> None:
        """Drop every cached token and the cached grants (after this server changed them)."""
        self._tokens = {}
        self._policy = None

    # may --------------------------------------------------------------------------------------

    def policy(self) -> Policy:
        """The grants in force (re-read from the database every `ttl` seconds)."""
        cached = self._policy
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        principals = Principals(self._database(), actor=self.server_user)
        policy = Policy.of(grant.rule() for grant in principals.grants())
        self._policy = (policy, self._clock() + self.ttl)
        return policy

    def require(self, principal: Principal, role: Role, model: str | None = None) -> None:
        """Raise `PermissionDenied` unless `principal` holds `role` on `model` (on every model
        when None)."""
        if not principal.unrestricted and not self.policy().allows(principal, role, model):
            raise PermissionDenied(principal.name, role=role.value, model=model)

    def require_somewhere(self, principal: Principal, role: Role) -> None:
        """Raise `PermissionDenied` unless `principal` holds `role` on some model (runs and
        blobs belong to no single model)."""
        if not principal.unrestricted and not self.policy().allows_somewhere(principal, role):
            raise PermissionDenied(principal.name, role=role.value, any_model=True)

    def may(self, principal: Principal, role: Role, model: str | None = None) -> bool:
        """Whether `principal` holds `role` on `model`."""
        return principal.unrestricted or self.policy().allows(principal, role, model)

    def alias_role(self, alias: str) -> Role:
        """The role that moves or deletes `alias`: approver for a protected one."""
        return Role.APPROVER if alias in self.protected else Role.EDITOR

    def transition_role(self, state: str) -> Role:
        """The role that moves a version to `state`: production (which moves the `production`
        alias) needs what moving that alias needs."""
        return self.alias_role("production") if state == "production" else Role.EDITOR

    def registry(self, principal: Principal) -> Registry:
        """The registry acting as `principal` (the audit log's actor)."""
        return Registry(self._database(), actor=principal.name, signatures=self._signatures)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated(NO_TOKEN)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must read `Bearer <token>`")
    return token.strip()


def _verifier(settings: Settings) -> OidcVerifier | None:
    if not settings.oidc_jwks_url:
        return None
    if not (settings.oidc_issuer and settings.oidc_audience):
        from modelyard.errors import ConfigurationError

        raise ConfigurationError(
            "OIDC needs MODELYARD_OIDC_ISSUER and MODELYARD_OIDC_AUDIENCE along with "
            "MODELYARD_OIDC_JWKS_URL"
        )
    return OidcVerifier(jwks_url=settings.oidc_jwks_url, issuer=settings.oidc_issuer,
                        audience=settings.oidc_audience, user_claim=settings.oidc_user_claim,
                        groups_claim=settings.oidc_groups_claim)  # fmt: skip
