"""``gwproactor events URL``: query a running gateway's event store over ``/events``.

Exit codes: 0 answered, 1 the gateway refused the query (its message is shown), 2 it could
not be reached.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
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

__all__ = ("event_line", "events_command", "parse_time_ns", "render_events")

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
    newest: bool = True,
    follow: bool = False,
    interval: float = 2.0,
    follow_seconds: float = 0.0,
    stop_after: int = 0,
) -> int:
    """Print the events matching the filters, oldest first: the newest ``limit`` of them
    (``newest``, the default) or the oldest. With ``follow``, keep asking every
    ``interval`` seconds and print the ones not seen yet (as JSON lines with ``as_json``),
    until Ctrl-C, ``follow_seconds`` (0: no end) or ``stop_after`` new events (0: no end).
    Returns the exit code."""
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
    if newest or follow:
        params["newest"] = "true"
    full = not console.is_terminal  # piped: every character, nothing shortened
    try:
        events = _query(url, params, timeout, None if follow else console)
        if not follow:
            if as_json:
                console.out(json.dumps(events, indent=2), highlight=False)
            else:
                console.print(render_events(events, full=full))
            return 0
        _follow(
            url, params, events, as_json, timeout, console, interval, follow_seconds, stop_after
        )
    except GatewayUnreachableError as e:
        console.print(f"[red]cannot reach the gateway:[/red] {e}")
        return EXIT_UNREACHABLE
    except GatewayAnswerError as e:
        console.print(f"[red]query refused:[/red] {e.message}")
        return EXIT_ERROR_ANSWER
    except KeyboardInterrupt:
        pass
    return 0


def _query(
    url: str, params: Mapping[str, str], timeout: float, console: Console | None
) -> list[dict[str, Any]]:
    events = fetch_json(
        url, "/events", params=params, timeout=timeout, console=console, what="querying events"
    )
    if not isinstance(events, list):
        raise GatewayUnreachableError(f"unexpected answer from {url}: not a list of events")
    return events


def _follow(
    url: str,
    params: Mapping[str, str],
    first: list[dict[str, Any]],
    as_json: bool,
    timeout: float,
    console: Console,
    interval: float,
    follow_seconds: float,
    stop_after: int = 0,
) -> None:
    """Print ``first``, then every event with a higher seq as it appears (one line each).

    Each poll asks for the newest ``limit`` events; when all of them are new (more may have
    arrived since the last poll than one answer holds), it asks again for up to
    ``_FOLLOW_MAX`` so that none is skipped, and says so if even that was not enough."""
    deadline = time.monotonic() + follow_seconds if follow_seconds > 0 else None
    last_seq = -1
    printed = 0
    batch = first
    while True:
        for event in batch:
            if int(event["seq"]) > last_seq:
                last_seq = int(event["seq"])
                printed += 1
                if as_json:
                    console.out(json.dumps(event, separators=(",", ":")), highlight=False)
                else:
                    console.print(event_line(event), soft_wrap=True)
                if stop_after and printed - len(first) >= stop_after:
                    return
        if deadline is not None and time.monotonic() + interval > deadline:
            return
        time.sleep(interval)
        batch = _poll_new(url, params, timeout, last_seq, console)


_FOLLOW_MAX = 10_000  # the store's default max_query_limit


def _poll_new(
    url: str, params: Mapping[str, str], timeout: float, last_seq: int, console: Console
) -> list[dict[str, Any]]:
    """The newest events, enough of them to reach back to ``last_seq`` when possible."""
    limit = int(params.get("limit", "100"))
    while True:
        batch = _query(url, {**params, "limit": str(limit)}, timeout, None)
        reaches_back = any(int(event["seq"]) <= last_seq for event in batch)
        if reaches_back or len(batch) < limit or last_seq < 0:
            return batch
        if limit >= _FOLLOW_MAX:
            console.print(
                f"[yellow]more than {limit} events arrived between two polls: "
                "some were skipped[/yellow]"
            )
            return batch
        limit = min(limit * 10, _FOLLOW_MAX)


def event_line(event: Mapping[str, Any]) -> Text:
    """One event on one line (follow mode): time, seq, type, source, state, payload."""
    state = Text("pending", "yellow") if event["pending"] else Text("archived", "dim")
    return Text.assemble(
        _when(int(event["time_ns"])),
        f"  #{event['seq']}  ",
        (str(event["type_name"]), "bold"),
        f"  {event['src']}  ",
        state,
        "  " + json.dumps(_body(event.get("payload")), separators=(",", ":")),
    )


def _when(time_ns: int) -> str:
    seconds, ns = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f".{ns // 1_000_000:03d}"


def render_events(events: Sequence[Mapping[str, Any]], *, full: bool = False) -> Table | Text:
    """A table: seq, local time, type, source, pending, payload (shortened on a terminal;
    whole with ``full``)."""
    if not events:
        return Text("no events match", style="dim")
    table = Table(title=f"{len(events)} events", expand=False)
    for column in ("seq", "time", "type", "src", "pending"):
        table.add_column(column, no_wrap=True)
    if full:
        table.add_column("payload", no_wrap=True)
    else:
        table.add_column("payload", overflow="ellipsis", max_width=_PAYLOAD_CHARS)
    for event in events:
        table.add_row(
            str(event["seq"]),
            _when(int(event["time_ns"])),
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
