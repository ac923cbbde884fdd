"""References to versions: `fraud` (latest), `fraud:3`, `fraud@production`, `fraud@production~1`.

MLflow's habits are understood too, so a newcomer's first guess works: `fraud:latest` (the
highest version number, like `fraud`), `models:/fraud/3`, `models:/fraud/latest`,
`models:/fraud@production`, and MLflow's stage form `models:/fraud/Production`, which names
the alias that promotion to production moves (`fraud@production`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelyard.errors import InvalidReference

FORMS = (
    "NAME or NAME:latest (the highest version), NAME:VERSION, NAME@ALIAS or NAME@ALIAS~N "
    "(the alias's N-th previous target); MLflow's models:/NAME/VERSION, models:/NAME/latest "
    "and models:/NAME@ALIAS work too"
)

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}"
ALIAS_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._/-]{0,254}"
_NAME = re.compile(NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)
_REFERENCE = re.compile(
    rf"(?P<name>{NAME_PATTERN})"
    rf"(?::(?P<number>[1-9][0-9]{{0,9}}|latest)"
    rf"|@(?P<alias>{ALIAS_PATTERN})(?:~(?P<back>[0-9]{{1,6}}))?)?"
)
# MLflow's model URIs: `models:/NAME/VERSION|latest|Production` and `models:/NAME@ALIAS`.
_MLFLOW_URI = re.compile(
    rf"models:/(?P<name>{NAME_PATTERN})"
    rf"(?:/(?P<number>[1-9][0-9]{{0,9}}|latest)|/(?P<stage>production)"
    rf"|@(?P<alias>{ALIAS_PATTERN}))",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed reference; exactly one of `number` and `alias` is set, or neither for latest."""

    name: str
    number: int | None = None
    alias: str | None = None
    back: int = 0

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse a reference, raising `InvalidReference` that lists the accepted forms."""
        if not isinstance(text, str):
            raise InvalidReference(str(text), expected=FORMS)
        uri = _MLFLOW_URI.fullmatch(text)
        if uri is not None:
            stage = uri["stage"]
            return cls._of(uri["name"], uri["number"], stage.lower() if stage else uri["alias"])
        match = _REFERENCE.fullmatch(text)
        if match is None:
            raise InvalidReference(text, expected=FORMS)
        return cls._of(match["name"], match["number"], match["alias"], match["back"])

    @classmethod
    def _of(
        cls, name: str, number: str | None, alias: str | None, back: str | None = None
    ) -> Reference:
        latest = number is None or number.lower() == "latest"
        return cls(
            name=name,
            number=None if number is None or latest else int(number),
            alias=alias,
            back=int(back) if back else 0,
        )

    def __str__(self) -> str:
        if self.number is not None:
            return f"{self.name}:{self.number}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}" + (f"~{self.back}" if self.back else "")
        return self.name


def check_name(name: str) -> str:
    """A model name: letters, digits, `.`, `_`, `-`; starts with a letter or digit."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise InvalidReference(str(name), expected="a model name of letters, digits, '.', '_', '-'")
    return name


def check_alias(alias: str) -> str:
    """An alias name: like a model name, and may contain `/` (`exp/lr-sweep`)."""
    if not isinstance(alias, str) or _ALIAS.fullmatch(alias) is None or alias.isdigit():
        raise InvalidReference(
            str(alias), expected="an alias of letters, digits, '.', '_', '-', '/', not all digits"
        )
    return alias
