"""Exceptions as text for people (problem events, ``Problems``), apart from the logging setup
so that a gateway that leaves logging to its host does not import it."""

from __future__ import annotations

import traceback
from collections.abc import Sequence

__all__ = ("format_exceptions",)


def format_exceptions(exceptions: Sequence[BaseException], *, tracebacks: bool = True) -> str:
    """One readable block for several exceptions (with tracebacks unless told otherwise)."""
    parts: list[str] = []
    for i, exc in enumerate(exceptions, 1):
        head = f"[{i}/{len(exceptions)}] {type(exc).__name__}: {exc}"
        if tracebacks and exc.__traceback__ is not None:
            body = "".join(traceback.format_exception(exc)).rstrip()
            parts.append(f"{head}\n{body}")
        else:
            parts.append(head)
    return "\n".join(parts)
