"""What travels between the store's owner loop and its writer thread.

Operations go to the writer thread through its FIFO queue; one :class:`BatchOutcome` per
drained batch comes back to the loop. Reads are closures built on the loop (where their
arguments are validated) and run by the writer thread on its connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from gwproactor.store._model import StoredEvent, StoreStats

__all__ = (
    "AckOp",
    "AppendOp",
    "DeliveredOp",
    "FailedAttemptsOp",
    "BatchOutcome",
    "LoopCallback",
    "Counts",
    "Op",
    "OpenReport",
    "ReadFn",
    "ReadOp",
    "ReceiveOp",
    "StopOp",
    "Waiter",
    "WriteOp",
    "backlog_reader",
    "barrier_reader",
    "event_bytes",
    "query_reader",
    "undelivered_reader",
)


class LoopCallback:
    """A write's waiter that is a plain function: the loop calls ``fn(result)`` while it
    applies the batch outcome, in the same loop iteration. A future there would only
    schedule its done-callbacks for the next iteration, and an awaiting task for the one
    after: one hop and one Handle per event fewer for ``generate_event``. ``fn`` must not
    raise (an exception is logged and the rest of the batch is still answered)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], object]) -> None:
        self.fn = fn


Waiter: TypeAlias = asyncio.Future[Any] | concurrent.futures.Future[Any] | LoopCallback
"""Loop futures and :class:`LoopCallback` are answered on the loop through the batch
outcome; ``concurrent.futures.Future`` (used by ``append_threadsafe``) directly by the
writer thread."""
LoopWaiter: TypeAlias = asyncio.Future[Any] | LoopCallback
ReadFn: TypeAlias = Callable[[sqlite3.Connection], object]

COLUMNS: Final = "seq, event_id, type_name, time_ns, src, payload, pending"


def event_bytes(type_name: str, event_id: str, src: str, payload: bytes) -> int:
    """The size an event counts against the store's byte bounds."""
    return len(payload) + len(type_name.encode()) + len(event_id.encode()) + len(src.encode())


@dataclass(slots=True)
class AppendOp:
    """The gateway's own event: pending (to be sent upstream), or, on a gateway without an
    upstream link, straight into the archive (``pending=False``)."""

    type_name: str
    event_id: str
    time_ns: int
    src: str
    payload: bytes
    waiter: Waiter
    pending: bool = True


@dataclass(slots=True)
class ReceiveOp:
    type_name: str
    event_id: str
    time_ns: int
    src: str
    payload: bytes
    waiter: Waiter
    forward: bool = False  # also append it as pending, in the same transaction
    deliver_to: str | None = None  # owed to this actor ("" by type) until DeliveredOp


@dataclass(slots=True)
class AckOp:
    event_id: str | tuple[str, ...]  # several: one op for a burst of acks
    waiter: Waiter


@dataclass(slots=True)
class DeliveredOp:
    """Archived events whose actor has returned: nothing is owed for them any more."""

    event_ids: tuple[str, ...]
    waiter: Waiter


@dataclass(slots=True)
class FailedAttemptsOp:
    """Pending events whose upload failed once more (their ack timed out). Those that
    reach ``max_attempts`` move to the dead letters; the result lists them."""

    event_ids: tuple[str, ...]
    max_attempts: int
    waiter: Waiter


@dataclass(slots=True)
class ReadOp:
    """A read (or a barrier), run after everything queued before it is committed."""

    fn: ReadFn
    waiter: Waiter


@dataclass(slots=True)
class StopOp:
    """The last op: commit what came before, close, exit the thread."""


WriteOp: TypeAlias = AppendOp | ReceiveOp | AckOp | DeliveredOp | FailedAttemptsOp
Op: TypeAlias = WriteOp | ReadOp | StopOp


@dataclass(slots=True)
class Counts:
    """What the store holds, as committed."""

    pending_count: int = 0
    pending_bytes: int = 0
    archive_count: int = 0
    archive_bytes: int = 0
    dead_letter_count: int = 0


