"""Prometheus text exposition (format 0.0.4) of a gateway's status snapshot.

Written by hand rather than with prometheus_client: the numbers already live in
``Proactor.status()``, a registry would be a second copy of them, and the runtime should not
depend on a metrics library. Every family has HELP and TYPE lines; counters end in
``_total``; label values are escaped as the format requires.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gwproactor.links import LinkState
from gwproactor.observe.stats import OTHER

__all__ = ("CONTENT_TYPE", "METRIC_NAMES", "render_metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "gwproactor_"

Sample = tuple[Mapping[str, str], float]
_Add = Callable[..., None]

# name -> (type, help). The order here is the order of the exposition.
_FAMILIES: dict[str, tuple[str, str]] = {
    "build_info": ("gauge", "always 1; the gwproactor version and the gateway's name as labels"),
    "info": ("gauge", "always 1; the gateway's name and lifecycle state as labels"),
    "ready": ("gauge", "1 when the gateway is running and every link is active"),
    "uptime_seconds": ("gauge", "seconds since the gateway finished starting"),
    "link_state": ("gauge", "1 for the link's current state, 0 for the others"),
    "link_active": ("gauge", "1 when the link is active"),
    "link_messages_in_total": (
        "counter",
        "messages received, by link and message type (registered types; the rest as other)",
    ),
    "link_messages_out_total": ("counter", "messages sent, by link and message type"),
    "link_decode_errors_total": ("counter", "payloads that could not be decoded, by reason"),
    "link_reconnects_total": ("counter", "broker reconnections after the first connect"),
    "link_connect_failures_total": ("counter", "attempts to connect to the broker that failed"),
    "link_ack_timeouts_total": ("counter", "ack-required messages whose ack came too late"),
    "link_publish_failures_total": ("counter", "publishes refused (link not connected)"),
    "link_duplicates_total": ("counter", "messages received again and dropped"),
    "link_acks_pending": ("gauge", "ack-required messages sent and not yet acknowledged"),
    "link_seconds_since_heard": (
        "gauge",
        "seconds since a valid message from the peer (since start when never heard)",
    ),
    "receive_queue_depth": ("gauge", "messages waiting in the receive queue"),
    "receive_queue_max": ("gauge", "receive queue depth at which links stop reading"),
    "receive_queue_paused": ("gauge", "1 while links are paused because the queue is full"),
    "receive_queue_high_water": ("gauge", "largest receive queue depth seen"),
    "receive_queue_pauses_total": ("counter", "times links stopped reading: receive queue full"),
    "received_events_waiting": ("gauge", "events received from peers awaiting their commit"),
    "received_events_paused": (
        "gauge",
        "1 while links are paused because too many received events await their commit",
    ),
    "received_events_pauses_total": (
        "counter",
        "times links stopped reading because too many received events awaited their commit",
    ),
    "store_pending_events": ("gauge", "events stored and awaiting an upstream ack"),
    "store_pending_bytes": ("gauge", "bytes of the events awaiting an upstream ack"),
    "store_archived_events": ("gauge", "events archived (received from downstream)"),
    "store_events_dropped_total": ("counter", "pending events deleted by drop_oldest (full)"),
    "store_events_refused_total": ("counter", "events refused because the store was full"),
    "store_write_errors_total": ("counter", "store operations lost to a failed transaction"),
    "store_dead_letters_total": (
        "counter",
        "pending events moved to the dead letters after too many failed upload attempts",
    ),
    "events_generated_total": ("counter", "events this gateway generated"),
    "events_rejected_total": (
        "counter",
        "events this gateway's actors generated that were not stored (the store refused or "
        "failed to write them, or the upstream link's codec cannot carry their type)",
    ),
    "events_received_total": ("counter", "new events received from downstream links"),
    "events_duplicate_total": ("counter", "events received again (already archived)"),
    "uploader_in_flight": ("gauge", "events sent upstream and awaiting their ack"),
    "uploader_window": (
        "gauge",
        "events kept in flight at most: the configured window, or on a slow path what the "
        "upstream connection's in-flight limit (an MQTT 5 broker's Receive Maximum) lets out "
        "within a quarter of the ack timeout",
    ),
    "dispatched_total": ("counter", "messages handed to communicators"),
    "unroutable_total": ("counter", "messages no communicator could take, by reason"),
    "handler_errors_total": ("counter", "messages a communicator failed on, by communicator"),
    "actor_running": ("gauge", "1 while the actor runs (its thread alive, nothing stalled)"),
    "actor_messages_total": ("counter", "messages given to the actor"),
    "actor_errors_total": (
        "counter",
        "the actor's failures: handlers that raised or returned Err, and errors in its thread",
    ),
    "loop_lag_seconds": ("gauge", "how late the event loop ran the watchdog's last check"),
    "watchdog_satisfied": ("gauge", "1 when no monitored name is stalled"),
    "watchdog_stalled": ("gauge", "1 for a monitored name that has gone silent"),
    "watchdog_silent_seconds": ("gauge", "seconds since the monitored name last patted"),
    "watchdog_stalls_total": ("counter", "times a monitored name went silent"),
    "problems_reported_total": ("counter", "problems reported (before rate limiting)"),
    "problems_total": ("counter", "problems reported (before rate limiting), by kind"),
}

METRIC_NAMES: tuple[str, ...] = tuple(PREFIX + name for name in _FAMILIES)
"""Every metric family name this module can emit (every one has a sample from start)."""

DECODE_REASONS = ("json", "envelope", "payload", "unknown_type", "mismatch", "too_large", "topic")
"""Decode error reasons shown at 0 before the first (others appear when they happen)."""

UNROUTABLE_REASONS = ("unknown_actor", "no_route", "unknown_destination")

PROBLEM_KINDS = ("handler", "unroutable", "link.connect", "store", "stall")
"""Problem kinds shown at 0 before the first (others appear when they happen)."""


def dead_letters(store: Mapping[str, Any]) -> int:
    """The dead-letter count of a status snapshot's ``store`` section: the store's
    ``stats.dead_lettered`` counter (the dead-letter table of issue 17), 0 where the store
    does not count dead letters. The one place this metric reads, so it follows the store
    without a change here."""
    return int(store.get("stats", {}).get("dead_lettered", 0))


def _backpressure_samples(add: _Add, status: Mapping[str, Any]) -> None:
    queue = status["receive_queue"]
    add("receive_queue_depth", queue["depth"])
    add("receive_queue_max", queue["max"])
    add("receive_queue_paused", queue["paused"])
    add("receive_queue_high_water", queue["high_water"])
    add("receive_queue_pauses_total", queue.get("pauses", 0))
    received = status.get("received_events", {})
    add("received_events_waiting", received.get("waiting", 0))
    add("received_events_paused", received.get("paused", False))
    add("received_events_pauses_total", received.get("pauses", 0))


def render_metrics(status: Mapping[str, Any]) -> str:
    """The exposition of ``status`` (a ``Proactor.status()`` snapshot). Pure; never raises
    for a snapshot of that shape."""
    samples = _samples(status)
    lines: list[str] = []
    for name, (kind, help_text) in _FAMILIES.items():
        family = samples.get(name)
        if not family:
            continue
        full = PREFIX + name
        lines.append(f"# HELP {full} {_escape_help(help_text)}")
        lines.append(f"# TYPE {full} {kind}")
        lines.extend(f"{full}{_labels(labels)} {_number(value)}" for labels, value in family)
    return "\n".join(lines) + "\n"


def _samples(status: Mapping[str, Any]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {name: [] for name in _FAMILIES}

    def add(metric: str, value: float | bool | None, **labels: str) -> None:
        if value is not None:
            out[metric].append((labels, float(value)))

    gateway = str(status["gateway"])
    add("build_info", 1, version=str(status.get("version", "")), gateway=gateway)
    add("info", 1, gateway=gateway, state=str(status["state"]))
    add("ready", status["ready"])
    add("uptime_seconds", status["uptime_seconds"])
    for link_name, link in status["links"].items():
        _link_samples(add, link_name, link, status["uptime_seconds"])
    _backpressure_samples(add, status)
    store = status["store"]
    add("store_pending_events", store["pending_count"])
    add("store_pending_bytes", store["pending_bytes"])
    add("store_archived_events", store["archive_count"])
    store_stats = store.get("stats", {})
    add("store_events_dropped_total", store_stats.get("dropped", 0))
    add("store_events_refused_total", store_stats.get("refused", 0))
    add("store_write_errors_total", store_stats.get("write_errors", 0))
    add("store_dead_letters_total", dead_letters(store))
    stats = status["stats"]
    add("events_generated_total", stats["events_generated"])
    add("events_rejected_total", stats["events_rejected"])
    add("events_received_total", stats["events_received"])
    add("events_duplicate_total", stats["events_duplicate"])
    add("dispatched_total", stats["dispatched"])
    add("problems_reported_total", stats["problems_reported"])
    for kind, count in _seeded(stats.get("problems_by_kind", {}), PROBLEM_KINDS):
        add("problems_total", count, kind=kind)
    for reason, count in _seeded(stats.get("unroutable", {}), UNROUTABLE_REASONS):
        add("unroutable_total", count, reason=reason)
    handler_errors = _seeded(stats["handler_errors"], status.get("actors", {}))
    for actor, errors in handler_errors:
        add("handler_errors_total", errors, communicator=actor)
    for actor, entry in _sorted(status.get("actors", {})):
        kind = str(entry.get("kind", "loop"))
        add("actor_running", entry.get("state") == "running", actor=actor, kind=kind)
        add("actor_messages_total", entry.get("messages", 0), actor=actor)
        add("actor_errors_total", entry.get("errors", 0), actor=actor)
    uploader = status["uploader"]
    if uploader is not None:
        add("uploader_in_flight", uploader["in_flight"], link=str(uploader["link"]))
        add("uploader_window", uploader["window"], link=str(uploader["link"]))
    watchdog = status["watchdog"]
    add("loop_lag_seconds", watchdog.get("loop_lag_seconds", 0.0))
    add("watchdog_satisfied", watchdog["satisfied"])
    add("watchdog_stalls_total", watchdog.get("stalls", 0))
    for name, entry in _sorted(watchdog["names"]):
        add("watchdog_stalled", entry["stalled"], name=name)
        add("watchdog_silent_seconds", entry["silent_seconds"], name=name)
    return out


def _link_samples(add: _Add, link_name: str, link: Mapping[str, Any], uptime: float) -> None:
    current = link["state"]
    for state in LinkState:
        add("link_state", state.value == current, link=link_name, state=state.value)
    add("link_active", link["active"], link=link_name)
    stats = link["stats"]
    for message_type, count in _seeded(stats["messages_in"], (OTHER,)):
        add("link_messages_in_total", count, link=link_name, type=message_type)
    for message_type, count in _seeded(stats["messages_out"], (OTHER,)):
        add("link_messages_out_total", count, link=link_name, type=message_type)
    for reason, count in _seeded(stats["decode_errors"], DECODE_REASONS):
        add("link_decode_errors_total", count, link=link_name, reason=reason)
    add("link_reconnects_total", stats["reconnects"], link=link_name)
    add("link_connect_failures_total", stats.get("connect_failures", 0), link=link_name)
    add("link_ack_timeouts_total", stats.get("ack_timeouts", 0), link=link_name)
    add("link_publish_failures_total", stats.get("publish_failures", 0), link=link_name)
    add("link_duplicates_total", stats.get("duplicates", 0), link=link_name)
    add("link_acks_pending", link["acks_pending"], link=link_name)
    heard = link["seconds_since_heard"]
    add("link_seconds_since_heard", uptime if heard is None else heard, link=link_name)


def _seeded(counts: Mapping[str, Any], known: Iterable[str]) -> Iterable[tuple[str, Any]]:
    """``counts`` with every ``known`` label present (0 until counted): a counter that
    appears only after its first increment cannot be alerted on with ``increase()``."""
    return _sorted(dict.fromkeys(known, 0) | dict(counts))


def _sorted(mapping: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    # Stable output: scrapes diff cleanly and tests can compare text.
    return sorted(mapping.items())


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape_label(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)
