"""Store-and-forward of events for one gateway: generate, upload, receive, query.

Write-ahead: ``generate_event`` resolves only once the event is committed to the store,
and only committed events are published. Received events are stored (and, in the middle of
a tree, queued upstream in the same transaction) *before* they are acked, so an ack always
means "this event is safe here". De-duplication of received events is the store's: it
survives restarts, so no duplicate reaches an actor even after a crash mid-upload.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from result import Err, Ok, Result

from gwproactor.config import ProactorSettings
from gwproactor.errors import StoreError, StoreFullError
from gwproactor.events._uploader import Uploader
from gwproactor.links import Link
from gwproactor.observe.listeners import ListenerHub
from gwproactor.observe.stats import ProactorStats
from gwproactor.store import EventStore, StoredEvent
from gwproactor.wire.message import Event, Message, new_message_id

__all__ = ("EventManager",)

EventResult = Result[str, StoreError]
_EMPTY_SRC = b'{"src":""'


class EventManager:
    """Loop-only except ``generate_event_threadsafe``. ``dispatch(message)`` hands a new
    received event to the gateway's actors (the proactor decides whether anyone wants it)."""

    def __init__(
        self,
        settings: ProactorSettings,
        store: EventStore,
        upstream: Link | None,
        *,
        stats: ProactorStats,
        hub: ListenerHub,
        dispatch: Callable[[Message[Any]], None],
        logger: logging.Logger,
    ) -> None:
        self.gateway = settings.name
        self._src_prefix = b'{"src":' + json.dumps(settings.name).encode()
        self.max_uncommitted = settings.max_uncommitted_events
        self.uncommitted = 0  # generate_event calls whose commit has not come back yet
        self.store = store
        self.forward = settings.forward_events
        self.stats = stats
        self.hub = hub
        self._dispatch = dispatch
        self._log = logger
        self._loop: asyncio.AbstractEventLoop | None = None
        self.uploader: Uploader | None = None
        if upstream is not None:
            self.uploader = Uploader(
                store,
                upstream,
                window=settings.num_initial_event_reuploads,
                read_batch=settings.event_read_batch,
                progress_every=settings.reupload_log_every,
                progress_threshold=settings.reupload_log_threshold,
                on_progress=self._on_progress,
                on_cleared=self._on_cleared,
                logger=logger.getChild("uploader"),
            )

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    # -- generating ------------------------------------------------------------------------

    def generate_event(self, event: Event) -> asyncio.Future[EventResult]:
        """Commit ``event`` to the store, then (if there is an upstream link) send it.
        Resolves to Ok(event_id) once durable, or Err if the store refused or failed (the
        store has counted and reported that). Raises StateError if the store is not
        running. A gateway without an upstream link archives its events (queryable)."""
        loop = asyncio.get_running_loop()
        outer: asyncio.Future[EventResult] = loop.create_future()
        if self.uncommitted >= self.max_uncommitted:
            # Backpressure for actors on the loop: the disk is not keeping up. Refuse
            # rather than queue without bound; the caller sees Err and may slow down.
            self.stats.events_rejected += 1
            outer.set_result(
                Err(StoreFullError(f"{self.uncommitted} events already awaiting commit"))
            )
            return outer
        type_name, event_id, time_ns, src, payload = self._prepare(event)
        self.uncommitted += 1
        outer.add_done_callback(self._one_less)
        if self.uploader is None:
            archived = self.store.record_received(type_name, event_id, time_ns, src, payload)
            archived.add_done_callback(lambda f: _settle(outer, f.result().map(lambda _: event_id)))
            return outer
        inner = self.store.append(type_name, event_id, time_ns, src, payload)

        def committed(future: asyncio.Future[Result[int, StoreError]]) -> None:
            result = future.result()
            if isinstance(result, Ok):
                self._committed(
                    StoredEvent(result.ok_value, event_id, type_name, time_ns, src, payload, True)
                )
                _settle(outer, Ok(event_id))
            else:
                self.stats.events_rejected += 1
                _settle(outer, Err(result.err_value))

        inner.add_done_callback(committed)
        return outer

    def _one_less(self, _: asyncio.Future[EventResult]) -> None:
        self.uncommitted -= 1

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
            return asyncio.run_coroutine_threadsafe(archive(), loop).result(timeout)
        type_name, event_id, time_ns, src, payload = self._prepare(event)
        result = self.store.append_threadsafe(type_name, event_id, time_ns, src, payload)
        if isinstance(result, Err):
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

    def acked(self, link: Link, message_id: str) -> None:
        if self.uploader is not None and link is self.uploader.link:
            self.uploader.acked(message_id)

    def _on_cleared(self, event_id: str) -> None:
        # Emitted once the acked event is gone from the store: the durable effect of the ack.
        if self.hub:
            self.hub.emit("event.acked", self.gateway, {"event_id": event_id})

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
        payload = type(event).__pydantic_serializer__.to_json(event)
        forward = self.forward and self.uploader is not None and link is not self.uploader.link
        args = (header.message_type, header.message_id, event.time_ns, event.src, payload)
        if forward:
            future: asyncio.Future[Any] = self.store.record_and_forward(*args)
        else:
            future = self.store.record_received(*args)
        future.add_done_callback(lambda f: self._stored(link, message, payload, forward, f))

    def _stored(
        self,
        link: Link,
        message: Message[Any],
        payload: bytes,
        forward: bool,
        future: asyncio.Future[Result[Any, StoreError]],
    ) -> None:
        result = future.result()
        header = message.header
        if isinstance(result, Err):
            # Not acked: the peer keeps the event and sends it again later.
            self._log.error("could not store event %s: %s", header.message_id, result.err_value)
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
        self._dispatch(message)

    # -- queries -----------------------------------------------------------------------------

    async def query(
        self,
        pattern: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 100,
        pending: bool | None = None,
    ) -> list[StoredEvent]:
        return await self.store.query(pattern, start_ns, end_ns, limit, pending)


def _settle(future: asyncio.Future[EventResult], result: EventResult) -> None:
    if not future.done():
        future.set_result(result)
