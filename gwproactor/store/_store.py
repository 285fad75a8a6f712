"""The durable event store: the loop-side object the rest of the runtime talks to."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from result import Err, Result

from gwproactor.errors import InvalidQueryError, StateError, StoreError
from gwproactor.store._mailbox import OutcomeMailbox
from gwproactor.store._model import DeadLetter, StoredEvent, StoreState, StoreStats
from gwproactor.store._ops import (
    AckOp,
    AppendOp,
    BatchOutcome,
    Counts,
    DeliveredOp,
    FailedAttemptsOp,
    LoopCallback,
    ReadOp,
    ReceiveOp,
    WriteOp,
    backlog_reader,
    barrier_reader,
    query_reader,
    undelivered_reader,
)
from gwproactor.store._pattern import compile_pattern
from gwproactor.store._settings import StoreSettings
from gwproactor.store._sqlite import SqliteWriter

__all__ = ("EventStore", "ProblemCallback")

logger = logging.getLogger("gwproactor.store")  # public name: the modules are private

ProblemCallback = Callable[[str, str], None]
"""``on_problem(kind, detail)``; kinds: ``store.corrupt`` (with the rows saved and lost),
``store.wal_missing``, ``store.dropped``, ``store.refused``, ``store.write_error``,
``store.stop_timeout``, ``store.internal_error``, ``store.callback_error`` (an
``append_then``/``archive_then``/``record_received_then`` callback raised)."""


_T = TypeVar("_T")


class EventStore:
    """A durable, bounded store of events in one sqlite file (WAL, group commit).

    Thread rules: the asyncio loop that calls :meth:`start` owns the object; every method
    and property is loop-only except :meth:`append_threadsafe`. One writer thread owns the
    sqlite connection and runs every database operation in FIFO order: whatever is queued
    when it becomes free (up to ``max_batch``) is committed in one transaction, and the
    results of that batch reach the loop in one ``call_soon_threadsafe``.

    Write operations (:meth:`append`, :meth:`ack`, :meth:`record_received`) return a future
    at once and never block the loop. Failures that are expected data (disk full, store at
    its bound) are ``Err`` values inside the future; lifecycle misuse raises
    :class:`~gwproactor.errors.StateError`. Cancelling a returned future does not withdraw
    the operation: it is still applied.

    Problems are passed to ``on_problem(kind, detail)`` on the loop, at most one per kind
    per batch (see :data:`ProblemCallback`), which logs them; without a callback they are
    logged here. An exception from the callback is logged and ignored.
    """

    def __init__(
        self,
        path: Path,
        settings: StoreSettings,
        *,
        on_problem: ProblemCallback | None = None,
    ) -> None:
        """Cheap: no I/O and no thread until :meth:`start`. ``on_problem`` receives the
        store's problems on the loop (see :data:`ProblemCallback`). Raises nothing."""
        self._path = path
        self._settings = settings
        self._on_problem = on_problem
        self._state = StoreState.NOT_STARTED
        self._writer: SqliteWriter | None = None
        self._mailbox: OutcomeMailbox[BatchOutcome] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._counts = Counts()
        self._stats = StoreStats()  # the writer's totals, as of the last batch outcome
        self._salvage = (0, 0)  # (salvaged, salvage_lost) at start
        self._stop_task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- observation

    @property
    def path(self) -> Path:
        """The sqlite file (its -wal and -shm files lie beside it)."""
        return self._path

    @property
    def settings(self) -> StoreSettings:
        """The store's settings (bounds, overflow policy, durability, timeouts)."""
        return self._settings

    @property
    def state(self) -> StoreState:
        """``NOT_STARTED`` → ``STARTING`` → ``RUNNING`` → ``STOPPING`` → ``STOPPED``;
        every write and read needs ``RUNNING``."""
        return self._state

    @property
    def pending_count(self) -> int:
        """Pending events held, as of the last committed batch (no database round trip)."""
        return self._counts.pending_count

    @property
    def pending_bytes(self) -> int:
        """Event bytes of the pending events, as of the last committed batch."""
        return self._counts.pending_bytes

    @property
    def archive_count(self) -> int:
        """Archived (received) events held, as of the last committed batch."""
        return self._counts.archive_count

    @property
    def archive_bytes(self) -> int:
        """Event bytes of the archived events, as of the last committed batch."""
        return self._counts.archive_bytes

    @property
    def dead_letter_count(self) -> int:
        """Events in the dead letters (taken out of the upload), as of the last batch."""
        return self._counts.dead_letter_count

    @property
    def stats(self) -> StoreStats:
        """A copy of the counters since :meth:`start`."""
        salvaged, lost = self._salvage
        return replace(self._stats, salvaged=salvaged, salvage_lost=lost)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open (or create) the database in the writer thread; return once it is usable.

        A corrupt file is moved aside to ``<name>.corrupt-<UTC time>`` (with its -wal and
        -shm), reported as ``store.corrupt``, and replaced by a fresh store. Pending and
        archive counts are loaded.

        Raises:
            StateError: not in state ``NOT_STARTED``, or :meth:`stop` was called meanwhile.
            StoreError: the database cannot be opened (state is then ``STOPPED``).

        Cancellation: the writer thread is told to stop as soon as it has opened the file;
        the store ends ``STOPPED``.
        """
        if self._state is not StoreState.NOT_STARTED:
            raise StateError(f"event store {self._path}: start() in state {self._state.value}")
        loop = asyncio.get_running_loop()
        self._loop, self._loop_thread_id = loop, threading.get_ident()
        self._set_state(StoreState.STARTING)
        mailbox: OutcomeMailbox[BatchOutcome] = OutcomeMailbox(loop, self._deliver)
        mailbox.open()
        self._mailbox = mailbox
        writer = SqliteWriter(self._path, self._settings, mailbox.post_threadsafe)
        # Its eventfd is closed once the thread is gone, however it ends (see _mailbox).
        writer.finished.add_done_callback(lambda _: _close_when_finished(loop, mailbox))
        self._writer = writer
        try:
            writer.start_thread()
        except BaseException:  # no thread (e.g. "can't start new thread"): nothing will post
            mailbox.close()
            self._set_state(StoreState.STOPPED)
            raise
        try:
            # Shielded: cancelling must not cancel the concurrent future the thread sets.
            report = await asyncio.shield(asyncio.wrap_future(writer.opened))
        except StoreError:
            self._set_state(StoreState.STOPPED)
            raise
        except asyncio.CancelledError:
            writer.request_stop_threadsafe()
            self._set_state(StoreState.STOPPED)
            raise
        if self._stop_task is not None:
            raise StateError(f"event store {self._path}: stopped while starting")
        self._counts = report.counts
        self._set_state(StoreState.RUNNING)
        self._salvage = (report.salvaged, report.lost or 0)
        if report.corrupt_detail is not None:
            self._report("store.corrupt", report.corrupt_detail)
        for warning in report.warnings:
            self._report("store.wal_missing", warning)

    async def stop(self) -> None:
        """Commit everything queued, close the database and join the writer thread.

        Idempotent; may be called in any state. Operations submitted before ``stop`` are
        all answered before it returns; new ones raise ``StateError``.

        Raises:
            StoreError: the writer thread did not finish within ``stop_timeout_seconds``
                (reported as ``store.stop_timeout``; the state is ``STOPPED`` anyway and
                the daemon thread is abandoned).

        Cancellation: shielded; the stop runs to the end even if the caller is cancelled.
        """
        if self._stop_task is None:
            if self._state in (StoreState.NOT_STARTED, StoreState.STOPPED):
                self._set_state(StoreState.STOPPED)
                return
            writer = self._writer
            assert writer is not None
            # Refuse new operations at once, not when the task below first runs.
            self._set_state(StoreState.STOPPING)
            writer.request_stop_threadsafe()
            self._stop_task = asyncio.get_running_loop().create_task(
                self._await_writer(writer), name=f"store[{self._path.name}].stop"
            )
        await asyncio.shield(self._stop_task)

    async def _await_writer(self, writer: SqliteWriter) -> None:
        timeout = self._settings.stop_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(asyncio.wrap_future(writer.finished))
        except TimeoutError:
            self._set_state(StoreState.STOPPED)
            detail = f"event store {self._path}: writer thread still busy after {timeout} s"
            self._report("store.stop_timeout", detail)
            raise StoreError(detail) from None
        # ``finished`` is the thread's last action, so this join returns at once; it only
        # makes "the thread is gone" true when stop() returns.
        writer.thread.join(timeout)
        if self._mailbox is not None:
            self._mailbox.close()  # every outcome delivered before stop() returns
        self._set_state(StoreState.STOPPED)

    # ---------------------------------------------------------------- writes

    def append(
        self, type_name: str, event_id: str, time_ns: int, src: str, payload: bytes
    ) -> asyncio.Future[Result[int, StoreError]]:
        """Queue a pending event for the next group commit.

        The future resolves to ``Ok(seq)`` once the event is durable (per ``durability``),
        or ``Err``: ``StoreFullError`` if the byte bound refused or evicted it,
        ``StoreError`` if the commit failed (disk full, I/O) or ``event_id`` is already
        pending. Never blocks. Raises ``StateError`` unless running.
        """
        loop, writer = self._require_running()
        future: asyncio.Future[Result[int, StoreError]] = loop.create_future()
        self._submit(writer, AppendOp(type_name, event_id, time_ns, src, payload, future))
        return future

    def append_then(
        self,
        type_name: str,
        event_id: str,
        time_ns: int,
        src: str,
        payload: bytes,
        then: Callable[[Result[int, StoreError]], object],
    ) -> None:
        """:meth:`append` without a future: the loop calls ``then(result)`` (the result
        the future would hold) as soon as it takes the batch's outcome, one loop iteration
        and one scheduled callback earlier than a future's done-callback. ``then`` must
        not raise. Never blocks. Raises ``StateError`` unless running."""
        op = AppendOp(type_name, event_id, time_ns, src, payload, LoopCallback(then))
        writer = self._writer  # the state check and the submit written out: per event
        if self._state is not StoreState.RUNNING or writer is None:
            self._require_running()  # raises the StateError that says which state
        elif not writer.submit_threadsafe(op):
            raise StateError(f"event store {self._path}: stopping")

    def archive_then(
        self,
        type_name: str,
        event_id: str,
        time_ns: int,
        src: str,
        payload: bytes,
        then: Callable[[Result[int, StoreError]], object],
    ) -> None:
        """:meth:`append_then` for a gateway without an upstream link: the event goes
        straight into the archive (not pending; queryable, kept within
        ``archive_max_bytes`` by dropping the oldest archived events).

        ``then`` gets ``Ok(seq)`` once the event is durable, or ``Err``:
        ``StoreFullError`` if the event is larger than ``archive_max_bytes`` (counted in
        ``stats.refused``, reported as ``store.refused``) or was dropped by a newer event
        of its own batch, ``StoreError`` if the commit failed or ``event_id`` is already
        archived. ``then`` must not raise. Never blocks. Raises ``StateError`` unless
        running."""
        op = AppendOp(type_name, event_id, time_ns, src, payload, LoopCallback(then), False)
        writer = self._writer  # as in append_then
        if self._state is not StoreState.RUNNING or writer is None:
            self._require_running()
        elif not writer.submit_threadsafe(op):
            raise StateError(f"event store {self._path}: stopping")

    def append_threadsafe(
        self, type_name: str, event_id: str, time_ns: int, src: str, payload: bytes
    ) -> Result[int, StoreError]:
        """Like :meth:`append`, for worker threads: blocks the calling thread until the
        event is committed, in the same group commits as the loop's appends.

        Returns ``Err(StoreError)`` as :meth:`append` does, and also when the commit does
        not happen within ``append_timeout_seconds`` (the event may still be stored later).
        Thread: any thread except the loop's, where waiting for the disk would stall the
        whole gateway. Raises ``StateError`` if called on the loop thread, or unless
        running (including when ``stop`` begins while the call is being made).
        """
        if threading.get_ident() == self._loop_thread_id:
            raise StateError("append_threadsafe() called on the loop thread; use append()")
        writer = self._writer
        if writer is None or self._state is not StoreState.RUNNING:
            raise StateError(f"event store {self._path}: not running")
        waiter: concurrent.futures.Future[Result[int, StoreError]] = concurrent.futures.Future()
        self._submit(writer, AppendOp(type_name, event_id, time_ns, src, payload, waiter))
        timeout = self._settings.append_timeout_seconds
        try:
            return waiter.result(timeout)
        except concurrent.futures.TimeoutError:
            return Err(StoreError(f"event {event_id!r} not committed within {timeout} s"))

    def ack(self, event_id: str) -> asyncio.Future[Result[bool, StoreError]]:
        """Delete the pending event ``event_id``, in the next group commit.

        Resolves to ``Ok(True)`` if it was pending, ``Ok(False)`` if not (already acked,
        dropped, or never appended), ``Err`` if the commit failed. Callers may ignore the
        future. Never blocks. Raises ``StateError`` unless running.
        """
        loop, writer = self._require_running()
        future: asyncio.Future[Result[bool, StoreError]] = loop.create_future()
        self._submit(writer, AckOp(event_id, future))
        return future

    def ack_many(self, event_ids: Sequence[str]) -> asyncio.Future[Result[int, StoreError]]:
        """:meth:`ack` for several events in one operation (one future, one queue entry):
        resolves to ``Ok(number that were pending)``. Never blocks. Raises ``StateError``
        unless running."""
        loop, writer = self._require_running()
        future: asyncio.Future[Result[int, StoreError]] = loop.create_future()
        self._submit(writer, AckOp(tuple(event_ids), future))
        return future

    def ack_many_then(
        self, event_ids: Sequence[str], then: Callable[[Result[int, StoreError]], object]
    ) -> None:
        """:meth:`ack_many` calling ``then(result)`` on the loop as it applies the batch
        outcome, as :meth:`append_then` does: ``then`` runs with :attr:`pending_count`
        already lowered, before any other code can read it (no window where the count
        says deleted and the caller's own bookkeeping does not yet). ``then`` must not
        raise. Never blocks. Raises ``StateError`` unless running."""
        _, writer = self._require_running()
        self._submit(writer, AckOp(tuple(event_ids), LoopCallback(then)))

    def record_received(
        self,
        type_name: str,
        event_id: str,
        time_ns: int,
        src: str,
        payload: bytes,
        *,
        deliver_to: str | None = None,
    ) -> asyncio.Future[Result[bool, StoreError]]:
        """Archive an event received from a child, de-duplicating on ``event_id``.

        With ``deliver_to`` (an actor's name, "" for routing by type) a new event is
        archived as owed to that actor until :meth:`mark_delivered`; :meth:`undelivered`
        lists what is still owed (after a crash, say).

        Resolves to ``Ok(True)`` if it is new, ``Ok(False)`` if the archive already holds
        that id (also across restarts, for as long as ``archive_max_bytes`` keeps it),
        ``Err`` if the commit failed. The archive drops its oldest events to stay within
        its bound. Never blocks. Raises ``StateError`` unless running.
        """
        loop, writer = self._require_running()
        future: asyncio.Future[Result[bool, StoreError]] = loop.create_future()
        self._submit(
            writer,
            ReceiveOp(type_name, event_id, time_ns, src, payload, future, deliver_to=deliver_to),
        )
        return future

    def record_received_then(
        self,
        type_name: str,
        event_id: str,
        time_ns: int,
        src: str,
        payload: bytes,
        then: Callable[[Result[bool, StoreError]], object],
    ) -> None:
        """:meth:`record_received` (without ``deliver_to``) calling ``then(result)`` on the
        loop instead of resolving a future, as :meth:`append_then` does."""
        op = ReceiveOp(type_name, event_id, time_ns, src, payload, LoopCallback(then))
        writer = self._writer  # as in append_then
        if self._state is not StoreState.RUNNING or writer is None:
            self._require_running()
        elif not writer.submit_threadsafe(op):
            raise StateError(f"event store {self._path}: stopping")

    def record_and_forward(
        self,
        type_name: str,
        event_id: str,
        time_ns: int,
        src: str,
        payload: bytes,
        *,
        deliver_to: str | None = None,
    ) -> asyncio.Future[Result[int | None, StoreError]]:
        """Archive a received event and, if it is new, append it as pending (to be sent
        upstream), both in one transaction. ``deliver_to``: as for :meth:`record_received`.

        Resolves to ``Ok(seq)`` of the pending copy if new, ``Ok(None)`` for a duplicate,
        ``Err`` if the pending copy was refused (nothing is archived then) or the commit
        failed. Never blocks. Raises ``StateError`` unless running.
        """
        loop, writer = self._require_running()
        future: asyncio.Future[Result[int | None, StoreError]] = loop.create_future()
        self._submit(
            writer,
            ReceiveOp(
                type_name,
                event_id,
                time_ns,
                src,
                payload,
                future,
                forward=True,
                deliver_to=deliver_to,
            ),
        )
        return future

    def mark_delivered(self, event_ids: Sequence[str]) -> asyncio.Future[Result[None, StoreError]]:
        """The actors have returned from these archived events: nothing is owed for them
        any more (in the next group commit). Unknown ids are ignored. Never blocks. Raises
        ``StateError`` unless running."""
        loop, writer = self._require_running()
        future: asyncio.Future[Result[None, StoreError]] = loop.create_future()
        self._submit(writer, DeliveredOp(tuple(event_ids), future))
        return future

    def failed_attempts(
        self, event_ids: Sequence[str]
    ) -> asyncio.Future[Result[list[DeadLetter], StoreError]]:
        """Count one more failed upload attempt for each of these pending events; those
        reaching ``max_delivery_attempts`` move to the dead letters (reported as
        ``store.dead_letter``). Resolves to Ok(the events moved). Never blocks. Raises
        ``StateError`` unless running."""
        loop, writer = self._require_running()
        future: asyncio.Future[Result[list[DeadLetter], StoreError]] = loop.create_future()
        op = FailedAttemptsOp(tuple(event_ids), self._settings.max_delivery_attempts, future)
        self._submit(writer, op)
        return future

    # ---------------------------------------------------------------- reads

    async def backlog(self, after_seq: int, limit: int) -> list[StoredEvent]:
        """Pending events with ``seq > after_seq``, oldest first, at most ``limit``.

        Sees every write submitted before it. Raises ``InvalidQueryError`` (a
        ``ValueError``) if ``limit`` is not in ``1..max_query_limit``, ``StoreError`` if
        the read fails, ``StateError`` unless running. Cancellation abandons the result;
        the read itself still runs.
        """
        self._check_limit(limit)
        return await self._read(backlog_reader(after_seq, limit))

    async def undelivered(self, after_seq: int, limit: int) -> list[tuple[StoredEvent, str]]:
        """Archived events still owed to an actor with ``seq > after_seq``, oldest first, at
        most ``limit``, each with the actor's name ("": route by type). Raises as
        :meth:`backlog`."""
        self._check_limit(limit)
        return await self._read(undelivered_reader(after_seq, limit))

    async def query(
        self,
        pattern: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 100,
        pending: bool | None = None,
        *,
        latest: bool = False,
    ) -> list[StoredEvent]:
        """Events matching every given filter, in seq order.

        ``pattern``: a type pattern (``gw.?.state``, ``gw.*``; see ``match_type``);
        ``start_ns <= time_ns < end_ns``; ``pending``: only pending (True) or archived
        (False) events. Returns the first ``limit`` matches, or the last ``limit`` when
        ``latest`` (still in ascending seq order). Sees every write submitted before it.

        Raises ``InvalidQueryError`` (a ``ValueError``) for an invalid pattern or a
        ``limit`` outside ``1..max_query_limit``, ``StoreError`` if the read fails,
        ``StateError`` unless running. Cancellation abandons the result; the read itself still runs.
        """
        self._check_limit(limit)
        conditions: list[str] = []
        params: list[object] = []
        if pattern is not None:
            condition, values = compile_pattern(pattern).sql()
            conditions.append(condition)
            params.extend(values)
        if start_ns is not None:
            conditions.append("time_ns >= ?")
            params.append(start_ns)
        if end_ns is not None:
            conditions.append("time_ns < ?")
            params.append(end_ns)
        return await self._read(
            query_reader(conditions, params, limit, latest=latest, pending=pending)
        )

    async def flush(self) -> None:
        """Return once everything submitted before this call is committed (or failed).

        Raises ``StateError`` unless running. Cancellation only stops the waiting: the
        commits go on.
        """
        await self._read(barrier_reader)

    # ---------------------------------------------------------------- internals

    def _require_running(self) -> tuple[asyncio.AbstractEventLoop, SqliteWriter]:
        if self._state is not StoreState.RUNNING:
            raise StateError(f"event store {self._path}: not running ({self._state.value})")
        assert self._loop is not None
        assert self._writer is not None
        return self._loop, self._writer

    def _submit(self, writer: SqliteWriter, op: WriteOp | ReadOp) -> None:
        if not writer.submit_threadsafe(op):
            raise StateError(f"event store {self._path}: stopping")

    async def _read(self, fn: Callable[..., _T]) -> _T:
        loop, writer = self._require_running()
        future: asyncio.Future[_T] = loop.create_future()
        self._submit(writer, ReadOp(fn, future))
        return await future

    def _check_limit(self, limit: int) -> None:
        if not 1 <= limit <= self._settings.max_query_limit:
            raise InvalidQueryError(
                f"limit must be in 1..{self._settings.max_query_limit}, got {limit}"
            )

    def _deliver(self, out: BatchOutcome) -> None:
        """Apply one batch's outcome. Loop thread (see :mod:`gwproactor.store._mailbox`)."""
        # Counters first, so that code woken by the futures sees them up to date.
        self._counts = out.counts
        self._stats = out.stats
        for kind, detail in out.problems:
            self._report(kind, detail)
        for waiter, value in out.results:
            if isinstance(waiter, LoopCallback):
                # _call's try, written here: this runs once per awaited event.
                try:
                    waiter.fn(value)
                except Exception as e:  # noqa: BLE001  (reported as _call reports it)
                    self._callback_failed(e)
            elif not waiter.done():
                waiter.set_result(value)
        for waiter, error in out.errors:
            if isinstance(waiter, LoopCallback):  # writes answer Err values, not exceptions
                self._call(waiter, Err(StoreError(str(error))))
            elif not waiter.done():
                waiter.set_exception(error)

    def _call(self, waiter: LoopCallback, value: object) -> None:
        try:
            waiter.fn(value)
        except Exception as e:  # noqa: BLE001  (reported)
            self._callback_failed(e)

    def _callback_failed(self, e: Exception) -> None:
        # A bug past the commit (the event is durable): reported, rate-limited by the
        # gateway, as one line; the traceback at DEBUG, not a loop-style dump per event.
        logger.debug(
            "event store: a commit callback failed", exc_info=(type(e), e, e.__traceback__)
        )
        self._report("store.callback_error", f"a commit callback failed: {type(e).__name__}: {e}")

    def _report(self, kind: str, detail: str) -> None:
        if self._on_problem is None:
            logger.warning("event store problem %s: %s", kind, detail)
            return
        # The callback logs it (a gateway's problem reporter rate-limits repeats: a full
        # disk fails every batch, and one line per batch would flood the log).
        try:
            self._on_problem(kind, detail)
        except Exception:
            logger.exception("event store: on_problem callback failed for %s", kind)

    def _set_state(self, state: StoreState) -> None:
        if state is self._state:
            return
        logger.debug("event store %s: %s -> %s", self._path, self._state.value, state.value)
        self._state = state


def _close_when_finished(loop: asyncio.AbstractEventLoop, mailbox: OutcomeMailbox[_T]) -> None:
    """The writer thread's last act (a done-callback of ``finished``): have the loop close
    the mailbox, delivering what is left. On a closed loop nothing is left to deliver to
    and the eventfd stays open (a few bytes; never reused under a late write)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(mailbox.close)
