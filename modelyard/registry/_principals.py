"""Who may use a registry server: API tokens (kept as SHA-256 hashes) and role grants.

Every change is audited under a target that cannot be a model name (`@tokens/<id>`,
`@grants/<subject>`), so model-scoped readers never see these events.

    >>> principals = Principals(database, actor="root")
    >>> issued = principals.create_token(user="ana", expires_in=timedelta(days=30))
    >>> issued.secret          # shown once; only its hash is stored
    'myd_…'
    >>> principals.grant("ana", Role.EDITOR, models="fraud-*")
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Row, select, update

from modelyard.errors import ConfigurationError, NotFound
from modelyard.registry._audit import append, utc
from modelyard.registry._database import Database
from modelyard.registry._tables import api_tokens, role_grants
from modelyard.registry._versions import new_id, now
from modelyard.security import EVERY_MODEL, Role, Rule, hash_secret, new_secret, same_hash

_PATTERN = re.compile(r"[A-Za-z0-9._*?\[\]!-]{1,255}")
_SUBJECT = re.compile(r"[^\x00-\x1f\x7f\ud800-\udfff]{1,255}")


class ApiToken(BaseModel):
    """An API token as listed: never its secret, nor the secret's hash."""

    model_config = ConfigDict(frozen=True)

    id: str
    user: str
    description: str = ""
    created_by: str = ""
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def usable(self, moment: datetime) -> bool:
        """Neither revoked nor expired at `moment`."""
        return self.revoked_at is None and (self.expires_at is None or moment < self.expires_at)


class IssuedToken(BaseModel):
    """A token just made: the record and its secret, which is shown this once."""

    model_config = ConfigDict(frozen=True)

    token: ApiToken
    secret: str


class RoleGrant(BaseModel):
    """A role given to a user (or a group) on the models matching `models`."""

    model_config = ConfigDict(frozen=True)

    id: str
    subject: str
    group: bool = False
    role: Role
    models: str = EVERY_MODEL
    created_by: str = ""
    created_at: datetime

    def rule(self) -> Rule:
        """The grant as the policy reads it."""
        return Rule(subject=self.subject, role=self.role, models=self.models, group=self.group)


