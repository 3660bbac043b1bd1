"""A settings form generated from a plugin's pydantic settings model, and the form's values back.

Secrets (the plugin's ``info.secrets``, and ``SecretStr`` fields) are password inputs that are never
filled in: a value typed once goes to the secret store and is not echoed back in any page.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr, ValidationError

from ..secrets import redact

#: Kept by the plugin itself after a login, never typed in.
NOT_TYPED = frozenset({"oauth_token"})


@dataclass
class FormField:
    name: str
    label: str
    input: str  #: text, number, checkbox, select, password
    required: bool
    help: str = ""
    choices: list[str] = field(default_factory=list)
    value: str = ""  #: what the input shows (never a secret)
    error: str | None = None
    secret: bool = False
    default_on: bool = False  #: a checkbox whose default is True
    #: A secret the plugin keeps outside its settings: it goes to the secret store, not the state.
    in_secret_store: bool = False


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def _input_for(annotation: Any) -> tuple[str, list[str]]:
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) is Literal:
        return "select", [str(a) for a in typing.get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "select", [str(m.value) for m in annotation]
    if annotation is bool:
        return "checkbox", []
    if annotation in (int, float):
        return "number", []
    if annotation is date:
        return "date", []
    if annotation is SecretStr:
        return "password", []
    return "text", []


def settings_fields(model: type[BaseModel], secrets: typing.Sequence[str],
                    values: dict[str, str] | None = None) -> list[FormField]:
    """One input per setting the model takes, then one password input per secret the plugin keeps."""
    values = values or {}
    fields = []
    for name, info in model.model_fields.items():
        kind, choices = _input_for(info.annotation)
        secret = kind == "password" or name in secrets
        default = info.get_default() if not info.is_required() else None
        shown = "" if secret else values.get(name, "" if default is None else _text(default))
        fields.append(FormField(name, info.title or name.replace("_", " "), "password" if secret else kind,
                                info.is_required(), info.description or "", choices, shown, secret=secret,
                                default_on=default is True))
    for name in secrets:
        if name not in model.model_fields and name not in NOT_TYPED:
            fields.append(FormField(name, name.replace("_", " "), "password", False,
                                    "kept in the secret store; leave empty if the plugin asks for it another way",
                                    secret=True, in_secret_store=True))
    return fields


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else ""
    if isinstance(value, Enum):
        return str(value.value)
    return str(value) if isinstance(value, str | int | float | Path) else ""


def read_form(fields: list[FormField], form: typing.Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Split a submitted form into settings and secrets; empty inputs fall back to the model's defaults."""
    settings: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for item in fields:
        raw = form.get(item.name, "")
        if item.input == "checkbox":
            # an unticked box sends nothing: it means False only where the default is True, so a
            # default False is left to the model (which may tell "not set" from "set to False")
            if raw == "on" or item.default_on:
                settings[item.name] = raw == "on"
        elif item.in_secret_store:
            if raw:
                secrets[item.name] = raw
        elif raw != "":
            settings[item.name] = raw
    return settings, secrets


def validate(model: type[BaseModel], fields: list[FormField], settings: dict[str, Any]) -> bool:
    """Validate ``settings`` with the plugin's model; put each error beside its input."""
    try:
        model.model_validate(settings)
    except ValidationError as exc:
        by_name = {f.name: f for f in fields}
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else ""
            target = by_name.get(where)
            message = redact(error["msg"])
            if target is not None:
                target.error = message
            elif fields:
                fields[0].error = f"{where or 'settings'}: {message}"
        return False
    return True
