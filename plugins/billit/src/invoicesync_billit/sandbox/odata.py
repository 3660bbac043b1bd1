"""The OData v3 subset Billit's ``GET /v1/orders`` understands: ``$filter``, ``$orderby``.

``$filter``: comparisons ``eq ne gt ge lt le`` joined by ``and``/``or`` (parentheses allowed),
string literals in single or double quotes, ``DateTime'...'`` / ``datetime'...'`` (date or
date-time), numbers, ``true``/``false``/``null``, sub-properties with ``/``. Only the properties
Billit still allows may be filtered on; anything else is Billit's ``GenericError``.

Strict by default, as Billit's OData (ASP.NET Web API, OData v3) is: operators and keywords are
lowercase (``EQ`` is a syntax error), property names match exactly, a literal must have its
property's type (``LastModified ge '2025-01-01'`` and ``OrderID gt '5'`` are type errors), and an
OData v3 ``DateTime`` carries no offset. ``strict=False`` is the lenient variant for tolerance tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

#: Billit's filterable properties (since March 2026).
FILTERABLE = frozenset({
    "OrderID", "CounterParty/PartyID", "CompanyID", "OrderDirection", "OrderType", "OrderDate", "OrderNumber",
    "ExpiryDate", "ExportedToConnector", "AccountantVerificationNeeded", "TotalExcl", "TotalVAT", "TotalIncl",
    "FXRateToForeign", "Paid", "OrderStatus", "ExternalProviderID", "Currency", "PaymentReference",
    "LastModified", "Created", "ApprovalStatus", "PaidDate", "PaymentMethod", "Reference", "RemindersSent",
    "ExternalProvider", "IsSent",
})
SAFE_TYPE = "Domain.Order.OrderPartyPerformanceSafeColumns"

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<lparen>\() | (?P<rparen>\)) |
      (?P<dt>[Dd]ate[Tt]ime'(?P<dtv>[^']*)') |
      (?P<str>'(?P<sv>(?:[^']|'')*)'|"(?P<dv>[^"]*)") |
      (?P<num>-?\d+(?:\.\d+)?[mMdD]?) |
      (?P<word>[A-Za-z_][A-Za-z0-9_/]*)
    )""", re.VERBOSE)
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


class ODataError(ValueError):
    """Billit answers these as ``GenericError`` (HTTP 400)."""


Predicate = Callable[[dict[str, Any]], bool]


#: Edm types of the filterable properties (the rest are strings / enums).
DATETIME_PROPS = frozenset({"OrderDate", "ExpiryDate", "LastModified", "Created", "PaidDate"})
NUMBER_PROPS = frozenset({"OrderID", "CompanyID", "TotalExcl", "TotalVAT", "TotalIncl", "FXRateToForeign",
                          "RemindersSent"})
BOOLEAN_PROPS = frozenset({"ExportedToConnector", "AccountantVerificationNeeded", "Paid", "IsSent"})
#: Billit's docs write this one quoted (``CounterParty/PartyID eq '...'``): a number or a string.
EITHER_PROPS = frozenset({"CounterParty/PartyID"})
_OP_NAMES = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual",
             "lt": "LessThan", "le": "LessThanOrEqual"}


def parse_datetime(text: str, *, strict: bool = False) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip() if strict else text.strip().replace("Z", ""))
    except ValueError:
        raise ODataError(f"The DateTime literal '{text}' is not valid.") from None
    if strict and parsed.tzinfo is not None:  # that would be a DateTimeOffset, not an OData v3 DateTime
        raise ODataError(f"Unrecognized 'Edm.DateTime' literal 'datetime'{text}''.")
    return parsed


def _edm_type(prop: str) -> str:
    if prop in DATETIME_PROPS:
        return "Edm.DateTime"
    if prop in NUMBER_PROPS:
        return "Edm.Int32" if prop in ("OrderID", "CompanyID", "RemindersSent") else "Edm.Decimal"
    return "Edm.Boolean" if prop in BOOLEAN_PROPS else "Edm.String"


def _literal_type(literal: Any) -> str:
    if isinstance(literal, bool):
        return "Edm.Boolean"
    if isinstance(literal, datetime):
        return "Edm.DateTime"
    if isinstance(literal, Decimal):
        return "Edm.Decimal"
    return "Edm.String"


def check_types(prop: str, op: str, literal: Any) -> None:
    """A comparison whose literal does not have the property's type is an OData type error."""
    if literal is None or prop in EITHER_PROPS:
        return
    wanted, given = _edm_type(prop), _literal_type(literal)
    if wanted == given or (wanted == "Edm.Int32" and given == "Edm.Decimal" and literal == int(literal)):
        return
    raise ODataError(f"A binary operator with incompatible types was detected. Found operand types "
                     f"'{wanted}' and '{given}' for operator kind '{_OP_NAMES[op]}'.")


