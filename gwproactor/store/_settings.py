"""Settings of the durable event store."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ("StoreSettings",)

_MIB = 1024 * 1024


class StoreSettings(BaseModel):
    """How the event store bounds, commits and checks its sqlite database.

    The byte bounds count *event bytes*: ``len(payload)`` plus the UTF-8 lengths of
    ``type_name``, ``event_id`` and ``src``. They bound the data the store keeps, not the
    size of the file (sqlite adds indexes and free pages; see ``max_file_bytes``).
    """

    # The field docstrings below document each setting. (pydantic's use_attribute_docstrings
    # would copy them into the schema, but parses this file's source at import: ~30 ms.)
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_bytes: int = Field(default=256 * _MIB, gt=0)
    """Bound on the event bytes of *pending* events (appended, not yet acked)."""

    overflow_policy: Literal["drop_oldest", "refuse_new"] = "drop_oldest"
    """What an append does when pending events would exceed ``max_bytes``: delete the
    oldest pending events to make room, or refuse the new event with ``StoreFullError``.
    Both are counted and reported as problems."""

    durability: Literal["full", "normal"] = "full"
    """sqlite ``synchronous`` in WAL mode. ``full`` fsyncs every commit and survives power
    loss; ``normal`` survives a process crash or SIGKILL but may lose the last commits on
    power loss. Group commit makes ``full`` cheap (one fsync per batch)."""

    max_batch: int = Field(default=2000, ge=1)
    """Most operations (appends, acks, receives) the writer thread commits in one
    transaction."""

    archive_max_bytes: int = Field(default=64 * _MIB, gt=0)
    """Bound on the event bytes of received (archived) events; the oldest are deleted
    first, always. De-duplication only remembers what the archive still holds."""

    busy_timeout_seconds: float = Field(default=5.0, ge=0)
    """How long sqlite waits for a lock held by another connection (a CLI reader, a
    checkpoint) before a write fails."""

    append_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long ``append_threadsafe`` blocks its calling thread waiting for the commit."""

    stop_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long ``stop`` waits for the writer thread to commit what is queued, close the
    database and exit."""

    max_query_limit: int = Field(default=10_000, ge=1)
    """Largest ``limit`` accepted by ``query`` and ``backlog``."""

    max_file_bytes: int | None = Field(default=None, gt=0)
    """Hard cap on the database file (sqlite ``max_page_count``); writes beyond it fail
    like a full disk (returned as errors, counted, reported). ``None``: no cap. Keep it
    well above ``max_bytes + archive_max_bytes`` or overflow shows up as write errors
    instead of drops."""

    wal_autocheckpoint_pages: int = Field(default=1000, ge=0)
    """sqlite ``wal_autocheckpoint``: WAL size in pages that triggers a checkpoint in the
    writer thread (0 disables automatic checkpoints)."""

    max_delivery_attempts: int = Field(default=10, ge=1)
    """Failed upload attempts (the upstream peer's ack timed out) after which a pending
    event is moved to the dead letters, reported as a problem, and the rest of the backlog
    flows on (``gwproactor store CONFIG dead-letters|retry|drop``). An ack timeout counts
    only for events in flight for a whole ``ack_timeout_seconds``; a lost connection does
    not count."""

    checkpoint_interval_seconds: float | None = Field(default=30.0, gt=0)
    """Copy committed events from the write-ahead log into the main file at least this
    often (a PASSIVE checkpoint in the writer thread, idle or busy), and truncate the WAL at
    a clean stop: a store file copied or kept without its ``-wal`` then misses at most this
    much. ``None``: only sqlite's own ``wal_autocheckpoint_pages``, which a gateway writing
    little may not reach for hours."""

    ack_delay_seconds: float = Field(default=1.0, ge=0)
    """Acks (deletes of acked events) that come alone wait up to this long for the next
    write, to share its transaction: at a steady trickle of events that halves the commits
    and most of the bytes written to flash. An ack not yet committed at a crash only means
    the event is sent again (the receiver drops the duplicate). 0: commit acks at once."""

    page_size: Literal[512, 1024, 2048, 4096, 8192, 16384, 32768, 65536] = 512
    """sqlite page size of a *new* store (an existing file keeps its own). Every commit
    writes each page it touches to the WAL, so small pages write far fewer bytes per event
    (about 7 KB instead of 55 KB at 2 events/s with ``full`` durability)."""

    quick_check_on_start: bool = True

    """Run ``PRAGMA quick_check`` when opening; it reads the whole file, so very large
    stores on slow flash may want to skip it."""
