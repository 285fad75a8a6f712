"""Store-and-forward of events for one gateway: generate, upload, receive, query.

Write-ahead: ``generate_event`` resolves only once the event is committed to the store,
and only committed events are published. Received events are stored (and, in the middle of
a tree, queued upstream in the same transaction) *before* they are acked, so an ack always
means "this event is safe here". De-duplication of received events is the store's: it
survives restarts, so a re-sent event is never handed to an actor twice.

Hand-off to actors is crash-safe: see :mod:`gwproactor.events._handoff`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from result import Err, Ok, Result

from gwproactor.config import ProactorSettings
from gwproactor.errors import StoreError, StoreFullError, UnsendableEventError
from gwproactor.events._future import EventFuture, outcome
from gwproactor.events._handoff import ActorHandoff, Deliver
from gwproactor.events._uploader import Uploader
from gwproactor.links import Link
from gwproactor.observe.listeners import ListenerHub
from gwproactor.observe.stats import ProactorStats
from gwproactor.store import DeadLetter, EventStore, StoredEvent, StoreState
from gwproactor.wire.codec import MessageRegistry
from gwproactor.wire.message import Event, Header, Message, new_message_id

__all__ = ("EventManager",)

EventResult = Result[str, StoreError]
_EMPTY_SRC = b'{"src":""'


class EventManager:
    """Loop-only except ``generate_event_threadsafe``. ``target(header)`` says which actor
    wants a received event (its name, "" to route by type, None: nobody); ``deliver`` hands
    it over (see :data:`Deliver`)."""

    def __init__(
        self,
        settings: ProactorSettings,
        store: EventStore,
        upstream: Link | None,
        *,
        stats: ProactorStats,
        hub: ListenerHub,
        target: Callable[[Header], str | None],
        deliver: Deliver,
        registry: MessageRegistry,
        report_problem: Callable[..., None],
        logger: logging.Logger,
        hold_reading: Callable[[Link], None] | None = None,
        release_reading: Callable[[], None] | None = None,
    ) -> None:
        self.gateway = settings.name
        self._src_prefix = b'{"src":' + json.dumps(settings.name).encode()
        self.max_uncommitted = settings.max_uncommitted_events
        self.uncommitted = 0  # generate_event calls whose commit has not come back yet
        # Received events whose commit has not come back yet: bounded by pausing the link
        # that brought one in at the bound, resumed below the low-water mark.
        self.received_waiting = 0
        self.received_high_water = 0
        self.max_received_waiting = settings.max_received_uncommitted
        self._received_resume_at = int(
            settings.max_received_uncommitted * settings.receive_queue_resume_fraction
        )
        self.received_held = False
        self._hold_reading = hold_reading
        self._release_reading = release_reading
        self.store = store
        self.forward = settings.forward_events
        self.stats = stats
        self.hub = hub
        self._target = target
        self._report_problem = report_problem
        self._log = logger
        self.handoff = ActorHandoff(
            store, settings.name, registry, deliver, stats=stats, logger=logger
        )
        self.unsendable = 0  # events refused or kept back: the upstream peer cannot decode them
        self._loop: asyncio.AbstractEventLoop | None = None
        self.uploader: Uploader | None = None
        if upstream is not None:
            self.uploader = Uploader(
                store,
                upstream,
                window=settings.event_upload_window,
                read_batch=settings.event_read_batch,
                progress_every=settings.reupload_log_every,
                progress_threshold=settings.reupload_log_threshold,
                on_progress=self._on_progress,
                on_cleared=self._on_cleared,
                on_failed=self._on_failed,
                logger=logger.getChild("uploader"),
            )

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    # -- hand-off to actors (see ActorHandoff) ----------------------------------------------

    async def load_undelivered(self) -> int:
        return await self.handoff.load_undelivered()

    def redeliver(self) -> None:
        self.handoff.redeliver()

    def is_redelivery(self, message: Message[Any]) -> bool:
        return self.handoff.is_redelivery(message)

    def flush_delivered(self) -> None:
        self.handoff.flush_delivered()

    @property
    def stranded(self) -> int:
        """Pending events with no upstream link to take them (the config lost its upstream
        role since they were stored): they stay in the store, going nowhere."""
        return self.store.pending_count if self.uploader is None else 0

    def warn_if_stranded(self) -> None:
        """At start: say so if pending events have no upstream link (see :attr:`stranded`)."""
        stranded = self.stranded
        if stranded:
            self._report_problem(
                f"events: {stranded} pending events have no upstream link",
                f"the store holds {stranded} events waiting for an upstream ack, but this "
                "gateway has no upstream link now; they stay in the store. Add the upstream "
                "link back, or see them with: gwproactor store CONFIG export --which pending",
                error=False,
                key="events.stranded",
            )

    # -- generating ------------------------------------------------------------------------

    def generate_event(self, event: Event) -> EventFuture:
        """Commit ``event`` to the store, then (if there is an upstream link) send it.
        Resolves to Ok(event_id) once durable, or Err if the store refused or failed (the
        store has counted and reported that). Raises StateError if the store is not
        running. A gateway without an upstream link archives its events (queryable),
        counted, refused and announced (``event.stored``) as pending ones are."""
        # The loop of start(): asyncio.get_running_loop() is a getpid() system call each.
        outer = EventFuture(loop=self._loop or asyncio.get_running_loop())
        if self.uncommitted >= self.max_uncommitted:
            # Backpressure for actors on the loop: the disk is not keeping up. Refuse
            # rather than queue without bound; the caller sees Err and may slow down.
            self.stats.events_rejected += 1
            outer.set_result(
                Err(StoreFullError(f"{self.uncommitted} events already awaiting commit"))
            )
            return outer
        uploader = self.uploader
        if uploader is not None and not uploader.link.codec.can_carry_event(event.type_name):
            self.stats.events_rejected += 1
            outer.set_result(Err(UnsendableEventError(self._unsendable_text(event.type_name))))
            return outer
        type_name, event_id, time_ns, src, payload = self._prepare(event)
        # The store calls back on the loop as it takes the batch's outcome: ``outer`` is
        # resolved in that same loop iteration (no inner future whose done-callback would
        # wait for the next one), and the awaiting task runs in the iteration after.
        if uploader is None:
            # Archived, and counted, refused and announced as a pending event is: a root
            # gateway (the top of a tree) generates events too.

            def archived(result: Result[int, StoreError]) -> None:
                self.uncommitted -= 1
                if isinstance(result, Ok):
                    self.stats.events_generated += 1
                    if self.hub:
                        self.hub.emit(
                            "event.stored",
                            type_name,
                            {"event_id": event_id, "seq": result.ok_value, "src": src},
                        )
                    _settle(outer, Ok(event_id))
                else:
                    self.stats.events_rejected += 1
                    _settle(outer, result)

            self.store.archive_then(type_name, event_id, time_ns, src, payload, archived)
        else:

            def committed(result: Result[int, StoreError]) -> None:
                self.uncommitted -= 1
                if isinstance(result, Ok):
                    self._committed(
                        StoredEvent(
                            result.ok_value, event_id, type_name, time_ns, src, payload, True
                        )
                    )
                    _settle(outer, Ok(event_id))
                else:
                    self.stats.events_rejected += 1
                    _settle(outer, result)

            self.store.append_then(type_name, event_id, time_ns, src, payload, committed)
        self.uncommitted += 1  # after the submit, which raises StateError if not running
        return outer

    def _sendable(self, type_name: str) -> bool:
        return self.uploader is None or self.uploader.link.codec.can_carry_event(type_name)

    def _unsendable_text(self, type_name: str) -> str:
        assert self.uploader is not None
        return (
            f"the upstream link {self.uploader.link.name} cannot carry events of type "
            f"{type_name!r} (its peer could neither decode nor acknowledge them)"
        )

    def _unsendable(self, type_name: str) -> None:
        """Count and report an event kept back from upload (loop-only)."""
        self.unsendable += 1
        self._report_problem(
            "event not forwarded upstream",
            self._unsendable_text(type_name),
            error=False,
            key=f"events.unsendable.{type_name}",
        )

    def generate_event_threadsafe(self, event: Event) -> EventResult:
        """From a worker thread: blocks until committed (never call it on the loop)."""
        loop = self._loop
        if loop is None:
            return Err(StoreError("the gateway is not running"))
        if self.uploader is None:
            # No upstream: the event is archived by the loop-side path; wait for it here.
            async def archive() -> EventResult:
                return await self.generate_event(event)

            timeout = self.store.settings.append_timeout_seconds
            try:
                return asyncio.run_coroutine_threadsafe(archive(), loop).result(timeout)
            except TimeoutError:  # as the store's append_threadsafe answers it
                return Err(StoreError(f"event not committed within {timeout} s"))
        if not self._sendable(event.type_name):  # reads settings only: safe off the loop
            loop.call_soon_threadsafe(self._rejected)
            return Err(UnsendableEventError(self._unsendable_text(event.type_name)))
        type_name, event_id, time_ns, src, payload = self._prepare(event)
        result = self.store.append_threadsafe(type_name, event_id, time_ns, src, payload)
        if isinstance(result, Err):
            loop.call_soon_threadsafe(self._rejected)
            return Err(result.err_value)
        stored = StoredEvent(result.ok_value, event_id, type_name, time_ns, src, payload, True)
        loop.call_soon_threadsafe(self._committed, stored)
        return Ok(event_id)

    def _prepare(self, event: Event) -> tuple[str, str, int, str, bytes]:
        payload = type(event).__pydantic_serializer__.to_json(event)
        src = event.src
        if not src:
            # ``src`` is Event's first field, so the JSON starts with it: fill it in there
            # rather than copying the model (a copy per event cost more than the commit).
            src = self.gateway
            if payload.startswith(_EMPTY_SRC):
                payload = self._src_prefix + payload[len(_EMPTY_SRC) :]
            else:
                payload = type(event).__pydantic_serializer__.to_json(
                    event.model_copy(update={"src": src})
                )
        return event.type_name, new_message_id(), event.time_ns, src, payload

    def _rejected(self) -> None:
        # Loop-only, as every stats counter: a worker thread's refusal comes here.
        self.stats.events_rejected += 1

    def _committed(self, stored: StoredEvent) -> None:
        self.stats.events_generated += 1
        if self.hub:
            self.hub.emit(
                "event.stored",
                stored.type_name,
                {"event_id": stored.event_id, "seq": stored.seq, "src": stored.src},
            )
        if self.uploader is not None:
            self.uploader.committed(stored)

    # -- the upstream link -------------------------------------------------------------------

    def upstream_active(self, active: bool) -> None:
        if self.uploader is None:
            return
        if active:
            self.uploader.link_active()
        else:
            self.uploader.link_inactive()

    def peer_presence(self, link: Link, presence: str) -> None:
        """The retained presence of ``link``'s peer changed (``online``/``offline``)."""
        uploader = self.uploader
        if uploader is None or link is not uploader.link:
            return
        if presence == "offline":
            uploader.peer_offline()
        elif presence == "online":
            uploader.peer_online()

    def acked(self, link: Link, message_id: str) -> None:

        if self.uploader is not None and link is self.uploader.link:
            self.uploader.acked(message_id)

    def _on_cleared(self, event_id: str) -> None:
        # Emitted once the acked event is gone from the store: the durable effect of the ack.
        if self.hub:
            self.hub.emit("event.acked", self.gateway, {"event_id": event_id})

    def _on_failed(self, event_ids: list[str]) -> None:
        if self.store.state is not StoreState.RUNNING:
            return
        self.store.failed_attempts(event_ids).add_done_callback(self._dead_lettered)

    def _dead_lettered(self, future: asyncio.Future[Result[list[DeadLetter], StoreError]]) -> None:
        result = outcome(future)
        if result is None:
            return
        if isinstance(result, Err):
            self._log.error("could not count failed upload attempts: %s", result.err_value)
            return
        dead = result.ok_value
        if not dead:
            return
        self.stats.events_dead_lettered += len(dead)
        first = dead[0]
        self._report_problem(
            f"events: {len(dead)} moved to the dead letters",
            f"upstream never acked {first.type_name} {first.event_id} in {first.attempts} "
            f"attempts{f' (and {len(dead) - 1} more)' if len(dead) > 1 else ''}; the rest of "
            "the backlog goes on. See: gwproactor store CONFIG dead-letters",
            key="events.dead_letter",
        )
        if self.hub:
            for letter in dead:
                self.hub.emit(
                    "event.dead_letter",
                    self.gateway,
                    {"event_id": letter.event_id, "attempts": letter.attempts},
                )

    def _on_progress(self, acked: int, pending: int) -> None:
        # Only while a large backlog drains (see Uploader): never one line per event.
        self._log.info("re-upload: %d acked upstream, %d pending", acked, pending)
        if self.hub:
            self.hub.emit("reupload.progress", self.gateway, {"acked": acked, "pending": pending})

    # -- receiving ---------------------------------------------------------------------------

    def received(self, link: Link, message: Message[Any]) -> None:
        """An event from a peer: store it (and queue it upstream if we forward), then ack
        it; hand it to actors only if it is new."""
        header = message.header
        event = message.payload
        # A codec that keeps the original payload (gwproto) has it stored and forwarded as it
        # came, unknown fields and all.
        payload = message.payload_json or type(event).__pydantic_serializer__.to_json(event)
        forward = self.forward and self.uploader is not None and link is not self.uploader.link
        if forward and not self._sendable(header.message_type):
            forward = False  # archived here, acked, not uploaded forever to a peer that refuses
            self._unsendable(header.message_type)
        args = (header.message_type, header.message_id, event.time_ns, event.src, payload)
        deliver_to = self._target(header)
        if forward:
            future: asyncio.Future[Any] = self.store.record_and_forward(
                *args, deliver_to=deliver_to
            )
        else:
            future = self.store.record_received(*args, deliver_to=deliver_to)
        future.add_done_callback(
            lambda f: self._stored(link, message, payload, forward, deliver_to, f)
        )
        self.received_waiting = waiting = self.received_waiting + 1  # after the submit
        self.received_high_water = max(self.received_high_water, waiting)
        if waiting >= self.max_received_waiting and self._hold_reading is not None:
            # Backpressure as for the receive queue: this link reads no more until the store
            # caught up (the other links go on; one of them flooding too is held in turn).
            if not self.received_held:
                self.received_held = True
                self.stats.received_pauses += 1
                self._log.debug(
                    "%d received events await their commit: %s paused",
                    waiting,
                    link.name,
                )
            self._hold_reading(link)

    def _stored(
        self,
        link: Link,
        message: Message[Any],
        payload: bytes,
        forward: bool,
        deliver_to: str | None,
        future: asyncio.Future[Result[Any, StoreError]],
    ) -> None:
        self.received_waiting -= 1
        if self.received_held and self.received_waiting <= self._received_resume_at:
            self.received_held = False
            if self._release_reading is not None:
                self._release_reading()
        result = outcome(future)
        header = message.header
        if result is None:  # cancelled: the store is stopping; the peer sends it again
            return
        if isinstance(result, Err):
            # Not acked: the peer keeps the event and sends it again later. Rate-limited:
            # a store that refuses every event would otherwise log each one on each re-send.
            self._report_problem(
                "events: could not store a received event",
                f"{header.message_type} {header.message_id} from {link.name}: "
                f"{result.err_value} (not acked; the peer sends it again later)",
                key="events.store_received",
                kind="store",
            )
            return
        value = result.ok_value
        is_new = value is True or (forward and value is not None)
        link.send_ack(header)
        if not is_new:
            self.stats.events_duplicate += 1
            if self.hub:
                self.hub.emit("event.duplicate", link.name, {"event_id": header.message_id})
            return
        self.stats.events_received += 1
        if forward and self.uploader is not None:
            event = message.payload
            self.uploader.committed(
                StoredEvent(
                    value,
                    header.message_id,
                    header.message_type,
                    event.time_ns,
                    event.src,
                    payload,
                    True,
                )
            )
        if self.hub:
            self.hub.emit(
                "event.received",
                link.name,
                {"event_id": header.message_id, "type_name": header.message_type},
            )
        if deliver_to is not None:
            self.handoff.deliver(message)

    # -- queries -----------------------------------------------------------------------------

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
        return await self.store.query(pattern, start_ns, end_ns, limit, pending, latest=latest)


def _settle(future: asyncio.Future[EventResult], result: EventResult) -> None:
    if not future.done():
        future.set_result(result)
