"""The search filter language, parsed into a small syntax tree.

    name = 'fraud' and metrics.auc >= 0.9 and (tags.team = 'risk' or state in ('staging', 'x'))

Comparisons: `=`, `!=`, `<`, `<=`, `>`, `>=`, `like`, `in (…)`, `not in (…)`; combined with `and`,
`or`, `not` and parentheses. Strings in single or double quotes, numbers as usual. Keywords are
case-insensitive. A syntax error names the column where parsing stopped.

Filters come from anyone who can search, so parsing is bounded: a filter holds at most
`MAX_LENGTH` characters and nests parentheses and `not` at most `MAX_DEPTH` deep, tokenizing is
one left-to-right scan (possessive quantifiers: no backtracking).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from modelyard.errors import InvalidFilter

Value = str | float


@dataclass(frozen=True, slots=True)
class Compare:
    """`field op value`; for `in`/`not in`, `value` is a tuple."""

    field: str
    op: str
    value: Value | tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Logical:
    """`and`/`or` of two or more parts."""

    op: str
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """Negation of a part."""

    part: Node


Node = Compare | Logical | Not

MAX_LENGTH = 4096
"""The longest filter accepted, in characters."""

MAX_DEPTH = 32
"""How deep parentheses and `not` may nest."""

# Possessive quantifiers (`++`, `*+`) never give back what they took, so a token that fails to
# match fails at once: `\d+\.?\d*` followed by a letter tried every split of the digits
# (quadratic; 20,000 digits took 13.8 s).
_TOKEN = re.compile(
    r"""(?:
    (?P<number>-?(?:\d++(?:\.\d*+)?|\.\d++)(?:[eE][-+]?\d++)?+)(?![\w.])
    |(?P<string>'(?:[^'\\]++|\\.|'')*+'|"(?:[^"\\]++|\\.|"")*+")
    |(?P<op><=|>=|!=|=|<|>)
    |(?P<paren>[(),])
    |(?P<word>[A-Za-z_]\w*+(?:\.(?:`[^`]++`|[\w.\-/]++))?+)
    )""",
    re.VERBOSE,
)
_SPACE = re.compile(r"\s*+")
KEYWORDS = {"and", "or", "not", "in", "like"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    column: int


def tokenize(text: str) -> list[Token]:
    """Split a filter into tokens, each with its 1-based column (one scan, linear time)."""
    _check_length(text)
    tokens: list[Token] = []
    position = _skip_space(text, 0)
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            raise _error(text, position + 1, "unexpected character")
        group = match.lastgroup
        kind, value = group, match.group(group)
        if kind == "word" and value.lower() in KEYWORDS:
            kind, value = "keyword", value.lower()
        tokens.append(Token(kind, value, position + 1))
        position = _skip_space(text, match.end())
    return tokens


def parse_filter(text: str) -> Node:
    """Parse a filter into a syntax tree, or raise `InvalidFilter` naming the column (or the
    limit it is over: `MAX_LENGTH`, `MAX_DEPTH`)."""
    parser = _Parser(text, tokenize(text))
    node = parser.expression()
    if parser.peek() is not None:
        raise parser.fail("expected 'and', 'or' or the end of the filter")
    return node


def _skip_space(text: str, position: int) -> int:
    space = _SPACE.match(text, position)
    return space.end() if space is not None else position


def _check_length(text: str) -> None:
    if len(text) > MAX_LENGTH:
        raise InvalidFilter(
            f"a filter may be at most {MAX_LENGTH} characters long; this one has {len(text)}"
        )
    check_characters(text)


def check_characters(text: str) -> None:
    """Refuse NUL: PostgreSQL cannot take it in text, so a search with one failed there."""
    if "\x00" in text:
        raise InvalidFilter(f"a filter or ordering may not contain NUL characters: {text!r}")


def _error(text: str, column: int, problem: str) -> InvalidFilter:
    return InvalidFilter(
        f"invalid filter at column {column}: {problem}\n  {text}\n  {' ' * (column - 1)}^"
    )


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> Token | None:
        token = self.peek()
        self.index += token is not None
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token.text == text and token.kind in ("keyword", "paren"):
            self.index += 1
            return True
        return False

    def fail(self, problem: str) -> InvalidFilter:
        token = self.peek()
        column = token.column if token is not None else len(self.text) + 1
        found = f", found {token.text!r}" if token is not None else ", found the end"
        return _error(self.text, column, problem + found)

    def expression(self) -> Node:
        return self._chain("or", self.conjunction)

    def conjunction(self) -> Node:
        return self._chain("and", self.negation)

    def _chain(self, op: str, part: Callable[[], Node]) -> Node:
        parts = [part()]
        while self.accept(op):
            parts.append(part())
        return parts[0] if len(parts) == 1 else Logical(op, tuple(parts))

    def negation(self) -> Node:
        if self.accept("not"):
            return Not(self._nested(self.negation))
        if self.accept("("):
            node = self._nested(self.expression)
            if not self.accept(")"):
                raise self.fail("expected ')'")
            return node
        return self.comparison()

    def _nested(self, part: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InvalidFilter(f"a filter may nest parentheses and 'not' at most {MAX_DEPTH} deep")
        node = part()
        self.depth -= 1
        return node

    def comparison(self) -> Compare:
        token = self.peek()
        if token is None or token.kind != "word":
            raise self.fail("expected a field such as name, state or metrics.auc")
        self.take()
        field = token.text
        if self.accept("not"):
            if not self.accept("in"):
                raise self.fail("expected 'in' after 'not'")
            return Compare(field, "not in", self.values())
        if self.accept("in"):
            return Compare(field, "in", self.values())
        if self.accept("like"):
            return Compare(field, "like", self.value("like"))
        operator = self.peek()
        if operator is None or operator.kind != "op":
            raise self.fail(f"expected an operator (=, !=, <, <=, >, >=, like, in) after {field!r}")
        self.take()
        return Compare(field, operator.text, self.value(operator.text))

    def value(self, after: str) -> Value:
        token = self.peek()
        if token is None or token.kind not in ("number", "string"):
            raise self.fail(f"expected a value after {after!r}")
        self.take()
        if token.kind == "number":
            return float(token.text)  # may be ±inf: a bound for metrics; version refuses it
        quote = token.text[0]
        body = token.text[1:-1].replace(quote * 2, quote)
        return re.sub(r"\\(.)", r"\1", body)

    def values(self) -> tuple[Value, ...]:
        if not self.accept("("):
            raise self.fail("expected '(' to open a list of values")
        items = [self.value("(")]
        while self.accept(","):
            items.append(self.value(","))
        if not self.accept(")"):
            raise self.fail("expected ',' or ')' in the list of values")
        return tuple(items)
