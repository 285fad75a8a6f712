"""Numeric query parameters: parsed strictly and range-checked before anything uses them.

Every numeric parameter of every built-in route goes through :func:`int_param`, so a value
a database or a timer cannot hold (``start_ns=<31 nines>``) is the client's 400, never the
server's 500 or a store error. Bad input is expected data: the error is a message for the
client, raised as :class:`BadParamError` and turned into a 400 by the route.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ("INT64_MAX", "INT64_MIN", "BadParamError", "int_param")

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# ASCII digits only: int() also takes "1_000", " 12 " and other scripts' digits ("١٢").
_INTEGER = re.compile(r"-?[0-9]{1,19}")


class BadParamError(ValueError):
    """One query parameter is wrong; the message is what the client sees."""


def int_param(
    values: Mapping[str, str],
    key: str,
    *,
    low: int = INT64_MIN,
    high: int = INT64_MAX,
) -> int | None:
    """``values[key]`` as an int in ``low..high`` (both inclusive, within 64 bits), or None
    when absent. Raises BadParamError naming the parameter and the range otherwise."""
    text = values.get(key)
    if text is None:
        return None
    low, high = max(low, INT64_MIN), min(high, INT64_MAX)
    if _INTEGER.fullmatch(text) is None:
        raise BadParamError(f"{key} must be an integer, got {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise BadParamError(f"{key} must be between {low} and {high}, got {text[:40]}")
    return value
