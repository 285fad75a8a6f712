"""Sending pending events upstream in store order, with a window of events in flight.

One mechanism serves live events and the backlog after an outage: the uploader is a cursor
over the store's pending events (ordered by ``seq``). While the upstream link is active it
keeps up to ``window`` events unacknowledged on the wire; each ack deletes one event from
the store and releases the next. Events committed while it is caught up are taken straight
from the commit (no read back); otherwise they are read from the store in batches, the next
batch asked for while one batch's worth is still queued (a read waits behind the store's
held deletes; the window stays full meanwhile). Once a backlog read from the store is all
acked, the store is asked to commit the held deletes at once (a drain's last acks are not
the lone acks its ack delay is for). When the
link stops being active, everything in flight is forgotten and, once active again, the
cursor restarts at the oldest pending event: events whose acks were lost are sent again and
the receiver's store de-duplicates them.

The window gives way to the link's in-flight limit when the transport has one smaller than
``window`` (an MQTT 5 broker's Receive Maximum: mosquitto's is 20; 20 on MQTT 3.1.1 at QoS
2; a configured ``max_inflight``): past it paho only queues a publish, while the event's ack
timer already runs. On a slow path 200 events behind a limit of 20 take 10 round trips to
leave, and their acks time out although nothing is wrong. So the window starts at the limit
and grows by whole limits only as far as the queueing stays within a quarter of the ack
timeout, judged by the quickest ack lately (send to ack, ``_measured``): k limits leave
within k round trips. A fast path (milliseconds) gets the whole window back after its first
acks; a slow one (0.5 s round trips, 2 s ack timeout) keeps the limit. An ack over that
quarter, or an estimate older than one ack timeout (an idle link), starts again from the
limit. The limit is known only once connected and can change with every connection
(another broker after a failover), so it is read at every activation: every new connection
passes through one.

Poison events: an event still unacked when the link stops being active, after a whole
``ack_timeout_seconds`` in flight, failed an attempt (``on_failed(ids)``; the store moves
it to the dead letters after ``max_delivery_attempts``). Events in flight for less than
that (a connection lost under them) are not counted.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from result import Err, Result

from gwproactor.errors import EncodeError, StoreError
from gwproactor.links import Link
from gwproactor.store import EventStore, StoredEvent
from gwproactor.wire.message import Header

__all__ = ("Uploader", "UploaderStats")


@dataclass
class UploaderStats:
    sent: int = 0
    acked: int = 0
    resent_after_reconnect: int = 0
    reads: int = 0
    ack_errors: int = 0
    failed_attempts: int = 0
    held_for_peer: int = 0  # uploads paused because the peer went offline under us

    held_back: int = 0  # pending events this link's codec cannot encode (left stored)


class Uploader:
    """Loop-only. While a backlog of at least ``progress_threshold`` events drains (after
    the link becomes active), ``on_progress(acked_total, pending)`` is called every
    ``progress_every`` acks and once when the backlog is empty, and a summary is logged;
    in steady state (events sent as they come) nothing is logged per event.
    ``on_cleared(id)`` is called once an acked event is deleted from the store."""

    def __init__(
        self,
        store: EventStore,
        link: Link,
        *,
        window: int,
        read_batch: int,
        progress_every: int = 1000,
        progress_threshold: int = 500,
        on_progress: Callable[[int, int], None] | None = None,
        on_cleared: Callable[[str], None] | None = None,
        on_failed: Callable[[list[str]], None] | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.link = link
        self.window = window  # as configured; the window in use is effective_window
        self._window = window
        # While the link's in-flight limit is below ``window`` (else 0): the limit, the
        # quickest ack lately (send to ack) and when it was seen, and how long events may
        # wait behind the limit (a quarter of the ack timeout).
        self._limit = 0
        self._rtt = math.inf
        self._rtt_at = 0.0
        self._budget = 0.0
        self.read_batch = read_batch
        self.progress_every = progress_every
        self.progress_threshold = progress_threshold
        self.stats = UploaderStats()
        self._on_progress = on_progress
        self._on_cleared = on_cleared
        self._on_failed = on_failed
        self._clock = clock  # send and ack times (tests give their own)
        self._log = logger or logging.getLogger("gwproactor.uploader")
        self._inflight: dict[str, tuple[int, float]] = {}  # id -> (seq, sent at), send order
        self._queue: deque[StoredEvent] = deque()
        self._cursor = 0  # highest seq taken into the queue (or sent)
        self._notice_during_read = False
        self._caught_up = False
        self._fetching = False
        self._read_task: asyncio.Task[None] | None = None  # the backlog read in flight
        # A backlog read returned events since the uploader was last idle: its acks are a
        # drain's, not lone acks (see _drained).
        self._read_backlog = False
        self._commit_after_clear = False
        self._commit_task: asyncio.Task[None] | None = None
        self._to_clear: list[str] = []  # acked ids waiting to be deleted from the store
        self._uncleared = 0  # acked, not yet deleted (the store's pending count lags by it)
        self._generation = 0  # bumps on every (de)activation; stale reads are dropped
        self._active = False
        self._held = False  # paused by peer_offline until the peer is back (or a timeout)
        self._hold_timer: asyncio.TimerHandle | None = None
        self._probing = False  # after a hold ran out: one event in flight until an ack

        # While a large backlog drains: (monotonic start, acked total at the start).
        self._drain: tuple[float, int] | None = None
        self._held_back_types: set[str] = set()

    @property
    def unacked(self) -> int:
        """Pending events not acked yet: the store's pending count less the acked events
        whose delete is not committed yet (the store holds a lone ack back up to
        ``store.ack_delay_seconds``, to commit it with the next event)."""
        return max(0, self.store.pending_count - self._uncleared)

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def active(self) -> bool:
        return self._active

    @property
    def effective_window(self) -> int:
        """Events kept in flight at most now: ``window``, or while the link's in-flight
        limit (read when the link last became active) is smaller, as many whole limits as
        leave within a quarter of the ack timeout (at least one); 1 while the probe sent
        after a hold ran out awaits its ack."""
        return 1 if self._probing else self._window

    def link_active(self) -> None:
        """The upstream link became active: start from the oldest pending event."""
        self._activate(probe=False)

    def _activate(self, *, probe: bool) -> None:
        """Start from the oldest pending event; with ``probe``, send it alone until it is
        acked (see :meth:`_hold_expired`)."""
        self._generation += 1
        self._active = True
        self._held = False
        self._probing = probe
        limit = self.link.inflight_limit  # this connection's (0: none)
        self._limit = limit if 0 < limit < self.window else 0
        self._window = self._limit or self.window
        if self._limit:
            self._rtt = math.inf
            self._rtt_at = self._clock()
            self._budget = self.link.settings.ack_timeout_seconds / 4
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self._reset()
        pending = self.store.pending_count
        self._drain = None
        if pending >= self.progress_threshold:
            self._drain = (self._clock(), self.stats.acked)
            self._log.info("re-uploading %d pending events", pending)
        elif pending:
            self._log.debug("re-uploading %d pending events", pending)
        self._pump()

    def peer_offline(self) -> None:
        """The upstream peer's presence went offline (its will: it died, or a clean stop)
        while our link is still up. Stop sending at once: what goes out now reaches nobody,
        and what came after it would overtake it at the peer once it is back. What is in
        flight is forgotten (not a failed attempt) and sent again from the oldest pending
        event once the peer is back (:meth:`peer_online`) or the link becomes active anew.

        The hold ends by itself after ``ack_timeout_seconds`` if the link is still active
        then (:meth:`_hold_expired`): an ``offline`` that was not the whole truth (another
        process under the peer's client id left, say) must not stop the upload for good;
        if the peer is really gone, the link's own ack timeout takes over from there."""
        if self._active:
            self._held = True
            self.stats.held_for_peer += 1
            self.link_inactive(count_failures=False)
            self._hold_timer = asyncio.get_running_loop().call_later(
                self.link.settings.ack_timeout_seconds, self._hold_expired
            )

    def _hold_expired(self) -> None:
        """No ``online`` within an ack timeout, the link still active: the peer may never
        have left, or may still be away (a receiver restarting on a busy machine). Send the
        oldest pending event alone (a probe); its ack opens the window. A peer still
        away misses that one event only, and nothing newer can reach it first: a newer
        event sent now would reach it if it subscribed before its ``online`` reached us,
        ahead of the older ones that went into the void (they follow at ``online``)."""
        self._hold_timer = None
        if self._held and self.link.active:
            self._activate(probe=True)

    def peer_online(self) -> None:
        """The upstream peer is (back) online: if the link is active, start again from the
        oldest pending event, so that whatever went out while it was away comes before
        anything newer. (A peer subscribes before it publishes its presence, on the same
        connection, so a broker has its subscription in place when "online" reaches us.)"""
        if self.link.active and (self._held or self._active):
            self.link_active()

    def link_inactive(self, *, count_failures: bool = True) -> None:
        """The upstream link stopped being active (lost, or stopping): forget what is in
        flight (counting the attempts that failed) and cancel a backlog read in flight, so
        nothing of the uploader outlives the link at stop."""
        self._generation += 1
        self._active = False
        self.stats.resent_after_reconnect += len(self._inflight)
        if count_failures and self._inflight and self._on_failed is not None:
            # 0.9: the link's ack timer and ours start a moment apart.
            cutoff = self._clock() - 0.9 * self.link.settings.ack_timeout_seconds
            failed = [eid for eid, (_, sent) in self._inflight.items() if sent <= cutoff]
            if failed:
                self.stats.failed_attempts += len(failed)
                self._on_failed(failed)
        if self._drain is not None:
            started, acked_before = self._drain
            self._log.info(
                "re-upload paused: %d events sent in %.1f s, %d pending",
                self.stats.acked - acked_before,
                self._clock() - started,
                self.unacked,
            )
            self._drain = None
        self._reset()

    def _reset(self) -> None:
        # A read still in flight belongs to the previous activation: its result would be
        # dropped anyway, and at stop it would outlive the store it reads.
        task, self._read_task = self._read_task, None
        if task is not None and not task.done():
            task.cancel()
        # The barrier's commit goes on regardless; only the waiting for it ends here.
        commit, self._commit_task = self._commit_task, None
        if commit is not None and not commit.done():
            commit.cancel()
        self._read_backlog = False
        self._commit_after_clear = False
        self._inflight.clear()
        self._queue.clear()
        self._cursor = 0
        self._caught_up = False
        self._fetching = False
        self._notice_during_read = False

    def committed(self, stored: StoredEvent) -> None:
        """A new pending event is durable. Sent at once if the uploader is caught up;
        otherwise a read in progress (or the next one) picks it up from the store."""
        if self._fetching:
            self._notice_during_read = True
        if not self._active or not self._caught_up or stored.seq <= self._cursor:
            return
        self._queue.append(stored)
        self._cursor = stored.seq
        self._pump()

    def acked(self, event_id: str) -> bool:
        """The upstream peer acked ``event_id``; True if it was one of ours in flight."""
        entry = self._inflight.pop(event_id, None)
        if entry is None:
            return False
        if self._limit:
            self._measured(entry[1])
        self.stats.acked += 1
        self._probing = False  # a probe's ack: the peer is there after all, the window opens
        # Deleted from the store in one operation per loop iteration (a burst of acks).
        self._to_clear.append(event_id)
        self._uncleared += 1
        if len(self._to_clear) == 1:
            asyncio.get_running_loop().call_soon(self._clear)
        if self._drain is not None:
            self._drain_progress(*self._drain)
        self._pump()
        if not self._inflight and self._read_backlog and not self._queue and self._caught_up:
            self._drained()
        return True

    def _drained(self) -> None:
        """The backlog read from the store is all acked. The store holds acks that come
        alone up to ``store.ack_delay_seconds`` (1 s), to commit them with the next event;
        a drain's last acks are not lone acks: they are committed now, with the delete of
        this last batch (the store's pending count would otherwise show them pending for
        that long, and a 10,000-event drain took twice as long to reach 0 pending)."""
        self._read_backlog = False
        self._commit_after_clear = True

    def _measured(self, sent: float) -> None:
        """Size the window by one ack's send-to-ack time (while the in-flight limit is
        below ``window``). The quickest ack lately is one round trip with nothing queued
        ahead; k limits in flight leave within k of them. An ack slower than the budget
        (the path got slower) or an estimate older than one ack timeout is taken as the
        new estimate, which brings the window back towards the limit."""
        now = self._clock()
        rtt = now - sent
        budget = self._budget
        if rtt < self._rtt or rtt > budget or now - self._rtt_at > 4 * budget:
            self._rtt, self._rtt_at = rtt, now
            rounds = int(budget / rtt) if rtt > 0 else self.window
            self._window = min(self.window, self._limit * max(1, rounds))

    def _drain_progress(self, started: float, acked_before: int) -> None:
        done = self.stats.acked - acked_before
        finished = not self._inflight and not self._queue and self._caught_up
        if self._on_progress is not None and (finished or done % self.progress_every == 0):
            pending = self.unacked
            self._on_progress(self.stats.acked, pending)
        if finished:
            elapsed = max(self._clock() - started, 1e-6)
            self._log.info(
                "re-uploaded %d events in %.1f s (%.0f events/s)", done, elapsed, done / elapsed
            )
            self._drain = None

    def _clear(self) -> None:
        ids, self._to_clear = self._to_clear, []
        commit, self._commit_after_clear = self._commit_after_clear, False
        # Called back as the store applies the delete, with its pending count: unacked
        # (pending less uncleared) is exact at every moment, whenever the next ack comes.
        self.store.ack_many_then(ids, lambda result: self._cleared(ids, result))
        if commit and (self._commit_task is None or self._commit_task.done()):
            # A barrier behind the delete: the store commits what it holds at once.
            self._commit_task = asyncio.get_running_loop().create_task(
                self._commit_held(), name=f"uploader[{self.link.name}].commit"
            )

    async def _commit_held(self) -> None:
        try:
            await self.store.flush()
        except Exception as e:  # noqa: BLE001  (stopping: the acks are re-sent if lost)
            self._log.debug("committing the drained backlog's acks: %s", e)

    def _cleared(self, ids: list[str], result: Result[int, StoreError]) -> None:
        self._uncleared -= len(ids)
        if isinstance(result, Err):
            self.stats.ack_errors += len(ids)
            self._log.error("could not clear acked events from the store: %s", result.err_value)
        elif self._on_cleared is not None:
            for event_id in ids:
                self._on_cleared(event_id)

    def _pump(self) -> None:
        link = self.link
        inflight = self._inflight
        queue = self._queue
        now = self._clock()
        if self._limit and now - self._rtt_at > 4 * self._budget:
            # Nothing acked for an ack timeout (idle): the path may have slowed meanwhile;
            # the next ack is the new estimate.
            self._window = self._limit
            self._rtt = math.inf
        window = 1 if self._probing else self._window
        while self._active and queue and len(inflight) < window:
            event = queue.popleft()
            header = Header.model_construct(
                src=link.gateway,
                dst=link.peer,
                message_type=event.type_name,
                message_id=event.event_id,
                ack_required=True,
                actor="",
            )
            try:
                payload = link.codec.encode_with_payload_json(header, event.payload)
            except EncodeError as e:
                # Cannot be sent on this link (e.g. a type a gwproto peer cannot decode):
                # leave it stored, counted and reported, rather than re-send it forever.
                self._held_back(event, str(e))
                continue
            if link.publish_bytes(header, payload).is_err():
                # Not connected after all; the link's next activation starts over.
                queue.appendleft(event)
                return
            inflight[event.event_id] = (event.seq, now)
            self.stats.sent += 1
        # The next backlog read starts while a whole read's worth is still queued, not once
        # the queue is empty: a read waits behind the store's held deletes (the acks so
        # far, committed first), and meanwhile the acks coming in would find nothing to
        # send. Read ahead, the window stays full through it.
        if (
            self._active
            and len(queue) < self.read_batch
            and not self._caught_up
            and not self._fetching
        ):
            self._fetching = True
            self._read_task = asyncio.get_running_loop().create_task(
                self._read(self._generation), name=f"uploader[{link.name}].read"
            )

    def _held_back(self, event: StoredEvent, reason: str) -> None:
        self.stats.held_back += 1
        if event.type_name not in self._held_back_types:
            self._held_back_types.add(event.type_name)
            self._log.warning("%s events stay stored, not uploaded: %s", event.type_name, reason)

    async def _read(self, generation: int) -> None:
        try:
            batch = await self.store.backlog(self._cursor, self.read_batch)
        except Exception as e:  # noqa: BLE001  (a failed read is retried on the next activation)
            self._log.error("reading the event backlog failed: %s", e)
            if generation == self._generation:
                self._fetching = False
            return
        if generation != self._generation:
            return
        self._fetching = False
        self.stats.reads += 1
        if batch:
            self._read_backlog = True
        for event in batch:
            if event.seq > self._cursor and event.event_id not in self._inflight:
                self._queue.append(event)
                self._cursor = event.seq
        # Caught up only if no commit notice arrived while the read ran: such an event (from
        # a worker thread, say) may have been committed after the read looked; read again.
        self._caught_up = len(batch) < self.read_batch and not self._notice_during_read
        self._notice_during_read = False
        self._pump()
