"""``gwproactor events URL``: query a running gateway's event store over ``/events``.

Exit codes as ``status``: 0 answered, 1 the gateway refused the query (its message is
shown), 2 it could not be reached.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gwproactor.cli._status import (
    EXIT_ERROR_ANSWER,
    EXIT_UNREACHABLE,
    GatewayAnswerError,
    GatewayUnreachableError,
    fetch_json,
)

__all__ = ("events_command", "parse_time_ns", "render_events")

_PAYLOAD_CHARS = 120


def parse_time_ns(text: str) -> int:
    """An integer (ns since the epoch) or an ISO 8601 date/time (local time when it names
    no zone). Raises ValueError with a readable message; argparse shows it."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither ns since the epoch nor an ISO date/time") from None
    return int(moment.timestamp() * 1_000_000_000)


def events_command(
    url: str,
    *,
    pattern: str | None,
    limit: int | None,
    start_ns: int | None,
    end_ns: int | None,
    pending: bool | None,
    as_json: bool,
    timeout: float,
    console: Console,
) -> int:
    """Print the events matching the filters (oldest first); returns the exit code."""
    params: dict[str, str] = {}
    if pattern is not None:
        params["pattern"] = pattern
    if limit is not None:
        params["limit"] = str(limit)
    if start_ns is not None:
        params["start_ns"] = str(start_ns)
    if end_ns is not None:
        params["end_ns"] = str(end_ns)
    if pending is not None:
        params["pending"] = "true" if pending else "false"
    try:
        events = fetch_json(
            url, "/events", params=params, timeout=timeout, console=console, what="querying events"
        )
    except GatewayUnreachableError as e:
        console.print(f"[red]cannot reach the gateway:[/red] {e}")
        return EXIT_UNREACHABLE
    except GatewayAnswerError as e:
        console.print(f"[red]query refused:[/red] {e.message}")
        return EXIT_ERROR_ANSWER
    if not isinstance(events, list):
        console.print(f"[red]unexpected answer from {url}:[/red] not a list of events")
        return EXIT_UNREACHABLE
    if as_json:
        console.out(json.dumps(events, indent=2), highlight=False)
    else:
        console.print(render_events(events))
    return 0


def render_events(events: list[Mapping[str, Any]]) -> Table | Text:
    """A table: seq, local time, type, source, pending, payload (shortened)."""
    if not events:
        return Text("no events match", style="dim")
    table = Table(title=f"{len(events)} events", expand=False)
    for column in ("seq", "time", "type", "src", "pending"):
        table.add_column(column, no_wrap=True)
    table.add_column("payload", overflow="ellipsis", max_width=_PAYLOAD_CHARS)
    for event in events:
        seconds, ns = divmod(int(event["time_ns"]), 1_000_000_000)
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f".{ns // 1_000_000:03d}"
        )
        table.add_row(
            str(event["seq"]),
            when,
            str(event["type_name"]),
            str(event["src"]),
            Text("pending", "yellow") if event["pending"] else Text("archived", "dim"),
            json.dumps(_body(event.get("payload")), separators=(",", ":")),
        )
    return table


def _body(payload: Any) -> Any:
    # src and time are columns already; the rest of the payload is what a reader wants.
    if isinstance(payload, dict):
        return {k: v for k, v in payload.items() if k not in ("src", "time_ns")}
    return payload
