"""The status page's history parts: per link a timeline of the last hour and its flaps, the
store backlog as a sparkline, and tables that become stacked cards at phone width.

Drawn as inline SVG (attributes only, no style attributes: the page's CSP allows its one
hashed stylesheet and nothing inline). Pure functions of a ``/status`` snapshot; every
value from the snapshot is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ("STATE_COLOR", "backlog_card", "link_history_table", "table")

STATE_COLOR = {
    "active": "#1a7f37",
    "awaiting_setup_and_peer": "#bf8700",
    "awaiting_setup": "#bf8700",
    "awaiting_peer": "#bf8700",
    "connecting": "#cf222e",
    "not_started": "#8c959f",
    "stopped": "#8c959f",
}

_TIMELINE_W = 360
_TIMELINE_H = 16
_SPARK_W = 360
_SPARK_H = 48


def table(
    table_id: str,
    headers: Sequence[str],
    rows: Sequence[tuple[str, Sequence[str]]],
) -> str:
    """A table whose cells carry their column name (``data-label``), so that at phone
    width the stylesheet can show each row as a card of "label: value" lines instead of
    a table that scrolls sideways. ``rows``: (attributes of the ``<tr>``, cell HTML)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        f"<tr{attrs}>"
        + "".join(
            f'<td data-label="{escape(h)}">{cell}</td>'
            for h, cell in zip(headers, cells, strict=True)
        )
        + "</tr>"
        for attrs, cells in rows
    )
    return (
        f'<table id="{escape(table_id)}" class="rows"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def link_history_table(history: Mapping[str, Any], now: float) -> str:
    """Per link: state and since when, a timeline of the last hour, flaps."""
    links: Mapping[str, Mapping[str, Any]] = history.get("links", {})
    if not links:
        return ""
    window = float(history.get("window_seconds", 3600.0))
    rows = []
    for name, link in links.items():
        state = str(link["state"])
        since = float(link["since"])
        transitions = link.get("transitions", [])
        rows.append(
            (
                f' data-history="{escape(name)}"',
                [
                    f"<b>{escape(name)}</b>",
                    f"{escape(state)} for {escape(_duration(now - since))}",
                    _timeline(transitions, state, float(link.get("created", 0)), now, window),
                    f"{int(link['flaps_last_hour'])} in the last hour "
                    f"({int(link['flaps_total'])} since start)",
                    str(len(transitions)),
                ],
            )
        )
    return "<h2>Link history (last hour)</h2>" + table(
        "history",
        ("Link", "State", "Last hour (old → now)", "Left active", "Changes"),
        rows,
    )


def _timeline(
    transitions: Sequence[Mapping[str, Any]], state: str, created: float, now: float, window: float
) -> str:
    start = now - window
    first = str(transitions[0]["old"]) if transitions else state
    begin = max(start, min(created, float(transitions[0]["time"])) if transitions else created)
    points: list[tuple[float, str]] = [(begin, first)]
    points += [(max(start, float(t["time"])), str(t["new"])) for t in transitions]
    rects = []
    for i, (t0, current) in enumerate(points):
        t1 = points[i + 1][0] if i + 1 < len(points) else now
        x0 = (t0 - start) / window * _TIMELINE_W
        width = max(0.0, (t1 - t0) / window * _TIMELINE_W)
        if width <= 0 and i + 1 < len(points):
            width = 0.5  # a change and its undoing within a pixel still shows
        color = STATE_COLOR.get(current, "#8c959f")
        rects.append(
            f'<rect x="{x0:.1f}" y="0" width="{width:.1f}" height="{_TIMELINE_H}" '
            f'fill="{color}"><title>{escape(current)}</title></rect>'
        )
    label = f"{len(transitions)} state changes in the last hour"
    return (
        f'<svg class="timeline" viewBox="0 0 {_TIMELINE_W} {_TIMELINE_H}" '
        f'preserveAspectRatio="none" role="img" aria-label="{label}">{"".join(rects)}</svg>'
    )


def backlog_card(history: Mapping[str, Any], pending_now: int, now: float) -> str:
    """The pending events over the last hour as a sparkline, with the current and the
    highest value."""
    samples = [(float(t), int(n)) for t, n in history.get("backlog", [])]
    samples.append((now, int(pending_now)))
    window = float(history.get("window_seconds", 3600.0))
    start = now - window
    peak = max(n for _, n in samples)
    scale = peak or 1
    points = " ".join(
        f"{(t - start) / window * _SPARK_W:.1f},{_SPARK_H - 2 - n / scale * (_SPARK_H - 4):.1f}"
        for t, n in samples
        if t >= start
    )
    return (
        '<div class="card wide" id="backlog"><h3>Backlog, last hour</h3>'
        f'<svg class="spark" viewBox="0 0 {_SPARK_W} {_SPARK_H}" preserveAspectRatio="none" '
        f'role="img" aria-label="pending events over the last hour, peak {peak}">'
        f'<polyline points="{points}" fill="none" stroke="#0969da" stroke-width="2"/></svg>'
        f"<p>now {int(pending_now)} pending · peak {peak} · {len(samples)} samples</p></div>"
    )


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"
