"""The slice of OData v4 query options the emulator understands: ``$filter`` (eq, ne, gt, ge,
lt, le, and, or, not, parentheses, contains/startswith/endswith), ``$select``, ``$top``, ``$skip``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(r"""\s*(?:
    (?P<string>'(?:[^']|'')*')
  | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
  | (?P<number>-?\d+(?:\.\d+)?(?![\w-]))
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
)""", re.VERBOSE)

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and a > b, "ge": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b, "le": lambda a, b: a is not None and a <= b,
}
_FUNCTIONS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda a, b: b in a, "startswith": lambda a, b: a.startswith(b),
    "endswith": lambda a, b: a.endswith(b),
}


class FilterError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise FilterError(f"cannot read the filter at position {pos}: {text[pos:pos + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1].lower() != value):
            raise FilterError(f"expected {value or 'more'} in the filter, found {token[1] if token else 'the end'}")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()[1]!r} in the filter")  # type: ignore[index]
        return predicate

    def or_expr(self) -> Predicate:
        left = self.and_expr()
        while (t := self.peek()) and t[1].lower() == "or":
            self.take()
            right = self.and_expr()
            left = (lambda a, b: lambda e: a(e) or b(e))(left, right)
        return left

    def and_expr(self) -> Predicate:
        left = self.unary()
        while (t := self.peek()) and t[1].lower() == "and":
            self.take()
            right = self.unary()
            left = (lambda a, b: lambda e: a(e) and b(e))(left, right)
        return left

    def unary(self) -> Predicate:
        token = self.peek()
        if token and token[1].lower() == "not":
            self.take()
            inner = self.unary()
            return lambda e: not inner(e)
        if token and token[1] == "(":
            self.take("(")
            inner = self.or_expr()
            self.take(")")
            return inner
        kind, name = self.take()
        if kind != "word":
            raise FilterError(f"expected a field name, found {name!r}")
        if name.lower() in _FUNCTIONS:
            function = _FUNCTIONS[name.lower()]
            self.take("(")
            field = self.take()[1]
            self.take(",")
            value = self.literal()
            self.take(")")
            return lambda e: function(str(e.get(field) or ""), str(value))
        operator = self.take()[1].lower()
        if operator not in _COMPARE:
            raise FilterError(f"unknown operator {operator!r}")
        value = self.literal()
        compare = _COMPARE[operator]
        return lambda e: compare(_comparable(e.get(name), value), value)

    def literal(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "guid":
            return text.lower()
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "word" and text.lower() in {"true", "false", "null"}:
            return {"true": True, "false": False, "null": None}[text.lower()]
        raise FilterError(f"expected a value, found {text!r}")


def _comparable(field_value: Any, literal: Any) -> Any:
    if isinstance(literal, str) and isinstance(field_value, str) and _is_guid(literal):
        return field_value.lower()
    return field_value


def _is_guid(text: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text) is not None


def compile_filter(text: str) -> Predicate:
    return _Parser(text).parse()


def select(entity: dict[str, Any], fields: str | None) -> dict[str, Any]:
    if not fields:
        return entity
    wanted = {f.strip() for f in fields.split(",") if f.strip()}
    return {k: v for k, v in entity.items() if k in wanted or k.startswith("@odata.")}
