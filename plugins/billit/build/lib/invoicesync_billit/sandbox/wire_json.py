"""JSON as Billit writes it: .NET ``decimal`` amounts keep their scale on the wire.

Billit serialises ``TotalExcl`` as ``24.00`` and ``FXRateToForeign`` as ``1.00000``, not ``24.0``
or ``1.0``. ``json.dumps`` cannot write a ``Decimal`` at all (and a float loses the scale), so
the emulator keeps amounts as ``Decimal`` and writes them with this small encoder.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def dumps(value: Any) -> bytes:
    """Compact JSON; a ``Decimal`` is written as a plain number with exactly its own digits."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode()


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        out.append(format(value, "f"))  # never an exponent: 1E+2 would still be a number, but not Billit's
    elif isinstance(value, dict):
        out.append("{")
        for n, (key, item) in enumerate(value.items()):
            out.append(("," if n else "") + json.dumps(str(key)) + ":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for n, item in enumerate(value):
            if n:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:  # str, int, float, bool, None: the standard encoder's spelling
        out.append(json.dumps(value))
