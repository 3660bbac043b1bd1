"""The slice of OData v4 query options the emulator understands: ``$filter`` (eq, ne, gt, ge,
lt, le, and, or, not, parentheses, contains/startswith/endswith), ``$select``, ``$top``, ``$skip``.

Given the entity's properties (``_schema``), both are checked as BC checks them: a property the
entity lacks, a literal whose type is not the property's (a GUID written as a quoted string, a
number for a string), and ``or`` across two different properties (BC's documented limit) are
refused, where an untyped reading would answer with a silently empty (or wrong) page."""

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


#: The EDM types a literal of each token kind may be compared with.
_LITERAL_TYPES = {"string": {"Edm.String"}, "guid": {"Edm.Guid"},
                  "number": {"Edm.Int32", "Edm.Int64", "Edm.Decimal", "Edm.Double"}, "bool": {"Edm.Boolean"}}


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
    def __init__(self, text: str, schema: dict[str, str] | None = None, type_name: str = "entity") -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.schema = schema
        self.type_name = type_name
        #: The properties each ``or`` operand compares (``fields`` of the operand being parsed).
        self.fields: set[str] = set()

    def property_type(self, name: str) -> str | None:
        if self.schema is None:
            return None
        if name not in self.schema:
            raise FilterError(f"Could not find a property named '{name}' on type 'Microsoft.NAV.{self.type_name}'.")
        self.fields.add(name)
        return self.schema[name]

    def check_type(self, name: str, edm: str | None, kind: str, operator: str) -> None:
        if edm is None or kind == "null" or edm in _LITERAL_TYPES.get(kind, set()):
            return
        found = {"string": "Edm.String", "guid": "Edm.Guid", "number": "Edm.Int32", "bool": "Edm.Boolean"}[kind]
        raise FilterError(f"A binary operator with incompatible types was detected. Found operand types '{edm}' "
                          f"and '{found}' for operator kind '{operator}' ({name}).")

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
        outer, self.fields = self.fields, set()
        left = self.and_expr()
        operands = [self.fields]
        while (t := self.peek()) and t[1].lower() == "or":
            self.take()
            self.fields = set()
            right = self.and_expr()
            operands.append(self.fields)
            left = (lambda a, b: lambda e: a(e) or b(e))(left, right)
        compared = set().union(*operands)
        if self.schema is not None and len(operands) > 1 and len(compared) > 1:
            raise FilterError("The 'OR' operator is not supported on distinct fields on an OData filter.")
        self.fields = outer | compared
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
            edm = self.property_type(field)
            self.take(",")
            kind, value = self.literal()
            if edm is not None and (edm != "Edm.String" or kind != "string"):
                raise FilterError(f"No function signature for the function with name '{name}' matches the "
                                  f"arguments ({field} is {edm}).")
            self.take(")")
            return lambda e: function(str(e.get(field) or ""), str(value))
        edm = self.property_type(name)
        operator = self.take()[1].lower()
        if operator not in _COMPARE:
            raise FilterError(f"unknown operator {operator!r}")
        kind, value = self.literal()
        self.check_type(name, edm, kind, operator)
        compare = _COMPARE[operator]
        return lambda e: compare(_comparable(e.get(name), value), value)

    def literal(self) -> tuple[str, Any]:
        """``(kind, value)``: kind is string, guid, number, bool or null."""
        kind, text = self.take()
        if kind == "string":
            return kind, text[1:-1].replace("''", "'")
        if kind == "guid":
            return kind, text.lower()
        if kind == "number":
            return kind, float(text) if "." in text else int(text)
        if kind == "word" and text.lower() in {"true", "false"}:
            return "bool", text.lower() == "true"
        if kind == "word" and text.lower() == "null":
            return "null", None
        raise FilterError(f"expected a value, found {text!r}")


def _comparable(field_value: Any, literal: Any) -> Any:
    if isinstance(literal, str) and isinstance(field_value, str) and _is_guid(literal):
        return field_value.lower()
    return field_value


def _is_guid(text: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text) is not None


def compile_filter(text: str, schema: dict[str, str] | None = None, type_name: str = "entity") -> Predicate:
    """``schema`` (property → EDM type): check properties and literal types as BC does; ``None``:
    any property, any literal (the filter is only evaluated)."""
    return _Parser(text, schema, type_name).parse()


def check_select(fields: str, schema: dict[str, str], type_name: str) -> None:
    for name in (f.strip() for f in fields.split(",")):
        if name and name not in schema:
            raise FilterError(f"Could not find a property named '{name}' on type 'Microsoft.NAV.{type_name}'.")


def select(entity: dict[str, Any], fields: str | None) -> dict[str, Any]:
    if not fields:
        return entity
    wanted = {f.strip() for f in fields.split(",") if f.strip()}
    return {k: v for k, v in entity.items() if k in wanted or k.startswith("@odata.")}
