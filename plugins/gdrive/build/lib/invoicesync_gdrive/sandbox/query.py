"""A real parser for the subset of Drive's ``q`` search language the sandbox serves.

Grammar (recursive descent; ``not`` binds tightest, then ``and``, then ``or``)::

    expr    := conj ("or" conj)*
    conj    := unary ("and" unary)*
    unary   := "not" unary | "(" expr ")" | term
    term    := STRING "in" ("parents" | "owners" | "writers" | "readers")
             | FIELD OP value                    FIELD: name, mimeType, trashed, starred,
                                                 createdTime, modifiedTime
             | ("appProperties" | "properties") "has" "{" "key" "=" STRING "and" "value" "=" STRING "}"
    OP      := "=" | "!=" | "<" | "<=" | ">" | ">=" | "contains"
    value   := STRING | "true" | "false"

Strings are single-quoted; ``\\'`` and ``\\\\`` escape a quote and a backslash. A query outside
this subset is refused with ``QueryError`` (the sandbox answers 400 ``invalid``), never guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<op>!=|<=|>=|=|<|>)|(?P<punct>[(){}])"
                    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*))")
_STRING_FIELDS = {"name", "mimeType", "createdTime", "modifiedTime"}
_BOOL_FIELDS = {"trashed", "starred"}
_COLLECTIONS = {"parents", "owners", "writers", "readers"}


class QueryError(ValueError):
    pass


@dataclass
class Token:
    kind: str  # string | op | punct | word | end
    value: str


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise QueryError(f"unexpected character at {pos}: {text[pos:pos + 10]!r}")
        kind = match.lastgroup or "word"
        raw = match.group(kind)
        value = _unescape(raw[1:-1]) if kind == "string" else raw
        tokens.append(Token(kind, value))
        pos = match.end()
    tokens.append(Token("end", ""))
    return tokens


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", r"\1", body)


def parse(text: str) -> Predicate:
    parser = _Parser(tokenize(text))
    predicate = parser.expr()
    parser.expect("end")
    return predicate


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, kind: str, value: str | None = None) -> Token:
        token = self.take()
        if token.kind != kind or (value is not None and token.value != value):
            raise QueryError(f"expected {value or kind}, found {token.value or token.kind!r}")
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "word" and token.value.lower() == word:
            self.pos += 1
            return True
        return False

    def expr(self) -> Predicate:
        parts = [self.conj()]
        while self.keyword("or"):
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else (lambda f: any(p(f) for p in parts))

    def conj(self) -> Predicate:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda f: all(p(f) for p in parts))

    def unary(self) -> Predicate:
        if self.keyword("not"):
            inner = self.unary()
            return lambda f: not inner(f)
        if self.peek().kind == "punct" and self.peek().value == "(":
            self.take()
            inner = self.expr()
            self.expect("punct", ")")
            return inner
        return self.term()

    def term(self) -> Predicate:
        token = self.take()
        if token.kind == "string":
            self.expect("word", "in")
            collection = self.expect("word").value
            if collection not in _COLLECTIONS:
                raise QueryError(f"'in' needs one of {sorted(_COLLECTIONS)}, not {collection!r}")
            value = token.value
            return lambda f: value in (f.get(collection) or [])
        if token.kind != "word":
            raise QueryError(f"expected a query term, found {token.value!r}")
        field = token.value
        if field in {"appProperties", "properties"}:
            return self.has(field)
        if field not in _STRING_FIELDS | _BOOL_FIELDS:
            raise QueryError(f"unsupported query term {field!r}")
        op = self.take()
        if op.kind == "word" and op.value == "contains":
            operator = "contains"
        elif op.kind == "op":
            operator = op.value
        else:
            raise QueryError(f"expected an operator after {field}, found {op.value!r}")
        value = self.value(boolean=field in _BOOL_FIELDS)
        return _compare(field, operator, value)

    def has(self, field: str) -> Predicate:
        self.expect("word", "has")
        self.expect("punct", "{")
        self.expect("word", "key")
        self.expect("op", "=")
        key = self.expect("string").value
        self.expect("word", "and")
        self.expect("word", "value")
        self.expect("op", "=")
        value = self.expect("string").value
        self.expect("punct", "}")
        return lambda f: (f.get(field) or {}).get(key) == value

    def value(self, *, boolean: bool) -> Any:
        token = self.take()
        if boolean:
            if token.kind != "word" or token.value not in {"true", "false"}:
                raise QueryError(f"expected true or false, found {token.value!r}")
            return token.value == "true"
        if token.kind != "string":
            raise QueryError(f"expected a quoted string, found {token.value!r}")
        return token.value


def _compare(field: str, operator: str, value: Any) -> Predicate:
    if isinstance(value, bool) and operator not in {"=", "!="}:
        raise QueryError(f"{field} supports only = and !=")
    if field in {"name", "mimeType"} and operator not in {"=", "!=", "contains"}:
        raise QueryError(f"{field} supports =, != and contains")
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
        "contains": lambda a, b: b in a,
    }
    compare = ops[operator]
    default: Any = False if isinstance(value, bool) else ""
    return lambda f: compare(f.get(field, default), value)
