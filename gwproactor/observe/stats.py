"""Counters a gateway keeps: per link, and for the whole proactor.

Loop-only: every counter is updated on the event loop thread, so plain ints and dicts are
enough (no locks). Readers on other threads may see a slightly old value, never a torn one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

__all__ = ("OTHER", "LinkStats", "ProactorStats", "bounded_label")

OTHER = "other"
"""The one label for every value that came from the wire and is not a known one."""


def bounded_label(value: str, known: Container[str]) -> str:
    """``value`` if it is a known one (a registered type, a configured actor or link), else
    :data:`OTHER`. Every counter keyed by something a peer chooses goes through this, so a
    peer sending 100,000 distinct names adds one key, not 100,000 (memory, /metrics,
    /status)."""
    return value if value in known else OTHER


@dataclass
class LinkStats:
    name: str
    # By message type: registered types, the rest under OTHER (bounded_label).
    messages_in: Counter[str] = field(default_factory=Counter)
    messages_out: Counter[str] = field(default_factory=Counter)
    decode_errors: Counter[str] = field(default_factory=Counter)  # by reason
    raw_in: int = 0
    raw_out: int = 0
    publish_failures: int = 0
    connects: int = 0
    reconnects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    broker_switches: int = 0
    subscription_failures: int = 0
    state_changes: Counter[str] = field(default_factory=Counter)  # "<old>-><new>"
    ack_timeouts: int = 0
    short_connections: int = 0  # lost within stable_connection_seconds
    unanswered_reports: int = 0  # problems raised for acks unanswered too long
    pings_sent: int = 0
    acks_sent: int = 0
    acks_received: int = 0
    duplicates: int = 0
    rejected_src: int = 0
    raw_decode_errors: int = 0

    @property
    def decode_errors_total(self) -> int:
        return sum(self.decode_errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (dict(v) if isinstance(v, Counter) else v)
            for k, v in self.__dict__.items()
            if k != "name"
        } | {"decode_errors_total": self.decode_errors_total}


@dataclass(slots=True)
class ActorActivity:
    """What the dispatcher saw of one communicator (keys: communicators only, bounded).
    Wall-clock times (0.0: never), for display."""

    handled: int = 0  # messages given to it (process_message called)
    errors: int = 0  # of those, the ones that raised or returned Err
    last_message: float = 0.0
    last_error: str = ""
    last_error_time: float = 0.0


@dataclass
class ProactorStats:
    links: dict[str, LinkStats] = field(default_factory=dict)
    actors: dict[str, ActorActivity] = field(default_factory=dict)
    dispatched: int = 0
    handler_errors: Counter[str] = field(default_factory=Counter)  # by communicator
    # By reason: unknown_actor (a link message naming an actor we do not have), no_route
    # (no actor named and no route for its type), unknown_destination (a local send).
    unroutable: Counter[str] = field(default_factory=Counter)
    queue_pauses: int = 0
    queue_high_water: int = 0
    # Links paused because too many received events awaited their commit (store behind).
    received_pauses: int = 0
    events_generated: int = 0
    events_rejected: int = 0
    events_received: int = 0
    events_duplicate: int = 0
    events_redelivered: int = 0  # handed to actors again at start (owed when last stopped)
    events_dead_lettered: int = 0  # pending events taken out of the upload (poison)
    problems_reported: int = 0
    problems_by_kind: Counter[str] = field(default_factory=Counter)  # bounded (reporter)

    def actor(self, name: str) -> ActorActivity:
        activity = self.actors.get(name)
        if activity is None:
            activity = self.actors[name] = ActorActivity()
        return activity

    def link(self, name: str) -> LinkStats:
        stats = self.links.get(name)
        if stats is None:
            stats = self.links[name] = LinkStats(name)
        return stats

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: (dict(v) if isinstance(v, Counter) else v)
            for k, v in self.__dict__.items()
            if k not in ("links", "actors")
        }
        out["links"] = {name: s.as_dict() for name, s in self.links.items()}
        return out
