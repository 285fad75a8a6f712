"""Counters a gateway keeps: per link, and for the whole proactor.

Loop-only: every counter is updated on the event loop thread, so plain ints and dicts are
enough (no locks). Readers on other threads may see a slightly old value, never a torn one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container
from typing import Any, ClassVar

from gwproactor.observe._records import Record

__all__ = ("OTHER", "LinkStats", "ProactorStats", "bounded_label")

OTHER = "other"
"""The one label for every value that came from the wire and is not a known one."""


def bounded_label(value: str, known: Container[str]) -> str:
    """``value`` if it is a known one (a registered type, a configured actor or link), else
    :data:`OTHER`. Every counter keyed by something a peer chooses goes through this, so a
    peer sending 100,000 distinct names adds one key, not 100,000 (memory, /metrics,
    /status)."""
    return value if value in known else OTHER


class _Counters:
    """``==``, ``repr`` and keyword construction for a counter record whose fields are its
    instance attributes, in the order ``__init__`` sets them (what ``@dataclass`` gave these
    classes, without generating their methods at import: start-up time, issue 15)."""

    __hash__: ClassVar[None] = None  # type: ignore[assignment]  # mutable: unhashable

    def _set_given(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key not in self.__dict__:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword {key!r}")
            setattr(self, key, value)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self.__dict__ == other.__dict__
        return NotImplemented

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self.__dict__.items())
        return f"{type(self).__qualname__}({fields})"


class LinkStats(_Counters):
    """One link's counters. ``LinkStats(name)``; any counter may be given by keyword."""

    name: str
    # By message type: registered types, the rest under OTHER (bounded_label).
    messages_in: Counter[str]
    messages_out: Counter[str]
    decode_errors: Counter[str]  # by reason
    raw_in: int
    raw_out: int
    publish_failures: int
    connects: int
    reconnects: int
    disconnects: int
    connect_failures: int
    broker_switches: int
    subscription_failures: int
    state_changes: Counter[str]  # "<old>-><new>"
    ack_timeouts: int
    short_connections: int  # lost within stable_connection_seconds
    unanswered_reports: int  # problems raised for acks unanswered too long
    pings_sent: int
    acks_sent: int
    acks_received: int
    duplicates: int
    rejected_src: int
    raw_decode_errors: int

    def __init__(self, name: str, **counts: Any) -> None:
        self.name = name
        self.messages_in = Counter()
        self.messages_out = Counter()
        self.decode_errors = Counter()
        self.raw_in = 0
        self.raw_out = 0
        self.publish_failures = 0
        self.connects = 0
        self.reconnects = 0
        self.disconnects = 0
        self.connect_failures = 0
        self.broker_switches = 0
        self.subscription_failures = 0
        self.state_changes = Counter()
        self.ack_timeouts = 0
        self.short_connections = 0
        self.unanswered_reports = 0
        self.pings_sent = 0
        self.acks_sent = 0
        self.acks_received = 0
        self.duplicates = 0
        self.rejected_src = 0
        self.raw_decode_errors = 0
        if counts:
            self._set_given(counts)

    @property
    def decode_errors_total(self) -> int:
        return sum(self.decode_errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (dict(v) if isinstance(v, Counter) else v)
            for k, v in self.__dict__.items()
            if k != "name"
        } | {"decode_errors_total": self.decode_errors_total}


class ActorActivity(Record):
    """What the dispatcher saw of one communicator (keys: communicators only, bounded).
    Wall-clock times (0.0: never), for display."""

    __match_args__ = ("handled", "errors", "last_message", "last_error", "last_error_time")
    __slots__ = ("errors", "handled", "last_error", "last_error_time", "last_message")
    handled: int  # messages given to it (process_message called)
    errors: int  # of those, the ones that raised or returned Err
    last_message: float
    last_error: str
    last_error_time: float

    def __init__(
        self,
        handled: int = 0,
        errors: int = 0,
        last_message: float = 0.0,
        last_error: str = "",
        last_error_time: float = 0.0,
    ) -> None:
        self.handled = handled
        self.errors = errors
        self.last_message = last_message
        self.last_error = last_error
        self.last_error_time = last_error_time


class ProactorStats(_Counters):
    """The whole gateway's counters, each link's among them. ``ProactorStats()``; any
    counter may be given by keyword."""

    links: dict[str, LinkStats]
    actors: dict[str, ActorActivity]
    dispatched: int
    handler_errors: Counter[str]  # by communicator
    # By reason: unknown_actor (a link message naming an actor we do not have), no_route
    # (no actor named and no route for its type), unknown_destination (a local send).
    unroutable: Counter[str]
    queue_pauses: int
    queue_high_water: int
    # Links paused because too many received events awaited their commit (store behind).
    received_pauses: int
    events_generated: int
    events_rejected: int
    events_received: int
    events_duplicate: int
    events_redelivered: int  # handed to actors again at start (owed when last stopped)
    events_dead_lettered: int  # pending events taken out of the upload (poison)
    problems_reported: int
    problems_by_kind: Counter[str]  # bounded (reporter)

    def __init__(self, **counts: Any) -> None:
        self.links = {}
        self.actors = {}
        self.dispatched = 0
        self.handler_errors = Counter()
        self.unroutable = Counter()
        self.queue_pauses = 0
        self.queue_high_water = 0
        self.received_pauses = 0
        self.events_generated = 0
        self.events_rejected = 0
        self.events_received = 0
        self.events_duplicate = 0
        self.events_redelivered = 0
        self.events_dead_lettered = 0
        self.problems_reported = 0
        self.problems_by_kind = Counter()
        if counts:
            self._set_given(counts)

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
