"""The writer thread of the event store: the only code that touches the sqlite connection.

Thread rules: methods named ``_ext_*`` run in the writer thread only; ``*_threadsafe``
methods may be called from any thread; the rest (the constructor, ``start_thread``) run on
the owner's loop. Everything the loop needs back (operation results, counters, problems)
travels in one :class:`BatchOutcome` per drained batch, posted to the loop (see
:mod:`gwproactor.store._mailbox`); only ``append_threadsafe`` waiters, which are
``concurrent.futures.Future`` objects, are resolved from this thread directly.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import Final

from result import Err, Ok

from gwproactor.errors import StoreError, StoreFullError
from gwproactor.store._attempts import count_failed_attempts
from gwproactor.store._model import StoreStats
from gwproactor.store._ops import (
    AckOp,
    AppendOp,
    BatchOutcome,
    Counts,
    DeliveredOp,
    FailedAttemptsOp,
    Op,
    OpenReport,
    ReadOp,
    ReceiveOp,
    StopOp,
    Waiter,
    WriteOp,
    event_bytes,
)
from gwproactor.store._schema import count_events, open_database, suppress_sqlite_errors
from gwproactor.store._settings import StoreSettings

__all__ = ("SqliteWriter",)

logger = logging.getLogger("gwproactor.store")  # public name: the modules are private

_INSERT: Final = (
    "INSERT OR IGNORE INTO events "
    "(event_id, type_name, time_ns, src, payload, pending, nbytes, deliver_to) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELIVERED: Final = (
    "UPDATE events SET deliver_to = NULL "
    "WHERE event_id = ? AND pending = 0 AND deliver_to IS NOT NULL"
)
_FIND_PENDING: Final = "SELECT seq, nbytes FROM events WHERE event_id = ? AND pending = 1"
_DELETE_SEQ: Final = "DELETE FROM events WHERE seq = ?"
_OLDEST: Final = "SELECT seq, nbytes FROM events WHERE pending = ? ORDER BY seq"
_DELETE_UPTO: Final = "DELETE FROM events WHERE pending = ? AND seq <= ?"


# A tuple, not ``AppendOp | ReceiveOp | ...``: that builds a union object at every test.
_WRITE_OPS: Final = (AppendOp, ReceiveOp, AckOp, DeliveredOp, FailedAttemptsOp)

_stats_values = attrgetter(*(f.name for f in fields(StoreStats)))
_counts_values = attrgetter(*(f.name for f in fields(Counts)))


def _copy_stats(stats: StoreStats) -> StoreStats:
    """A copy (``dataclasses.replace`` costs ~280 Python instructions; this ~35)."""
    return StoreStats(*_stats_values(stats))


def _copy_counts(counts: Counts) -> Counts:
    return Counts(*_counts_values(counts))


def _answer(out: BatchOutcome, staged: list[tuple[Waiter, object]]) -> None:
    """``_ext_resolve`` for every op of a committed transaction, in one call."""
    results = out.results
    for waiter, value in staged:
        if isinstance(waiter, concurrent.futures.Future):
            if not waiter.done():
                waiter.set_result(value)
        else:
            results.append((waiter, value))


def _evicted_before_commit(
    segment: list[WriteOp],
    staged: list[tuple[Waiter, object]],
    appended: list[tuple[int, int]],
    cutoff: int,
    archive_cutoff: int,
    stats: StoreStats,
) -> None:
    """After a commit that evicted events: an append whose row a newer event of its own
    batch pushed out never became durable, so it is answered ``Err(StoreFullError)``;
    the others count as appended. ``appended``: (index in ``staged``, new seq)."""
    for index, seq in appended:
        own = segment[index]  # staged and segment go in step
        archived = isinstance(own, AppendOp) and not own.pending
        if seq <= (archive_cutoff if archived else cutoff):
            bound = "archive_max_bytes" if archived else "drop_oldest"
            full = StoreFullError(f"event seq {seq} dropped by {bound} before commit")
            staged[index] = (staged[index][0], Err(full))
        else:
            stats.appended += 1


@dataclass(slots=True)
class _Tally:
    """What one drained batch reports as problems: one report per kind, with counts, so
    that a full store under load does not flood the problem channel."""

    dropped: int = 0
    dropped_bytes: int = 0
    refused: int = 0
    archive_refused: int = 0  # own events larger than the whole archive (no upstream link)
    write_failures: int = 0
    write_error: str = ""

    def problems(self, settings: StoreSettings) -> list[tuple[str, str]]:
        problems = []
        if self.dropped:
            problems.append(
                (
                    "store.dropped",
                    f"dropped the {self.dropped} oldest pending events ({self.dropped_bytes} "
                    f"bytes) to stay within max_bytes={settings.max_bytes}",
                )
            )
        if self.refused:
            problems.append(
                (
                    "store.refused",
                    f"refused {self.refused} new events: pending events would exceed "
                    f"max_bytes={settings.max_bytes} (policy {settings.overflow_policy})",
                )
            )
        if self.archive_refused:
            problems.append(
                (
                    "store.refused",
                    f"refused {self.archive_refused} new events: each larger than "
                    f"archive_max_bytes={settings.archive_max_bytes}",
                )
            )
        if self.write_failures:
            problems.append(
                (
                    "store.write_error",
                    f"{self.write_failures} transactions failed; last: {self.write_error}",
                )
            )
        return problems


class _AckHold:
    """Acks that came alone wait (up to ``delay``) for the next write to share its
    transaction: one fsync'd commit instead of two, and the deleted rows sit on the pages
    the append writes anyway (on flash, about half the bytes written per event at a steady
    trickle). Writer thread only."""

    def __init__(self, delay: float, max_batch: int) -> None:
        self.delay = delay
        self.max_batch = max_batch
        self.ops: list[Op] = []
        self.deadline: float | None = None

    def due(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def take(self, batch: list[Op]) -> list[Op] | None:
        """The ops to process now (the held ones first), or None if ``batch`` is held."""
        if (
            batch
            and self.delay > 0
            and len(self.ops) + len(batch) < self.max_batch
            and all(isinstance(op, AckOp) for op in batch)
        ):
            if self.deadline is None:
                self.deadline = time.monotonic() + self.delay
            self.ops.extend(batch)
            return None
        out, self.ops, self.deadline = self.ops + batch, [], None
        return out

    def take_fast(self, batch: list[Op]) -> list[Op] | None:
        """:meth:`take`, answered at once in the common case: nothing held and the batch
        does not start with an ack (so it is not acks alone)."""
        if not self.ops and not isinstance(batch[0], AckOp):
            return batch
        return self.take(batch)


class SqliteWriter:
    """Owns the sqlite connection and the thread that runs every database operation.

    Operations are queued by the owner and executed in FIFO order. The thread takes
    everything queued (up to ``max_batch``) and commits consecutive writes in one
    transaction; a read first commits the writes queued before it, so it sees them and
    never sees data that a failed commit then rolls back.
    """

    def __init__(
        self,
        path: Path,
        settings: StoreSettings,
        post: Callable[[BatchOutcome], None],
    ) -> None:
        """Cheap: no I/O, no thread. ``post(outcome)`` (called in this object's thread,
        once per batch) hands an outcome to the owner's loop, in order, and never raises
        (see :class:`~gwproactor.store._mailbox.OutcomeMailbox`)."""
        self._path = path
        self._settings = settings
        self._post = post
        self._queue: queue.SimpleQueue[Op] = queue.SimpleQueue()
        # Makes "check closed, then put" atomic against stop, so nothing can be queued
        # behind the stop marker where it would never be answered.
        self._submit_lock = threading.Lock()
        self._closed = False
        self._conn: sqlite3.Connection | None = None
        self._committed_writes = False  # a batch committed something (writer thread only)
        self._archive_refusals = 0  # of the open transaction's refusals (see _Tally)
        self._unchecked_since: float | None = None  # first commit not yet checkpointed

        self._counts = Counts()
        self._totals = StoreStats()  # every batch's counters added up (writer thread only)
        self.opened: concurrent.futures.Future[OpenReport] = concurrent.futures.Future()
        """Resolved by the thread once the database is open (or failed to open)."""
        self.finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        """Resolved by the thread as its last action, after closing the connection."""
        self._thread = threading.Thread(
            target=self._ext_run, name=f"store[{path.name}].writer", daemon=True
        )

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def start_thread(self) -> None:
        """Start the writer thread; it opens the database and resolves ``opened``."""
        self._thread.start()

    def submit_threadsafe(self, op: WriteOp | ReadOp) -> bool:
        """Queue ``op``. False (op not queued) once stop has been requested. Any thread."""
        with self._submit_lock:
            if self._closed:
                return False
            self._queue.put(op)
            return True

    def request_stop_threadsafe(self) -> None:
        """Refuse new ops; the thread commits what is queued, closes and exits. Any thread."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(StopOp())

    # ---------------------------------------------------------------- writer thread

    def _ext_run(self) -> None:
        try:
            try:
                self._conn, report = open_database(self._path, self._settings)
            except StoreError as exc:
                self._ext_refuse_submissions()
                self.opened.set_exception(exc)
                return
            except Exception as exc:  # noqa: BLE001 - a bug must fail start(), not hang it
                self._ext_refuse_submissions()
                error = StoreError(f"opening the event store {self._path} failed: {exc!r}")
                error.__cause__ = exc
                self.opened.set_exception(error)
                return
            self._counts = _copy_counts(report.counts)
            self.opened.set_result(report)
            self._ext_serve()
        finally:
            conn, self._conn = self._conn, None
            if conn is not None:
                # Everything into the main file and the WAL cut to nothing: a store copied
                # as events.db alone after a clean stop is complete. (Closing the last
                # connection would checkpoint too, but not if a reader holds the file.)
                with suppress_sqlite_errors("checkpoint at stop"):
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                with suppress_sqlite_errors("close"):
                    conn.close()
            self.finished.set_result(None)

    def _ext_refuse_submissions(self) -> None:
        with self._submit_lock:
            self._closed = True

    def _ext_serve(self) -> None:
        get_nowait, empty = self._queue.get_nowait, self._queue.empty
        max_batch = self._settings.max_batch
        interval = self._settings.checkpoint_interval_seconds
        hold = _AckHold(self._settings.ack_delay_seconds, max_batch)
        out: BatchOutcome | None = None  # the last batch's, posted just before waiting
        while True:
            batch = self._ext_wait(hold, interval, out)
            out = None
            if batch is None:
                continue
            # Everything that queued up while the last commit was fsyncing goes into this
            # one: that is the whole of group commit. (Asked with empty() rather than ended
            # by queue.Empty: this thread is the only consumer, and an exception per batch
            # cost more than the rest of a batch of one's bookkeeping.)
            while len(batch) < max_batch and not empty():
                batch.append(get_nowait())
            taken = hold.take_fast(batch) if batch else hold.take(batch)
            if taken is None:
                continue
            batch = taken
            try:
                out, stop = self._ext_process(batch)
            except Exception:  # the thread must survive a bug and keep serving
                logger.exception("event store writer: unexpected error in a batch")
                out = self._ext_fail_batch(batch)
                stop = any(isinstance(op, StopOp) for op in batch)
            if stop:
                self._ext_post(out)
                return
            if self._committed_writes:
                self._committed_writes = False
                now = time.monotonic()
                if self._unchecked_since is None:
                    self._unchecked_since = now
                elif interval is not None and now - self._unchecked_since >= interval:
                    self._ext_post(out)  # before the checkpoint's, which counts it
                    out = None
                    self._ext_checkpoint()

    def _ext_wait(
        self, hold: _AckHold, interval: float | None, out: BatchOutcome | None
    ) -> list[Op] | None:
        """Post ``out`` (the last batch's outcome), then wait for the first op of the next
        batch; ``[]`` when held acks are due alone; None after a checkpoint (nothing to
        process yet).

        Posting is the last thing before blocking on the queue: the loop, woken by it,
        finds the GIL free instead of waiting for this thread to finish its bookkeeping
        (a futex wait and wake-up more on each side, per batch)."""
        deadlines = [] if hold.deadline is None else [hold.deadline]
        if self._unchecked_since is not None and interval is not None:
            # Commits are waiting in the WAL only: copy them into the main file once the
            # interval is up, idle or not.
            deadlines.append(self._unchecked_since + interval)
        if not deadlines:
            if out is not None:
                self._ext_post(out)
            return [self._queue.get()]
        timeout = max(0.0, min(deadlines) - time.monotonic())
        if out is not None:
            self._ext_post(out)
        try:
            return [self._queue.get(timeout=timeout)]
        except queue.Empty:
            if hold.due():
                return []  # the held acks waited long enough: commit them now
            self._ext_checkpoint()
            return None

    def _ext_checkpoint(self) -> None:
        """Copy the WAL's commits into the main file (PASSIVE: never waits for readers;
        what a reader still needs is copied next time)."""
        conn = self._conn
        assert conn is not None
        done = False
        with suppress_sqlite_errors("checkpoint"):
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            done = not busy and copied >= frames
        if not done:
            # A reader still needs older frames (or the checkpoint failed): try again one
            # interval later, not at once (that would spin).
            self._unchecked_since = time.monotonic()
            return
        self._unchecked_since = None
        self._totals = totals = _copy_stats(self._totals)
        totals.checkpoints += 1
        self._ext_post(BatchOutcome(stats=totals, counts=self._counts))

    def _ext_process(self, batch: Sequence[Op]) -> tuple[BatchOutcome, bool]:
        """Run ``batch``; return its outcome (to be posted) and whether it ends with stop."""
        # Given, so that the dataclass does not build a StoreStats and Counts to be replaced.
        out = BatchOutcome(stats=self._totals, counts=self._counts)
        tally = _Tally()
        segment: list[WriteOp] = []
        stop = False
        for op in batch:
            if isinstance(op, _WRITE_OPS):
                segment.append(op)
                continue
            self._ext_commit(segment, out, tally)
            segment = []
            if isinstance(op, ReadOp):
                self._ext_read(op, out)
            else:
                stop = True
        self._ext_commit(segment, out, tally)
        out.problems.extend(tally.problems(self._settings))
        return out, stop

    def _ext_commit(self, segment: list[WriteOp], out: BatchOutcome, tally: _Tally) -> None:
        """Apply ``segment`` in one transaction; answer its ops only after COMMIT.

        The counts and totals are copied first and the copies changed: the objects posted
        to the loop with an earlier outcome are never changed after, and a failed
        transaction puts the old ones back."""
        if not segment:
            return
        conn = self._conn
        assert conn is not None
        before, before_stats = self._counts, self._totals
        self._counts = _copy_counts(before)
        self._totals = stats = _copy_stats(before_stats)
        staged: list[tuple[Waiter, object]] = []
        appended: list[tuple[int, int]] = []  # (index in staged, seq)
        try:
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            for op in segment:
                value, seq = self._ext_apply(cur, op, stats)
                if seq is not None:
                    appended.append((len(staged), seq))
                staged.append((op.waiter, value))
            counts, settings = self._counts, self._settings
            if (
                counts.pending_bytes > settings.max_bytes
                or counts.archive_bytes > settings.archive_max_bytes
            ):
                cutoff, archive_cutoff, dropped_bytes = self._ext_enforce_bounds(stats)
            else:  # within both bounds: the common case, without the call
                cutoff = archive_cutoff = dropped_bytes = 0
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            self._ext_commit_failed(segment, out, tally, exc, before, before_stats)
            return
        except BaseException:
            # A bug (see _ext_fail_batch): nothing of this transaction is counted.
            self._counts, self._totals = before, before_stats
            self._archive_refusals = 0
            raise
        if cutoff or archive_cutoff:
            _evicted_before_commit(segment, staged, appended, cutoff, archive_cutoff, stats)
        else:  # nothing evicted: the common case
            stats.appended += len(appended)
        stats.committed_batches += 1
        self._committed_writes = True

        tally.dropped += stats.dropped - before_stats.dropped
        tally.dropped_bytes += dropped_bytes
        refused = stats.refused - before_stats.refused
        if refused:
            archive_refused, self._archive_refusals = self._archive_refusals, 0
            tally.refused += refused - archive_refused
            tally.archive_refused += archive_refused
        _answer(out, staged)

    def _ext_commit_failed(
        self,
        segment: list[WriteOp],
        out: BatchOutcome,
        tally: _Tally,
        exc: sqlite3.Error,
        before: Counts,
        before_stats: StoreStats,
    ) -> None:
        """The transaction failed: roll back, restore the counts, answer every op Err."""
        self._ext_rollback()
        self._archive_refusals = 0  # answered as write errors instead
        self._counts = before
        self._totals = _copy_stats(before_stats)
        self._totals.write_errors += len(segment)
        error = StoreError(f"event store write failed: {exc} ({len(segment)} operations)")
        error.__cause__ = exc
        for op in segment:
            self._ext_resolve(out, op.waiter, Err(error))
        tally.write_failures += 1
        tally.write_error = str(error)

    def _ext_apply(
        self, cur: sqlite3.Cursor, op: WriteOp, stats: StoreStats
    ) -> tuple[object, int | None]:
        """One write inside the open transaction: (its result, seq of a new pending row)."""
        if isinstance(op, AppendOp):
            if op.pending:
                return self._ext_append(cur, op, stats)
            return self._ext_archive_own(cur, op, stats)
        if isinstance(op, ReceiveOp):
            return self._ext_receive(cur, op, stats)
        if isinstance(op, DeliveredOp):
            cur.executemany(_DELIVERED, [(event_id,) for event_id in op.event_ids])
            return Ok(None), None
        if isinstance(op, FailedAttemptsOp):
            dead = count_failed_attempts(cur, op.event_ids, op.max_attempts, self._counts, stats)
            return Ok(dead), None
        return self._ext_ack(cur, op, stats), None

    def _ext_append(
        self, cur: sqlite3.Cursor, op: AppendOp, stats: StoreStats
    ) -> tuple[object, int | None]:
        """Insert a pending event; returns (result, seq if inserted)."""
        nbytes = event_bytes(op.type_name, op.event_id, op.src, op.payload)
        max_bytes = self._settings.max_bytes
        counts = self._counts
        if nbytes > max_bytes or (
            self._settings.overflow_policy == "refuse_new"
            and counts.pending_bytes + nbytes > max_bytes
        ):
            stats.refused += 1
            return Err(
                StoreFullError(
                    f"event {op.event_id!r} ({nbytes} bytes) refused: pending events hold "
                    f"{counts.pending_bytes} of max_bytes={max_bytes}"
                )
            ), None
        cur.execute(
            _INSERT, (op.event_id, op.type_name, op.time_ns, op.src, op.payload, 1, nbytes, None)
        )
        if cur.rowcount == 0:
            stats.duplicate_appends += 1
            return Err(StoreError(f"event id {op.event_id!r} is already pending")), None
        seq = cur.lastrowid
        assert seq is not None
        counts.pending_count += 1
        counts.pending_bytes += nbytes
        return Ok(seq), seq

    def _ext_archive_own(
        self, cur: sqlite3.Cursor, op: AppendOp, stats: StoreStats
    ) -> tuple[object, int | None]:
        """Archive one of the gateway's own events (no upstream link); returns (result, seq
        if inserted). Counted and refused as an append is, against the archive's bound: the
        archive always makes room by dropping its oldest events, so only an event larger
        than the whole archive is refused (it would push out everything, itself included)."""
        nbytes = event_bytes(op.type_name, op.event_id, op.src, op.payload)
        max_bytes = self._settings.archive_max_bytes
        if nbytes > max_bytes:
            stats.refused += 1
            self._archive_refusals += 1
            return Err(
                StoreFullError(
                    f"event {op.event_id!r} ({nbytes} bytes) refused: larger than "
                    f"archive_max_bytes={max_bytes}"
                )
            ), None
        cur.execute(
            _INSERT, (op.event_id, op.type_name, op.time_ns, op.src, op.payload, 0, nbytes, None)
        )
        if cur.rowcount == 0:
            stats.duplicate_appends += 1
            return Err(StoreError(f"event id {op.event_id!r} is already archived")), None
        seq = cur.lastrowid
        assert seq is not None
        counts = self._counts
        counts.archive_count += 1
        counts.archive_bytes += nbytes
        return Ok(seq), seq

    def _ext_receive(
        self, cur: sqlite3.Cursor, op: ReceiveOp, stats: StoreStats
    ) -> tuple[object, int | None]:
        """Archive a received event (de-duplicated on its id). With ``op.forward``, a new
        event is also appended as pending in the same transaction, so a gateway in the
        middle of a tree never archives an event without also queueing it upstream.
        Returns (result, seq of the pending copy if one was inserted)."""
        nbytes = event_bytes(op.type_name, op.event_id, op.src, op.payload)
        cur.execute(
            _INSERT,
            (op.event_id, op.type_name, op.time_ns, op.src, op.payload, 0, nbytes, op.deliver_to),
        )
        if cur.rowcount == 0:
            stats.received_duplicate += 1
            return (Ok(None) if op.forward else Ok(False)), None
        archived_seq = cur.lastrowid
        if op.forward:
            append = AppendOp(op.type_name, op.event_id, op.time_ns, op.src, op.payload, op.waiter)
            value, seq = self._ext_append(cur, append, stats)
            if seq is None:
                # Refused upstream copy: undo the archive row so a re-send is not a duplicate.
                cur.execute(_DELETE_SEQ, (archived_seq,))
                return value, None
            self._counts.archive_count += 1
            self._counts.archive_bytes += nbytes
            stats.received_new += 1
            return value, seq
        self._counts.archive_count += 1
        self._counts.archive_bytes += nbytes
        stats.received_new += 1
        return Ok(True), None

    def _ext_ack(self, cur: sqlite3.Cursor, op: AckOp, stats: StoreStats) -> object:
        if isinstance(op.event_id, tuple):
            return Ok(sum(self._ext_ack_one(cur, event_id, stats) for event_id in op.event_id))
        return Ok(self._ext_ack_one(cur, op.event_id, stats))

    def _ext_ack_one(self, cur: sqlite3.Cursor, event_id: str, stats: StoreStats) -> bool:
        row = cur.execute(_FIND_PENDING, (event_id,)).fetchone()
        if row is None:
            return False
        cur.execute(_DELETE_SEQ, (row[0],))
        self._counts.pending_count -= 1
        self._counts.pending_bytes -= row[1]
        stats.acked += 1
        return True

    def _ext_enforce_bounds(self, stats: StoreStats) -> tuple[int, int, int]:
        """Evict oldest-first inside the open transaction.

        Done once per transaction rather than per event: the result is the same newest
        suffix of events, and acks later in the batch can save events from eviction.
        Returns (highest pending seq dropped or 0, highest archived seq dropped or 0, bytes
        of the pending events dropped).
        """
        counts = self._counts
        cutoff = archive_cutoff = dropped_bytes = 0
        excess = counts.pending_bytes - self._settings.max_bytes
        if excess > 0:
            cutoff, dropped, dropped_bytes = self._ext_evict(1, excess)
            counts.pending_count -= dropped
            counts.pending_bytes -= dropped_bytes
            stats.dropped += dropped
        excess = counts.archive_bytes - self._settings.archive_max_bytes
        if excess > 0:
            archive_cutoff, gone, gone_bytes = self._ext_evict(0, excess)
            counts.archive_count -= gone
            counts.archive_bytes -= gone_bytes
            stats.archive_dropped += gone
        return cutoff, archive_cutoff, dropped_bytes

    def _ext_evict(self, pending: int, excess: int) -> tuple[int, int, int]:
        conn = self._conn
        assert conn is not None
        cutoff = count = freed = 0
        scan = conn.execute(_OLDEST, (pending,))
        try:
            for seq, nbytes in scan:
                cutoff, count, freed = seq, count + 1, freed + nbytes
                if freed >= excess:
                    break
        finally:
            scan.close()
        conn.execute(_DELETE_UPTO, (pending, cutoff))
        return cutoff, count, freed

    def _ext_read(self, op: ReadOp, out: BatchOutcome) -> None:
        conn = self._conn
        assert conn is not None
        try:
            value = op.fn(conn)
        except sqlite3.Error as exc:
            error = StoreError(f"event store read failed: {exc}")
            error.__cause__ = exc
            self._ext_resolve_exception(out, op.waiter, error)
            return
        self._ext_resolve(out, op.waiter, value)

    def _ext_resolve(self, out: BatchOutcome, waiter: Waiter, value: object) -> None:
        if isinstance(waiter, concurrent.futures.Future):
            if not waiter.done():
                waiter.set_result(value)
        else:
            out.results.append((waiter, value))

    def _ext_resolve_exception(
        self, out: BatchOutcome, waiter: Waiter, error: BaseException
    ) -> None:
        if isinstance(waiter, concurrent.futures.Future):
            if not waiter.done():
                waiter.set_exception(error)
        else:
            out.errors.append((waiter, error))

    def _ext_post(self, out: BatchOutcome) -> None:
        # The current objects, not copies: this thread never changes them again (it
        # changes copies, see _ext_commit), so the loop reads them as they are now.
        out.stats, out.counts = self._totals, self._counts
        self._post(out)

    def _ext_fail_batch(self, batch: Sequence[Op]) -> BatchOutcome:
        """After a bug in ``_ext_process``: answer every op with an error, resync counts;
        returns the outcome to post."""
        self._ext_rollback()
        conn = self._conn
        assert conn is not None
        with suppress_sqlite_errors("recounting after an unexpected error"):
            self._counts = count_events(conn)
        out = BatchOutcome(stats=self._totals, counts=self._counts)
        error = StoreError("event store writer: unexpected internal error (see log)")
        for op in batch:
            if isinstance(op, ReadOp):
                self._ext_resolve_exception(out, op.waiter, error)
            elif not isinstance(op, StopOp):
                self._ext_resolve(out, op.waiter, Err(error))
        out.problems.append(("store.internal_error", str(error)))
        return out

    def _ext_rollback(self) -> None:
        conn = self._conn
        # sqlite rolls back by itself after some errors (SQLITE_FULL among them).
        if conn is not None and conn.in_transaction:
            with suppress_sqlite_errors("rollback"):
                conn.execute("ROLLBACK")
