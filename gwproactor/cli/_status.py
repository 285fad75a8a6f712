"""``gwproactor status URL``: read ``/status`` of a running gateway and render it with rich.

Also the small HTTP client the other commands share. Exit codes (``status``): 0 the gateway
is ready, 3 it answered but is not ready (a link not active, or not running), 1 it answered
with an error, 2 it could not be reached (or the URL is not usable).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gwproactor.errors import ProactorError

__all__ = (
    "EXIT_ERROR_ANSWER",
    "EXIT_NOT_READY",
    "EXIT_UNREACHABLE",
    "GatewayAnswerError",
    "GatewayUnreachableError",
    "STATE_STYLE",
    "base_url",
    "fetch_json",
    "post_json",
    "render_status",
    "status_command",
)

EXIT_ERROR_ANSWER = 1
EXIT_UNREACHABLE = 2
EXIT_NOT_READY = 3

STATE_STYLE = {
    "active": "bold green",
    "awaiting_peer": "yellow",
    "awaiting_setup": "yellow",
    "awaiting_setup_and_peer": "yellow",
    "connecting": "bold red",
    "not_started": "dim",
    "stopped": "dim",
}
"""Rich styles of link states (the same colours as the HTML page)."""

_PROBLEMS_SHOWN = 10


class GatewayUnreachableError(ProactorError):
    """No HTTP answer: refused, timed out, bad host, not HTTP, or a URL we cannot use."""


class GatewayAnswerError(ProactorError):
    """The gateway answered with an error status; ``message`` is its explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def base_url(url: str) -> str:
    """``host:port`` or ``http(s)://host:port[/prefix]``, without a trailing slash.
    Raises GatewayUnreachableError for another scheme."""
    if "://" not in url:
        url = f"http://{url}"
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise GatewayUnreachableError(f"{url}: only http:// and https:// URLs are supported")
    return url.rstrip("/")


def fetch_json(
    url: str,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    timeout: float,
    console: Console | None = None,
    what: str = "asking the gateway",
) -> Any:
    """GET ``base_url(url) + path`` and decode the JSON answer, showing a spinner on
    ``console`` while waiting. Runs its own event loop: call it from synchronous code
    (the command line), never from a running loop.

    Raises GatewayUnreachableError (no answer within ``timeout`` seconds, connection
    refused, not JSON) and GatewayAnswerError (an error status, with the gateway's
    message)."""
    target = base_url(url) + path
    if console is None:
        return asyncio.run(_get(target, params, timeout))
    with console.status(f"{what} at {target} …", spinner="dots"):
        return asyncio.run(_get(target, params, timeout))


