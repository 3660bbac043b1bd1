"""Partial responses: Drive's ``fields`` parameter (``nextPageToken,files(id,name)``, ``a/b``, ``*``)."""

from __future__ import annotations

from typing import Any

#: A selection: field name → sub-selection (``None``: the whole value).
Selection = dict[str, "Selection | None"]


class FieldsError(ValueError):
    pass


def parse_fields(text: str) -> Selection | None:
    """``None`` means everything (``*`` or no ``fields`` given)."""
    text = text.replace(" ", "")
    if text in {"", "*"}:
        return None
    selection, pos = _parse_list(text, 0)
    if pos != len(text):
        raise FieldsError(f"unbalanced parentheses in fields={text!r}")
    return selection


def _parse_list(text: str, pos: int) -> tuple[Selection, int]:
    selection: Selection = {}
    while pos < len(text) and text[pos] != ")":
        start = pos
        while pos < len(text) and text[pos] not in ",()":
            pos += 1
        path = text[start:pos].split("/")
        if not all(path):
            raise FieldsError(f"empty field name in fields={text!r}")
        sub: Selection | None = None
        if pos < len(text) and text[pos] == "(":
            sub, pos = _parse_list(text, pos + 1)
            if pos >= len(text) or text[pos] != ")":
                raise FieldsError(f"missing ) in fields={text!r}")
            pos += 1
        _merge(selection, path, sub)
        if pos < len(text) and text[pos] == ",":
            pos += 1
    return selection, pos


def _merge(selection: Selection, path: list[str], sub: Selection | None) -> None:
    head, *rest = path
    if not rest:
        selection[head] = sub if head != "*" else None
        return
    child = selection.get(head)
    if child is None and head in selection:
        return  # already selected whole
    child = child if child is not None else {}
    selection[head] = child
    _merge(child, rest, sub)


def apply(value: Any, selection: Selection | None) -> Any:
    """Keep only the selected parts of ``value`` (lists are filtered element by element)."""
    if selection is None or "*" in selection:
        return value
    if isinstance(value, list):
        return [apply(item, selection) for item in value]
    if not isinstance(value, dict):
        return value
    return {key: apply(value[key], sub) for key, sub in selection.items() if key in value}
