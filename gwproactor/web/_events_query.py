"""Parsing ``GET /events`` query strings, and turning stored events into JSON.

Bad parameters are expected data from a client, so parsing returns a ``Result`` whose
error is the message the 400 response carries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from result import Err, Ok, Result

from gwproactor.store import StoredEvent, compile_pattern
from gwproactor.web._params import INT64_MAX, BadParamError, int_param

__all__ = ("DEFAULT_LIMIT", "EVENT_PARAMS", "EventQuery", "event_json", "parse_event_query")

DEFAULT_LIMIT = 100
EVENT_PARAMS = ("pattern", "start_ns", "end_ns", "limit", "pending", "newest")

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


@dataclass(frozen=True, slots=True)
class EventQuery:
    """The arguments of ``Proactor.query_events``, validated."""

    pattern: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    limit: int = DEFAULT_LIMIT
    pending: bool | None = None
    newest: bool = False  # the last ``limit`` matches instead of the first (oldest first)


_BadQueryError = BadParamError


def parse_event_query(
    params: Mapping[str, str], keys: list[str], max_limit: int
) -> Result[EventQuery, str]:
    """Validate ``params`` (one value per key; ``keys`` lists every key as sent, to catch
    repeats). Unknown keys are refused so that a typo (``limt``) is not silently ignored.
    An empty value means "not given"."""
    try:
        return Ok(_parse(params, keys, max_limit))
    except _BadQueryError as e:
        return Err(str(e))


def _parse(params: Mapping[str, str], keys: list[str], max_limit: int) -> EventQuery:
    unknown = sorted(set(keys) - set(EVENT_PARAMS))
    if unknown:
        raise _BadQueryError(
            f"unknown parameter(s) {', '.join(unknown)}; use {', '.join(EVENT_PARAMS)}"
        )
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise _BadQueryError(f"parameter(s) given more than once: {', '.join(repeated)}")
    values = {k: v for k, v in params.items() if v != ""}
    pattern = values.get("pattern")
    if pattern is not None:
        try:
            compile_pattern(pattern)
        except ValueError as e:
            raise _BadQueryError(str(e)) from None
    # Wall-clock nanoseconds since the epoch: 0 up to what sqlite's 64-bit INTEGER holds.
    start_ns = int_param(values, "start_ns", low=0, high=INT64_MAX)
    end_ns = int_param(values, "end_ns", low=0, high=INT64_MAX)
    limit = int_param(values, "limit", low=1, high=max_limit)
    if start_ns is not None and end_ns is not None and end_ns < start_ns:
        raise _BadQueryError(f"end_ns ({end_ns}) is before start_ns ({start_ns})")
    return EventQuery(
        pattern=pattern,
        start_ns=start_ns,
        end_ns=end_ns,
        limit=DEFAULT_LIMIT if limit is None else limit,
        pending=_bool(values, "pending"),
        newest=bool(_bool(values, "newest")),
    )


def _bool(values: Mapping[str, str], key: str) -> bool | None:
    text = values.get(key)
    if text is None:
        return None
    lowered = text.lower()
    if lowered not in _TRUE | _FALSE:
        raise _BadQueryError(f"{key} must be true or false, got {text!r}")
    return lowered in _TRUE


def event_json(event: StoredEvent) -> dict[str, Any]:
    """One stored event for the JSON answer; the payload is decoded from its JSON bytes
    (an undecodable payload is given as text, with ``payload_error`` saying so)."""
    out: dict[str, Any] = {
        "seq": event.seq,
        "event_id": event.event_id,
        "type_name": event.type_name,
        "time_ns": event.time_ns,
        "src": event.src,
        "pending": event.pending,
    }
    try:
        out["payload"] = json.loads(event.payload)
    except (ValueError, UnicodeDecodeError) as e:
        out["payload"] = event.payload.decode("utf-8", "replace")
        out["payload_error"] = f"not JSON: {e}"
    return out