def post_json(url: str, path: str, *, token: str | None, timeout: float) -> Any:
    """POST to ``base_url(url) + path`` with the bearer ``token`` (the gateway's
    ``web.token``) and decode the JSON answer. Raises as :func:`fetch_json`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return asyncio.run(_get(base_url(url) + path, None, timeout, method="POST", headers=headers))


async def _get(
    target: str,
    params: Mapping[str, str] | None,
    timeout: float,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
) -> Any:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.request(method, target, params=params, headers=headers) as response,
        ):
            text = await response.text()
            status = response.status
    except TimeoutError as e:
        raise GatewayUnreachableError(f"{target}: no answer within {timeout:g} s") from e
    except (aiohttp.ClientError, OSError, ValueError) as e:
        raise GatewayUnreachableError(f"{target}: {type(e).__name__}: {e}") from e
    try:
        data = json.loads(text)
    except ValueError as e:
        if status >= 400:
            raise GatewayAnswerError(status, text.strip()[:200]) from e
        raise GatewayUnreachableError(f"{target}: the answer is not JSON (a gateway?)") from e
    if status >= 400:
        message = data.get("message", text) if isinstance(data, dict) else text
        raise GatewayAnswerError(status, str(message))
    return data


def status_command(url: str, *, as_json: bool, timeout: float, console: Console) -> int:
    """Print the status of the gateway at ``url``; returns the exit code (0 ready, 3 not
    ready, 1 error answer, 2 unreachable)."""
    try:
        status = fetch_json(url, "/status", timeout=timeout, console=console)
    except GatewayUnreachableError as e:
        console.print(f"[red]cannot reach the gateway:[/red] {e}")
        return EXIT_UNREACHABLE
    except GatewayAnswerError as e:
        console.print(f"[red]the gateway refused:[/red] {e}")
        return EXIT_ERROR_ANSWER
    if as_json:
        console.out(json.dumps(status, indent=2, sort_keys=True), highlight=False)
    else:
        try:
            console.print(render_status(status))
        except (KeyError, TypeError, AttributeError) as e:
            console.print(f"[red]unexpected answer from {url}:[/red] missing {e}")
            return EXIT_UNREACHABLE
    ready = isinstance(status, dict) and status.get("ready") is True
    return 0 if ready else EXIT_NOT_READY


def render_status(status: Mapping[str, Any]) -> Group:
    """A rich rendering of a ``/status`` snapshot: heading, links, queues, problems."""
    ready = Text("READY", style="bold green") if status["ready"] else Text("NOT READY", "bold red")
    heading = Text.assemble(
        (str(status["gateway"]), "bold"),
        f"  {status['state']}  ",
        ready,
        f"  up {_duration(status['uptime_seconds'])}",
    )
    return Group(
        heading,
        _links(status["links"]),
        _actors(status.get("actors", {})),
        _gateway(status),
        _problems(status),
    )


def _actors(actors: Mapping[str, Mapping[str, Any]]) -> Table:
    table = Table(title="actors", expand=False)
    for column in ("actor", "kind", "state", "messages", "errors", "last error", "last pat"):
        table.add_column(column)
    now = time.time()
    for name, actor in actors.items():
        state = str(actor.get("state", ""))
        style = {"running": "green", "stalled": "bold red", "failed": "bold red"}.get(state, "dim")
        last_error = actor.get("last_error") or ""
        if last_error and actor.get("last_error_time"):
            last_error += f" ({_ago(now - actor['last_error_time'])})"
        pats = ", ".join(
            f"{mname} {_ago(entry['silent_seconds'])}"
            for mname, entry in actor.get("monitored", {}).items()
        )
        table.add_row(
            name,
            str(actor.get("kind", "")),
            Text(state, style=style),
            str(actor.get("messages", 0)),
            Text(str(actor.get("errors", 0)), style="red" if actor.get("errors") else ""),
            last_error,
            pats or "-",
        )
    return table


def _links(links: Mapping[str, Mapping[str, Any]]) -> Table:
    table = Table(title="links", expand=False)
    for column in (
        "link",
        "peer",
        "role",
        "state",
        "broker",
        "last sent",
        "last heard",
        "acks pending",
        "in",
        "out",
        "reconnects",
    ):
        table.add_column(column)
    for name, link in links.items():
        stats = link["stats"]
        state = str(link["state"])
        table.add_row(
            name,
            str(link["peer"]),
            str(link["role"]),
            Text(state, style=STATE_STYLE.get(state, "")),
            str(link["broker"]),
            _ago(link["seconds_since_sent"]),
            _ago(link["seconds_since_heard"]),
            str(link["acks_pending"]),
            str(sum(stats["messages_in"].values())),
            str(sum(stats["messages_out"].values())),
            str(stats["reconnects"]),
        )
    return table


def _gateway(status: Mapping[str, Any]) -> Table:
    queue, store, uploader = status["receive_queue"], status["store"], status["uploader"]
    watchdog = status["watchdog"]
    table = Table(title="queues and health", show_header=False, expand=False)
    table.add_column("what")
    table.add_column("value")
    paused = Text(" (paused: full)", style="bold red") if queue["paused"] else Text("")
    table.add_row("receive queue", Text.assemble(f"{queue['depth']} / {queue['max']}", paused))
    received = status.get("received_events")
    if received is not None:
        held = (
            Text(" (paused: awaiting commit)", style="bold red") if received["paused"] else Text("")
        )
        table.add_row(
            "received, uncommitted",
            Text.assemble(f"{received['waiting']} / {received['max']}", held),
        )
    table.add_row(
        "store backlog",
        f"{store['pending_count']} events, {store['pending_bytes']} bytes "
        f"({store['archive_count']} archived; store {store['state']})",
    )
    if uploader is not None:
        window = f" (window {uploader['window']})" if "window" in uploader else ""
        table.add_row("upload", f"{uploader['in_flight']} in flight to {uploader['link']}{window}")
    for warning in status.get("warnings", ()):
        table.add_row("warning", Text(str(warning), style="bold yellow"))

    stalled = [n for n, entry in watchdog["names"].items() if entry["stalled"]]
    table.add_row(
        "watchdog",
        Text(f"STALLED: {', '.join(stalled)}", style="bold red")
        if stalled
        else Text(f"ok (all {len(watchdog['names'])} watched parts alive)", style="green"),
    )
    return table


def _problems(status: Mapping[str, Any]) -> Panel | Table:
    problems = status["recent_problems"][-_PROBLEMS_SHOWN:]
    if not problems:
        return Panel("none", title="recent problems", expand=False)
    table = Table(title="recent problems", expand=False)
    for column in ("time", "kind", "summary", "details"):
        table.add_column(column)
    for problem in reversed(problems):
        kind = Text("error", "red") if problem["error"] else Text("warning", "yellow")
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(problem["time"])),
            kind,
            str(problem["summary"]),
            str(problem["details"]),
        )
    return table


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{_duration(seconds)} ago"


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"