class Principals:
    """Tokens and grants in a registry database; `actor` is recorded as who changed them."""

    def __init__(self, database: Database, *, actor: str) -> None:
        self.database = database
        self.actor = actor

    # tokens -----------------------------------------------------------------------------------

    def create_token(
        self, *, user: str, expires_in: timedelta | None = None, description: str = ""
    ) -> IssuedToken:
        """A new token acting as `user`; its secret is returned here and never again."""
        user, description = _subject(user), _description(description)
        secret, moment = new_secret(), now()
        expires = moment + expires_in if expires_in else None
        values: dict[str, Any] = {"id": new_id(), "user": user,
                                  "secret_hash": hash_secret(secret), "description": description,
                                  "created_by": self.actor, "created_at": moment,
                                  "expires_at": expires, "revoked_at": None}  # fmt: skip
        with self.database.write() as connection:
            connection.execute(api_tokens.insert().values(values))
            append(connection, actor=self.actor, action="token.create",
                   target=f"@tokens/{values['id']}",
                   after={"user": user, "description": description,
                          "expires_at": expires.isoformat() if expires else None})  # fmt: skip
        return IssuedToken(token=_token(values), secret=secret)

    def tokens(self) -> list[ApiToken]:
        """Every token, newest first (revoked and expired ones too)."""
        query = select(api_tokens).order_by(api_tokens.c.created_at.desc())
        with self.database.read() as connection:
            return [_token(row._mapping) for row in connection.execute(query)]

    def revoke_token(self, token_id: str) -> ApiToken:
        """Revoke a token (for good); revoking it again changes nothing."""
        with self.database.write() as connection:
            row = connection.execute(
                select(api_tokens).where(api_tokens.c.id == token_id).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"no token {token_id!r}; `modelyard token list` shows them")
            if row.revoked_at is not None:
                return _token(row._mapping)
            moment = now()
            connection.execute(
                update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=moment)
            )
            append(connection, actor=self.actor, action="token.revoke",
                   target=f"@tokens/{token_id}", before={"user": row.user})  # fmt: skip
            return _token({**row._mapping, "revoked_at": moment})

    def find_token(self, secret: str) -> ApiToken | None:
        """The token whose secret this is (usable or not), or None."""
        digest = hash_secret(secret)
        query = select(api_tokens).where(api_tokens.c.secret_hash == digest)
        with self.database.read() as connection:
            row = connection.execute(query).first()
        if row is None or not same_hash(row.secret_hash, digest):
            return None
        return _token(row._mapping)

    # grants -----------------------------------------------------------------------------------

    def grant(
        self, subject: str, role: Role | str, *, models: str = EVERY_MODEL, group: bool = False
    ) -> RoleGrant:
        """Give `role` to a user (or a group) on the models matching `models`; granting what
        is already granted returns the existing grant."""
        values = {"subject": _subject(subject), "is_group": group, "role": _role(role).value,
                  "models": _pattern(models)}  # fmt: skip
        with self.database.write() as connection:
            existing = connection.execute(_grant_query(values)).first()
            if existing is not None:
                return _grant(existing)
            values |= {"id": new_id(), "created_by": self.actor, "created_at": now()}
            connection.execute(role_grants.insert().values(values))
            append(connection, actor=self.actor, action="grant.create",
                   target=f"@grants/{values['subject']}",
                   after={"role": values["role"], "models": values["models"],
                          "group": group})  # fmt: skip
            return _grant(values)

    def grants(self) -> list[RoleGrant]:
        """Every grant, by subject."""
        query = select(role_grants).order_by(role_grants.c.subject, role_grants.c.role)
        with self.database.read() as connection:
            return [_grant(row._mapping) for row in connection.execute(query)]

    def revoke_grant(
        self, subject: str, role: Role | str, *, models: str = EVERY_MODEL, group: bool = False
    ) -> None:
        """Remove a grant; `NotFound` when there is no such grant."""
        values = {"subject": subject, "is_group": group, "role": _role(role).value,
                  "models": models}  # fmt: skip
        with self.database.write() as connection:
            existing = connection.execute(_grant_query(values)).first()
            if existing is None:
                kind = "group" if group else "user"
                raise NotFound(
                    f"{kind} {subject!r} has no {values['role']} grant on {models!r}; "
                    "`modelyard role list` shows the grants"
                )
            connection.execute(role_grants.delete().where(role_grants.c.id == existing.id))
            append(connection, actor=self.actor, action="grant.revoke",
                   target=f"@grants/{subject}",
                   before={"role": values["role"], "models": models, "group": group})  # fmt: skip


def _grant_query(values: dict[str, Any]) -> Any:
    return select(role_grants).where(
        role_grants.c.subject == values["subject"],
        role_grants.c.is_group == values["is_group"],
        role_grants.c.role == values["role"],
        role_grants.c.models == values["models"],
    )


def _token(values: Any) -> ApiToken:
    return ApiToken(
        id=values["id"],
        user=values["user"],
        description=values["description"],
        created_by=values["created_by"],
        created_at=utc(values["created_at"]),
        expires_at=utc(values["expires_at"]) if values["expires_at"] else None,
        revoked_at=utc(values["revoked_at"]) if values["revoked_at"] else None,
    )


def _grant(values: Any) -> RoleGrant:
    mapping = values._mapping if isinstance(values, Row) else values
    return RoleGrant(
        id=mapping["id"],
        subject=mapping["subject"],
        group=bool(mapping["is_group"]),
        role=Role(mapping["role"]),
        models=mapping["models"],
        created_by=mapping["created_by"],
        created_at=utc(mapping["created_at"]),
    )


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ConfigurationError(
            f"unknown role {role!r}: expected one of {', '.join(r.value for r in Role)}"
        ) from None


def _pattern(models: str) -> str:
    if _PATTERN.fullmatch(models) is None:
        raise ConfigurationError(
            f"invalid model pattern {models!r}: use a model name or an fnmatch pattern "
            "such as fraud-* (letters, digits, . _ - and * ? [ ] !)"
        )
    return models


def _description(text: str) -> str:
    if len(text) > 1000 or any("\ud800" <= c <= "\udfff" or c == "\x00" for c in text):
        raise ConfigurationError("a token description holds at most 1000 plain characters")
    return text


def _subject(subject: str) -> str:
    if _SUBJECT.fullmatch(subject) is None or subject != subject.strip():
        raise ConfigurationError(f"invalid user or group name {subject!r}")
    return subject