def value_of(order: dict[str, Any], prop: str) -> Any:
    value: Any = order
    for part in prop.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _tokens(text: str, strict: bool) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ODataError(f"Syntax error at position {pos} in '{text}'.")
        pos = match.end()
        if match.group("lparen"):
            out.append(("(", None))
        elif match.group("rparen"):
            out.append((")", None))
        elif match.group("dt") is not None:
            out.append(("lit", parse_datetime(match.group("dtv"), strict=strict)))
        elif match.group("str") is not None:
            sv = match.group("sv")
            out.append(("lit", sv.replace("''", "'") if sv is not None else match.group("dv")))
        elif match.group("num") is not None:
            try:
                out.append(("lit", Decimal(match.group("num").rstrip("mMdD"))))
            except InvalidOperation:
                raise ODataError(f"Bad number in '{text}'.") from None
        else:
            word = match.group("word")
            lower = word if strict else word.lower()  # OData keywords are lowercase
            if lower in _OPS or lower in ("and", "or"):
                out.append((lower, None))
            elif lower in ("true", "false"):
                out.append(("lit", lower == "true"))
            elif lower == "null":
                out.append(("lit", None))
            else:
                out.append(("prop", word))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]], strict: bool) -> None:
        self.tokens = tokens
        self.pos = 0
        self.strict = strict

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, kind: str) -> Any:
        if self.peek() != kind:
            raise ODataError(f"Syntax error: expected {kind} at token {self.pos}.")
        value = self.tokens[self.pos][1]
        self.pos += 1
        return value

    def expression(self) -> Predicate:
        left = self.conjunction()
        while self.peek() == "or":
            self.pos += 1
            right = self.conjunction()
            left = (lambda a, b: lambda o: a(o) or b(o))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.factor()
        while self.peek() == "and":
            self.pos += 1
            right = self.factor()
            left = (lambda a, b: lambda o: a(o) and b(o))(left, right)
        return left

    def factor(self) -> Predicate:
        if self.peek() == "(":
            self.pos += 1
            inner = self.expression()
            self.take(")")
            return inner
        prop = self.take("prop")
        if prop not in FILTERABLE:
            raise ODataError(f"Could not find a property named '{prop}' on type '{SAFE_TYPE}'.")
        op = self.peek()
        if op not in _OPS:
            raise ODataError(f"Syntax error: expected a comparison after '{prop}'.")
        self.pos += 1
        literal = self.take("lit")
        if self.strict:
            check_types(prop, op, literal)
        return lambda order: compare(value_of(order, prop), op, literal)


def compare(actual: Any, op: str, literal: Any) -> bool:
    if isinstance(literal, datetime):
        actual = parse_datetime(actual) if isinstance(actual, str) else None
    elif isinstance(literal, Decimal) and not isinstance(actual, bool) and isinstance(actual, int | float | Decimal):
        actual = Decimal(str(actual))
    if op == "eq":
        return bool(actual == literal)
    if op == "ne":
        return bool(actual != literal)
    if actual is None or literal is None:
        return False
    try:
        return bool({"gt": actual > literal, "ge": actual >= literal,
                     "lt": actual < literal, "le": actual <= literal}[op])
    except TypeError:
        raise ODataError(f"A binary operator with incompatible types was detected ({op}).") from None


def parse_filter(text: str | None, *, strict: bool = True) -> Predicate:
    if not text or not text.strip():
        return lambda order: True
    parser = _Parser(_tokens(text, strict), strict)
    predicate = parser.expression()
    if parser.peek() is not None:
        raise ODataError(f"Syntax error at token {parser.pos} in '{text}'.")
    return predicate


def sort_orders(orders: list[dict[str, Any]], orderby: str | None, *, strict: bool = True
                ) -> list[dict[str, Any]]:
    """``$orderby=Prop [asc|desc], ...``; stable, nulls first (like SQL Server). ``asc``/``desc``
    are lowercase OData keywords (``ASC`` is a syntax error) unless not ``strict``."""
    if not orderby or not orderby.strip():
        return sorted(orders, key=lambda o: o["OrderID"])
    keys = []
    for part in orderby.split(","):
        words = part.split()
        direction = words[1] if len(words) == 2 else "asc"
        direction = direction if strict else direction.lower()
        if not words or len(words) > 2 or direction not in ("asc", "desc"):
            raise ODataError(f"Syntax error in $orderby '{orderby}'.")
        if words[0] not in FILTERABLE:
            raise ODataError(f"Could not find a property named '{words[0]}' on type '{SAFE_TYPE}'.")
        keys.append((words[0], direction == "desc"))
    result = list(orders)
    for prop, descending in reversed(keys):
        result.sort(key=_key_for(prop), reverse=descending)
    return result


def _key_for(prop: str) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    return lambda order: _sort_key(value_of(order, prop))


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, str):
        try:
            return (1, datetime.fromisoformat(value))
        except ValueError:
            return (2, value)
    return (3, value)
