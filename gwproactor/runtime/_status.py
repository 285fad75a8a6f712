"""A JSON-ready snapshot of a running gateway, for /status, /metrics, the CLI and tests.

Secrets never appear here: settings are not copied wholesale, only named, harmless facts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from gwproactor._version import __version__
from gwproactor.actor.communicator import CommunicatorInterface
from gwproactor.config import ProactorSettings
from gwproactor.events import EventManager
from gwproactor.links import Link
from gwproactor.observe._problem_reporter import ProblemReporter
from gwproactor.observe.history import GatewayHistory
from gwproactor.observe.recent_log import RecentLog
from gwproactor.observe.stats import ProactorStats
from gwproactor.runtime._actor_status import actor_status
from gwproactor.store import EventStore
from gwproactor.watchdog import InternalWatchdog, WatchdogPatter

__all__ = ("StatusSources", "build_status")


class StatusSources(Protocol):
    """What the snapshot reads; the Proactor satisfies it structurally."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def uptime_seconds(self) -> float: ...
    @property
    def ready(self) -> bool: ...
    @property
    def settings(self) -> ProactorSettings: ...
    @property
    def links(self) -> Mapping[str, Link]: ...
    @property
    def receive_queue_depth(self) -> int: ...
    @property
    def reading_paused(self) -> bool: ...
    @property
    def stats(self) -> ProactorStats: ...
    @property
    def store(self) -> EventStore: ...
    @property
    def events(self) -> EventManager: ...
    @property
    def watchdog(self) -> InternalWatchdog: ...
    @property
    def patter(self) -> WatchdogPatter: ...
    @property
    def communicators(self) -> Mapping[str, CommunicatorInterface]: ...
    @property
    def problems(self) -> ProblemReporter: ...
    @property
    def history(self) -> GatewayHistory: ...
    @property
    def recent_log(self) -> RecentLog: ...


def build_status(proactor: StatusSources) -> dict[str, Any]:
    """Everything an operator wants at a glance. Loop-only (reads loop-owned state)."""
    now = time.monotonic()
    wall = time.time()
    links: dict[str, Any] = {}
    for name, link in proactor.links.items():
        links[name] = {
            "peer": link.peer,
            "role": link.role,
            "state": link.state.value,
            "active": link.active,
            "broker": link.transport.broker_label,
            "peer_presence": link.peer_presence,
            "connected": link.transport.connected(),
            "subscribed": link.transport.all_subscribed,
            "last_sent": link.last_sent_wall or None,
            "last_heard": link.last_heard_wall or None,
            "seconds_since_sent": round(now - link.last_sent, 3) if link.last_sent else None,
            "seconds_since_heard": round(now - link.last_heard, 3) if link.last_heard else None,
            "acks_pending": link.acks_pending,
            "inflight_limit": link.inflight_limit,  # the connection's (0: none)
            "acks_overdue": link.acks_overdue,
            "acks_unanswered": link.acks_unanswered,
            "last_error": link.last_error or None,
            "last_error_time": link.last_error_wall or None,
            "stats": link.stats.as_dict(),
        }
    store = proactor.store
    uploader = proactor.events.uploader
    watchdog = proactor.watchdog
    watched = watchdog.snapshot()

    return {
        "gateway": proactor.name,
        "version": __version__,
        "state": proactor.state,
        "time": wall,
        "uptime_seconds": round(proactor.uptime_seconds, 3),
        "ready": proactor.ready,
        "links": links,
        "receive_queue": {
            "depth": proactor.receive_queue_depth,
            "max": proactor.settings.receive_queue_max,
            "paused": proactor.reading_paused,
            "high_water": proactor.stats.queue_high_water,
            "pauses": proactor.stats.queue_pauses,
        },
        "received_events": {  # from peers, awaiting their commit (reading pauses at max)
            "waiting": proactor.events.received_waiting,
            "max": proactor.events.max_received_waiting,
            "high_water": proactor.events.received_high_water,
            "paused": proactor.events.received_held,
            "pauses": proactor.stats.received_pauses,
        },
        "store": {
            "state": store.state.name.lower(),
            "pending_count": store.pending_count,
            "pending_bytes": store.pending_bytes,
            "archive_count": store.archive_count,
            "dead_letter_count": store.dead_letter_count,
            "stranded_pending": proactor.events.stranded,
            "durability": store.settings.durability,
            "overflow_policy": store.settings.overflow_policy,
            "stats": _fields(store.stats),
        },
        "uploader": (
            None
            if uploader is None
            else {
                "link": uploader.link.name,
                "in_flight": uploader.in_flight,
                # Events kept in flight at most now: the configured window, or while the
                # link's in-flight limit (an MQTT 5 broker's Receive Maximum) is smaller,
                # the limits that leave within a quarter of the ack timeout.
                "window": uploader.effective_window,
                "configured_window": uploader.window,
                # Not acked yet (the store's pending_count may still hold an acked event
                # whose delete waits to share the next commit: store.ack_delay_seconds).
                "unacked": uploader.unacked,
            }
            | _fields(uploader.stats)
        ),
        "watchdog": {
            "satisfied": watchdog.satisfied,
            "loop_lag_seconds": round(watchdog.loop_lag_seconds, 4),
            "stalls": watchdog.stall_count,
            "loop_idle_polls_per_second": round(watchdog.idle_polls_per_second),
            "names": {
                name: {
                    "timeout_seconds": entry.timeout_seconds,
                    "silent_seconds": round(entry.silent_seconds, 3),
                    "stalled": entry.stalled,
                }
                for name, entry in watched.items()
            },
            "service_pats": proactor.patter.sent_count,
            "service_pats_withheld": proactor.patter.withheld_count,
        },
        "actors": {
            name: actor_status(
                communicator, proactor.stats.actors.get(name), watched, proactor.state, wall
            )
            for name, communicator in proactor.communicators.items()
        },
        "stats": proactor.stats.as_dict() | {"links": None},
        "history": proactor.history.snapshot(wall),
        "warnings": _warnings(proactor),
        "recent_problems": [
            {
                "time": p.time,
                "summary": p.summary,
                "details": p.details,
                "error": p.error,
                "suppressed": p.suppressed,
                "count": max(p.count, proactor.problems.count(p.key)),
                "key": p.key,
            }
            for p in proactor.problems.recent
        ],
        # The last WARNING+ log records, oldest first (bounded: web.recent_log_size).
        "recent_log": proactor.recent_log.snapshot(),
    }


def _warnings(proactor: StatusSources) -> list[str]:
    """Standing conditions an operator must act on (not events: they hold until fixed)."""
    out = []
    stranded = proactor.events.stranded
    if stranded:
        out.append(
            f"{stranded} pending events have no upstream link: they stay in the store "
            "(gwproactor store CONFIG export --which pending)"
        )
    dead = proactor.store.dead_letter_count
    if dead:
        out.append(
            f"{dead} events are in the dead letters: upstream never acked them "
            "(gwproactor store CONFIG dead-letters)"
        )
    return out


def _fields(obj: object) -> dict[str, Any]:

    slots = getattr(obj, "__slots__", None)
    names = slots if slots is not None else vars(obj)
    return {name: getattr(obj, name) for name in names}