@dataclass(slots=True)
class OpenReport:
    """What the writer thread found when it opened the database."""

    counts: Counts
    corrupt_detail: str | None = None
    salvaged: int = 0  # rows copied out of a damaged store
    lost: int | None = None  # events of a damaged store that could not be read (None: unknown)
    warnings: list[str] = field(default_factory=list)  # reported as store.warning at start


@dataclass(slots=True)
class BatchOutcome:
    """Everything one drained batch hands back to the loop, in one callback."""

    results: list[tuple[LoopWaiter, object]] = field(default_factory=list)
    errors: list[tuple[LoopWaiter, BaseException]] = field(default_factory=list)
    # The writer's totals and counts as posted: objects it never changes again (it changes
    # copies), so the loop keeps them without copying.
    stats: StoreStats = field(default_factory=StoreStats)
    counts: Counts = field(default_factory=Counts)
    problems: list[tuple[str, str]] = field(default_factory=list)


def backlog_reader(after_seq: int, limit: int) -> Callable[[sqlite3.Connection], list[StoredEvent]]:
    """A read returning pending events with ``seq > after_seq``, oldest first."""
    sql = f"SELECT {COLUMNS} FROM events WHERE pending = 1 AND seq > ? ORDER BY seq LIMIT ?"  # noqa: S608 - constant text

    def read(conn: sqlite3.Connection) -> list[StoredEvent]:
        return [_row_event(row) for row in conn.execute(sql, (after_seq, limit))]

    return read


def query_reader(
    conditions: Sequence[str],
    params: Sequence[object],
    limit: int,
    *,
    latest: bool,
    pending: bool | None = None,
) -> Callable[[sqlite3.Connection], list[StoredEvent]]:
    """A read returning events matching all ``conditions`` (trusted SQL, ``?`` params)
    and ``pending`` (None: both kinds), in seq order: the first ``limit``, or the last
    ``limit`` when ``latest``.

    ``pending`` is written into the SQL as a literal: the type and time indexes are partial
    (archived events only, so that a new pending event writes two index pages fewer), and
    sqlite uses a partial index only for a query that names its condition literally. Both
    kinds: one query per kind, each with its own best plan, merged.
    """
    order = "DESC" if latest else "ASC"

    def select(kind: int) -> str:
        where = " AND ".join([f"pending = {kind}", *conditions])
        return f"SELECT {COLUMNS} FROM events WHERE {where} ORDER BY seq {order} LIMIT ?"  # noqa: S608 - conditions are built from constants; values are parameters

    if pending is not None:
        sql = select(int(pending))
        args: tuple[object, ...] = (*params, limit)
    else:
        sql = (
            f"SELECT * FROM ({select(0)}) UNION ALL SELECT * FROM ({select(1)}) "  # noqa: S608 - as above
            f"ORDER BY seq {order} LIMIT ?"
        )
        args = (*params, limit, *params, limit, limit)

    def read(conn: sqlite3.Connection) -> list[StoredEvent]:
        events = [_row_event(row) for row in conn.execute(sql, args)]
        if latest:
            events.reverse()
        return events

    return read


def undelivered_reader(
    after_seq: int, limit: int
) -> Callable[[sqlite3.Connection], list[tuple[StoredEvent, str]]]:
    """A read returning archived events still owed to an actor (``seq > after_seq``,
    oldest first, at most ``limit``), each with the actor it is owed to."""
    sql = (
        f"SELECT {COLUMNS}, deliver_to FROM events "  # noqa: S608 - constant text
        "WHERE deliver_to IS NOT NULL AND seq > ? ORDER BY seq LIMIT ?"
    )

    def read(conn: sqlite3.Connection) -> list[tuple[StoredEvent, str]]:
        return [(_row_event(row[:-1]), row[-1]) for row in conn.execute(sql, (after_seq, limit))]

    return read


def barrier_reader(conn: sqlite3.Connection) -> None:
    """A read that does nothing: once it is answered, everything queued before it is
    committed (or failed)."""
    del conn


def _row_event(row: tuple[Any, ...]) -> StoredEvent:
    seq, event_id, type_name, time_ns, src, payload, pending = row
    return StoredEvent(
        seq=seq,
        event_id=event_id,
        type_name=type_name,
        time_ns=time_ns,
        src=src,
        payload=payload,
        pending=bool(pending),
    )
