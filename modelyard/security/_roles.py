"""Roles and grants: who may do what to which models. Pure policy, no storage.

Roles are ordered, each including the ones below it:

    reader < editor < approver < admin

A grant gives a role to a user, or to a group (from an OIDC token's groups claim), for every
model (`*`) or for the models whose names match a pattern (`fraud-*`, fnmatch-style, case
sensitive).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase

EVERY_MODEL = "*"


class Role(StrEnum):
    """A role; a higher one includes every lower one."""

    READER = "reader"
    EDITOR = "editor"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for reader up to 3 for admin."""
        return _RANKS[self]

    def includes(self, other: Role) -> bool:
        """Whether holding this role gives `other` too."""
        return self.rank >= other.rank


_RANKS = {Role.READER: 0, Role.EDITOR: 1, Role.APPROVER: 2, Role.ADMIN: 3}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a user name, the groups it belongs to, and how it was proven
    (`token`, `oidc`, `proxy`, or `open` when the server runs without auth)."""

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    via: str = "token"

    @property
    def unrestricted(self) -> bool:
        """True for the server's own user when auth is off: every role on every model."""
        return self.via == "open"


@dataclass(frozen=True, slots=True)
class Rule:
    """One grant as policy sees it: `subject` (a user, or a group when `group`) holds `role` on
    the models matching `models`."""

    subject: str
    role: Role
    models: str = EVERY_MODEL
    group: bool = False

    def applies_to(self, principal: Principal) -> bool:
        """Whether this grant is about `principal` (by name, or by one of its groups)."""
        if self.group:
            return self.subject in principal.groups
        return self.subject == principal.name

    def covers(self, model: str) -> bool:
        """Whether the grant's pattern matches the model name."""
        return self.models == EVERY_MODEL or fnmatchcase(model, self.models)


class Policy:
    """The grants in force; answers whether a principal holds a role on a model.

    Grants are indexed by subject, so a check reads only the principal's own grants and its
    groups' (however many grants others hold)."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules = tuple(rules)
        self._users: dict[str, list[Rule]] = {}
        self._groups: dict[str, list[Rule]] = {}
        for rule in self.rules:
            (self._groups if rule.group else self._users).setdefault(rule.subject, []).append(rule)

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> Policy:
        """A policy over `rules`."""
        return cls(rules)

    def rules_of(self, principal: Principal) -> list[Rule]:
        """The grants that apply to `principal`: its own and its groups'."""
        found = list(self._users.get(principal.name, ()))
        for group in principal.groups:
            found.extend(self._groups.get(group, ()))
        return found

    def allows(self, principal: Principal, role: Role, model: str | None = None) -> bool:
        """Whether `principal` holds `role` on `model`; with no model, on every model."""
        if principal.unrestricted:
            return True
        for rule in self.rules_of(principal):
            if rule.role.includes(role):
                if (rule.models == EVERY_MODEL) if model is None else rule.covers(model):
                    return True
        return False

    def allows_somewhere(self, principal: Principal, role: Role) -> bool:
        """Whether `principal` holds `role` on at least one model pattern (for things that
        belong to no model: runs and blobs)."""
        if principal.unrestricted:
            return True
        return any(rule.role.includes(role) for rule in self.rules_of(principal))
