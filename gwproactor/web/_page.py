"""The HTML status page for a field technician, rendered from ``Proactor.status()``.

One renderer, on the server: the page carries the state as HTML when it loads (so it is
right with scripts off, in a text browser, or in a headless DOM dump), and a few lines of
inline script fetch the ``main`` fragment again every ``status_refresh_seconds`` and swap
it in. No external resources: the Content-Security-Policy sent with it forbids them.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from html import escape
from typing import Any

from gwproactor.web._page_history import backlog_card, link_history_table, table

__all__ = ("CSP", "FRAGMENT_PARAM", "render_fragment", "render_page")

FRAGMENT_PARAM = "part"
"""``GET /?part=main`` returns only the ``<main>`` content (what the script swaps in)."""

_RECENT_PROBLEMS = 10

_STATE_CLASS = {
    "active": "good",
    "awaiting_setup_and_peer": "warn",
    "awaiting_setup": "warn",
    "awaiting_peer": "warn",
    "connecting": "bad",
    "not_started": "idle",
    "stopped": "idle",
}

# Polls with a timeout so that a hung gateway shows the "cannot reach" banner instead of a
# page that silently stops changing; chained timeouts so polls never overlap.
_SCRIPT = """
(function () {
  var body = document.body, main = document.getElementById("main");
  var banner = document.getElementById("banner");
  var every = Number(body.getAttribute("data-refresh-ms")) || 2000;
  var lastOk = Date.now();
  function tick() {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, Math.max(every, 5000));
    fetch(location.pathname + "?part=main", {cache: "no-store", signal: ctl.signal})
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        main.innerHTML = html;
        lastOk = Date.now();
        banner.hidden = true;
        body.classList.remove("stale");
      })
      .catch(function (e) {
        var ago = Math.round((Date.now() - lastOk) / 1000);
        banner.textContent = "Cannot reach the gateway (" + (e.message || e) +
          "). Last good update " + ago + " s ago; the figures below are old.";
        banner.hidden = false;
        body.classList.add("stale");
      })
      .finally(function () { clearTimeout(timer); setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
""".strip()

_STYLE = """
body{font:16px/1.4 system-ui,sans-serif;margin:0;padding:1rem;background:#f6f8fa;color:#1f2328}
body.stale main{opacity:.45}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.75rem}
h1{margin:0;font-size:1.6rem} h2{font-size:1.15rem;margin:1.2rem 0 .4rem}
.banner{background:#cf222e;color:#fff;padding:.6rem;font-weight:bold;margin-bottom:.8rem}
.pill{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-weight:bold;
color:#fff;white-space:nowrap}
.good{background:#1a7f37}.warn{background:#bf8700}.bad{background:#cf222e}.idle{background:#6e7781}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #d0d7de;padding:.35rem .5rem;text-align:left}
th{background:#eaeef2}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{background:#fff;border:1px solid #d0d7de;padding:.6rem .8rem;min-width:14rem}
.card h3{margin:0 0 .3rem;font-size:1rem}
.big{font-size:1.4rem;font-weight:bold;margin:.1rem 0}
.error{color:#cf222e;font-weight:bold}.warning{color:#9a6700;font-weight:bold}
footer{margin-top:1rem;color:#57606a;font-size:.9rem}
nav{margin:.5rem 0;font-size:.95rem} a{color:#0969da}
.card.wide{flex:1 1 22rem}
ul.log{font-size:.9rem;overflow-wrap:anywhere;padding-left:1.2rem}
svg.timeline{width:100%;min-width:8rem;height:1rem;display:block;background:#eaeef2}
svg.spark{width:100%;height:3rem;display:block;background:#f6f8fa}
@media (max-width:700px){
body{padding:.5rem;font-size:15px}
table.rows thead{display:none}
table.rows,table.rows tbody,table.rows tr,table.rows td{display:block;width:auto}
table.rows tr{margin:0 0 .6rem;border:1px solid #d0d7de;background:#fff}
table.rows td{border:none;border-bottom:1px solid #eaeef2;padding:.25rem .5rem}
table.rows td::before{content:attr(data-label);display:inline-block;min-width:7rem;
font-weight:600;color:#57606a;margin-right:.5rem}
.card{min-width:0;flex:1 1 100%}
}
""".strip()

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

CSP = (
    "default-src 'none'; connect-src 'self'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; style-src 'sha256-{_STYLE_HASH}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The page's Content-Security-Policy: its own inline script and style, fetches to itself,
nothing else (no CDN, no images, no frames)."""


def render_page(status: Mapping[str, Any], refresh_seconds: float) -> str:
    """The whole page for ``status``. Pure; every value from the snapshot is escaped."""
    gateway = escape(str(status["gateway"]))
    refresh_ms = max(100, int(refresh_seconds * 1000))
    # Without scripts the page still refreshes itself, as a whole.
    noscript_refresh = max(1, round(refresh_seconds))
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<noscript><meta http-equiv="refresh" content="{noscript_refresh}"></noscript>'
        f"<title>{gateway} · gateway status</title>"
        f"<style>{_STYLE}</style></head>\n"
        f'<body data-refresh-ms="{refresh_ms}">\n'
        '<div id="banner" class="banner" role="alert" hidden></div>\n'
        f'<main id="main">{render_fragment(status, refresh_seconds)}</main>\n'
        f"<script>{_SCRIPT}</script>\n"
        "</body></html>\n"
    )


def render_fragment(status: Mapping[str, Any], refresh_seconds: float) -> str:
    """The content of ``<main>``: header, links, queue/store/watchdog cards, problems."""
    return "\n".join(
        (
            _header(status),
            _NAV,
            _links(status["links"]),
            link_history_table(status.get("history", {}), float(status["time"])),
            _actors(status.get("actors", {}), float(status["time"])),
            _cards(status),
            _problems(status["recent_problems"]),
            _recent_log(status.get("recent_log", [])),
            "<footer>Snapshot at "
            f"{escape(_clock(status['time']))} (gateway clock) · refreshes every "
            f"{refresh_seconds:g} s</footer>",
        )
    )


_NAV = (
    '<nav id="nav"><a href="/status">/status (JSON)</a> · <a href="/metrics">/metrics</a> · '
    '<a href="/events?newest=true&amp;limit=50">/events (newest 50)</a> · '
    '<a href="/readyz">/readyz</a></nav>'
)


def _header(status: Mapping[str, Any]) -> str:
    ready = bool(status["ready"])
    pill = (
        '<span id="ready" class="pill good">READY</span>'
        if ready
        else '<span id="ready" class="pill bad">NOT READY</span>'
    )
    return (
        f'<header><h1 id="gateway">{escape(str(status["gateway"]))}</h1>{pill}'
        f"<span>gateway {escape(str(status['state']))} · up "
        f"{escape(_duration(status['uptime_seconds']))}</span></header>"
    )


def _links(links: Mapping[str, Mapping[str, Any]]) -> str:
    if not links:
        return "<h2>Links</h2><p>This gateway has no links.</p>"
    rows = []
    for name, link in links.items():
        state = str(link["state"])
        css = _STATE_CLASS.get(state, "idle")
        rows.append(
            (
                f' data-link="{escape(name)}" data-state="{escape(state)}"',
                [
                    f"<b>{escape(name)}</b>",
                    escape(str(link["peer"])),
                    escape(str(link["role"])),
                    f'<span class="pill {css}">{escape(state)}</span>',
                    escape(str(link["broker"])),
                    _ago(link["seconds_since_sent"], link["last_sent"]),
                    _ago(link["seconds_since_heard"], link["last_heard"]),
                    _acks(link),
                    str(int(link["stats"]["reconnects"])),
                ],
            )
        )
    headers = (
        "Link",
        "Peer",
        "Role",
        "State",
        "Broker",
        "Last sent",
        "Last heard",
        "Acks pending",
        "Reconnects",
    )
    return "<h2>Links</h2>" + table("links", headers, rows)


def _acks(link: Mapping[str, Any]) -> str:
    """Acks pending; once one is overdue (a one-way link), the unacked count, marked bad."""
    if link.get("acks_overdue"):
        unacked = int(link.get("acks_unanswered", link["acks_pending"]))
        return f'<span class="pill bad" title="acks overdue">{unacked} unacked</span>'
    return str(int(link["acks_pending"]))


_ACTOR_STATE_CLASS = {"running": "good", "stalled": "bad", "failed": "bad"}


def _actors(actors: Mapping[str, Mapping[str, Any]], now: float) -> str:
    if not actors:
        return "<h2>Actors</h2><p>No actors.</p>"
    rows = []
    for name, actor in actors.items():
        state = str(actor.get("state", ""))
        css = _ACTOR_STATE_CLASS.get(state, "idle")
        errors = int(actor.get("errors", 0))
        last_error = actor.get("last_error")
        error_cell = str(errors)
        if last_error:
            when = actor.get("last_error_time") or now
            error_cell = (
                f'<span class="error">{errors}</span><br><small>'
                f"{escape(str(last_error))} ({_ago(now - when, when)})</small>"
            )
        last_message = actor.get("last_message_time")
        pats = [
            f"{escape(mname)}: {_ago(entry['silent_seconds'], entry['last_pat'])}"
            for mname, entry in actor.get("monitored", {}).items()
        ]
        rows.append(
            (
                f' data-actor="{escape(name)}" data-state="{escape(state)}"',
                [
                    f"<b>{escape(name)}</b><br><small>{escape(str(actor.get('class', '')))}"
                    "</small>",
                    escape(str(actor.get("kind", ""))),
                    f'<span class="pill {css}">{escape(state)}</span>',
                    str(int(actor.get("messages", 0))),
                    error_cell,
                    _ago(None if last_message is None else now - last_message, last_message),
                    "<br>".join(pats) or "-",
                ],
            )
        )
    headers = ("Actor", "Kind", "State", "Messages", "Errors", "Last message", "Last pat")
    return "<h2>Actors</h2>" + table("actors", headers, rows)


def _cards(status: Mapping[str, Any]) -> str:
    queue = status["receive_queue"]
    store = status["store"]
    uploader = status["uploader"]
    watchdog = status["watchdog"]
    received = status.get("received_events", {})
    reading = "paused: queue full" if queue["paused"] else "reading"
    if received.get("paused"):
        reading = "paused: received events awaiting their commit"
    waiting = (
        f"<p>{int(received['waiting'])} / {int(received['max'])} received events awaiting "
        f"commit · paused {int(received.get('pauses', 0))}&times; for them</p>"
        if "waiting" in received
        else ""
    )
    in_flight = (
        f"<p>{int(uploader['in_flight'])} in flight to {escape(str(uploader['link']))}"
        + (f" (window {int(uploader['window'])})" if "window" in uploader else "")
        + "</p>"
        if uploader is not None
        else ""
    )
    stalled = [name for name, entry in watchdog["names"].items() if entry["stalled"]]
    if stalled:
        dog = (
            '<p class="big"><span class="pill bad">STALLED</span></p>'
            f"<p>silent: {escape(', '.join(stalled))}</p>"
        )
    else:
        dog = (
            '<p class="big"><span class="pill good">OK</span></p>'
            f"<p>all {len(watchdog['names'])} watched parts alive</p>"
        )
    return (
        '<h2>Queues</h2><div class="cards">'
        '<div class="card" id="queue"><h3>Receive queue</h3>'
        f'<p class="big">{int(queue["depth"])} / {int(queue["max"])}</p><p>{reading}</p>'
        f"{waiting}</div>"
        '<div class="card" id="store"><h3>Store backlog</h3>'
        f'<p class="big">{int(store["pending_count"])} events</p>'
        f"<p>{escape(_bytes(store['pending_bytes']))} awaiting upload · "
        f"{int(store['archive_count'])} archived · store {escape(str(store['state']))}</p>"
        f"{in_flight}"
        + "".join(f"<p><b>{escape(str(w))}</b></p>" for w in status.get("warnings", ()))
        + "</div>"
        f'<div class="card" id="watchdog"><h3>Watchdog</h3>{dog}</div>'
        f"{backlog_card(status.get('history', {}), int(store['pending_count']), status['time'])}"
        "</div>"
    )


def _problems(problems: list[Mapping[str, Any]]) -> str:
    if not problems:
        return '<h2>Recent problems</h2><p id="problems">None.</p>'
    items = []
    latest: dict[str, Mapping[str, Any]] = {}  # one line per kind of problem: its latest
    for problem in problems:
        latest.pop(str(problem.get("key", id(problem))), None)
        latest[str(problem.get("key", id(problem)))] = problem
    for problem in reversed(list(latest.values())[-_RECENT_PROBLEMS:]):
        kind = "error" if problem["error"] else "warning"
        count = int(problem.get("count", 1))
        more = f" <b>&times;{count}</b>" if count > 1 else ""
        details = f"<br><small>{escape(str(problem['details']))}</small>"
        items.append(
            f"<li>{escape(_clock(problem['time']))} <span class='{kind}'>{kind}</span> "
            f"{escape(str(problem['summary']))}{more}"
            f"{details if problem['details'] else ''}</li>"
        )
    return f'<h2>Recent problems</h2><ul id="problems">{"".join(items)}</ul>'


def _recent_log(entries: list[Mapping[str, Any]]) -> str:
    """The last WARNING+ log lines, newest first."""
    if not entries:
        return '<h2>Recent log</h2><p id="recent-log">No warnings or errors logged.</p>'
    items = []
    for entry in reversed(entries):
        level = str(entry.get("level", ""))
        kind = "warning" if level == "WARNING" else "error"
        items.append(
            f"<li>{escape(_clock(float(entry.get('time', 0.0))))} "
            f"<span class='{kind}'>{escape(level)}</span> "
            f"<small>{escape(str(entry.get('logger', '')))}</small> "
            f"{escape(str(entry.get('message', '')))}</li>"
        )
    return (
        f"<h2>Recent log <small>(last {len(entries)} warnings and errors)</small></h2>"
        f'<ul id="recent-log" class="log">{"".join(items)}</ul>'
    )


def _ago(seconds: float | None, wall: float | None) -> str:
    if seconds is None or wall is None:
        return "never"
    return f'<span title="{escape(_clock(wall))}">{escape(_duration(seconds))} ago</span>'


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def _bytes(count: int) -> str:
    if count < 1024:
        return f"{int(count)} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


def _clock(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(wall)))
