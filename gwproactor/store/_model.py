"""Plain data types of the event store: stored events, counters, lifecycle states."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ("DeadLetter", "StoreState", "StoreStats", "StoredEvent")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as the store holds it.

    ``pending`` is True for the gateway's own events awaiting an upstream ack and False for
    archived events: received from a child (``record_received``), or the gateway's own
    where it has no upstream link (``archive_then``).
    """

    seq: int
    """Assigned by the store, strictly increasing in append order, never reused."""
    event_id: str
    """Unique among pending events and unique among archived events."""
    type_name: str
    """Dotted type name, e.g. ``gw.relay.state``."""
    time_ns: int
    """Wall-clock timestamp of the event (ns since the epoch), used by queries."""
    src: str
    """Name of the gateway or actor that produced the event."""
    payload: bytes
    """The encoded event, opaque to the store (typically JSON)."""
    pending: bool


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A pending event taken out of the upload after too many failed attempts."""

    event_id: str
    type_name: str
    attempts: int


@dataclass(slots=True)
class StoreStats:
    """Counters of an :class:`~gwproactor.store.EventStore` since ``start``.

    Updated on the loop once per committed batch; ``EventStore.stats`` hands out copies.
    """

    appended: int = 0
    """Appends that returned ``Ok(seq)`` (``append`` and ``archive_then``: the gateway's
    own events)."""
    committed_batches: int = 0
    """Transactions committed by the writer thread (group commits)."""
    acked: int = 0
    """Acks that removed a pending event."""
    dropped: int = 0
    """Pending events deleted by the ``drop_oldest`` policy (including events evicted by
    a later event of their own batch, whose append returned ``Err(StoreFullError)``)."""
    refused: int = 0
    """Appends refused with ``StoreFullError`` (``refuse_new`` policy, or an event larger
    than ``max_bytes`` under either policy; for ``archive_then``, an event larger than
    ``archive_max_bytes``)."""
    write_errors: int = 0
    """Operations (appends, acks, receives) that failed because their transaction failed
    (disk full, I/O error)."""
    received_new: int = 0
    """``record_received`` calls that archived a new event."""
    received_duplicate: int = 0
    """``record_received`` calls whose event id was already archived."""
    archive_dropped: int = 0
    """Archived events deleted to keep the archive under ``archive_max_bytes``. Expected
    in steady state, so counted but not reported as a problem."""
    duplicate_appends: int = 0
    """Appends refused because their event id was already pending."""
    failed_attempts: int = 0
    """Upload attempts of pending events that failed (their ack timed out)."""
    dead_lettered: int = 0
    """Pending events moved to the dead letters after ``max_delivery_attempts``."""
    checkpoints: int = 0
    """Timed WAL checkpoints (``checkpoint_interval_seconds``)."""
    salvaged: int = 0
    """Rows copied out of a damaged store at start (see ``store.corrupt``)."""
    salvage_lost: int = 0
    """Events of a damaged store that could not be read at start (0 if unknown)."""

    def add(self, other: StoreStats) -> None:
        """Add ``other``'s counters to these."""
        self.appended += other.appended
        self.committed_batches += other.committed_batches
        self.acked += other.acked
        self.dropped += other.dropped
        self.refused += other.refused
        self.write_errors += other.write_errors
        self.received_new += other.received_new
        self.received_duplicate += other.received_duplicate
        self.archive_dropped += other.archive_dropped
        self.duplicate_appends += other.duplicate_appends
        self.failed_attempts += other.failed_attempts
        self.dead_lettered += other.dead_lettered
        self.checkpoints += other.checkpoints


class StoreState(enum.Enum):
    """Lifecycle of an :class:`~gwproactor.store.EventStore`; transitions only go down."""

    NOT_STARTED = "not_started"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
