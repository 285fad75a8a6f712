"""Crash-safe hand-off of received events to actors.

An event an actor wants is archived as *owed* to it, in the same transaction that archives
it, and marked delivered only once the actor has returned from it (for a thread actor: once
its queue took it). At start, events still owed (the gateway died with them queued or being
handled) are handed to their actors again, oldest first, before anything new arrives. An
event whose actor had already returned when the process died (the mark is committed a few
milliseconds later) is handed over again: :meth:`ActorHandoff.is_redelivery` is True for
every event handed over again at start, so an actor whose effect must happen once checks
the id it recorded. Loop-only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from result import Err, Result

from gwproactor.errors import StoreError
from gwproactor.events._future import outcome
from gwproactor.observe.stats import ProactorStats
from gwproactor.store import EventStore, StoredEvent, StoreState
from gwproactor.wire.codec import MessageRegistry
from gwproactor.wire.message import Message

__all__ = ("ActorHandoff", "Deliver")

# A slow actor's delivered marks go to the store at least this often during a long burst.
_MARK_DELAY_SECONDS = 0.002

Deliver = Callable[[Message[Any], Callable[[], None]], None]
"""``deliver(message, on_done)``: queue an event for its actor; ``on_done()`` once the actor
has returned from it."""


class ActorHandoff:
    """What the store owes actors: hand over, mark delivered, hand over again at start."""

    def __init__(
        self,
        store: EventStore,
        gateway: str,
        registry: MessageRegistry,
        deliver: Deliver,
        *,
        stats: ProactorStats,
        logger: logging.Logger,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.stats = stats
        self._registry = registry
        self._deliver = deliver
        self._log = logger
        self._to_mark: list[str] = []  # handed-over ids whose mark is not yet submitted
        self._mark_since = 0.0  # when the oldest of them was handed over (monotonic)
        self._owed: list[Message[Any]] = []  # loaded at start, handed over by redeliver()
        self._redelivered: set[str] = set()  # ids re-handed after a restart, until returned

    def deliver(self, message: Message[Any]) -> None:
        """Hand a new, stored event (archived as owed) to its actor."""
        self._deliver(message, partial(self._handed, message.header.message_id))

    async def load_undelivered(self) -> int:
        """Read the archived events still owed to actors (store running, links not yet
        started); :meth:`redeliver` hands them over. Returns how many."""
        owed: list[Message[Any]] = []
        after = 0
        limit = self.store.settings.max_query_limit
        undecodable: list[str] = []
        while True:
            batch = await self.store.undelivered(after, limit)
            for stored, actor in batch:
                after = stored.seq
                message = self._rebuild(stored, actor)
                if message is None:
                    undecodable.append(stored.event_id)
                else:
                    owed.append(message)
            if len(batch) < limit:
                break
        if undecodable:
            self._log.warning(
                "%d events owed to actors can no longer be decoded; not handed over",
                len(undecodable),
            )
            self.store.mark_delivered(undecodable)
        if owed:
            self._log.warning(
                "%d received events were not yet handled by their actors when the gateway "
                "last stopped; handing them over again",
                len(owed),
            )
        self._owed = owed
        self.stats.events_redelivered += len(owed)
        return len(owed)

    def _rebuild(self, stored: StoredEvent, actor: str) -> Message[Any] | None:
        payload_type = self._registry.get(stored.type_name)
        if payload_type is None:
            return None
        try:
            payload = payload_type.model_validate_json(stored.payload)
        except ValueError:
            return None
        return Message.create(
            stored.src,
            self.gateway,
            payload,
            actor=actor,
            message_id=stored.event_id,
        )

    def redeliver(self) -> None:
        """Queue the events :meth:`load_undelivered` found, in store order (call right after
        the dispatcher starts, before any link can deliver something newer)."""
        owed, self._owed = self._owed, []
        for message in owed:
            event_id = message.header.message_id
            self._redelivered.add(event_id)
            self._deliver(message, partial(self._handed, event_id))

    def is_redelivery(self, message: Message[Any]) -> bool:
        """True while ``message`` is an event handed over again after a restart: the actor
        may have handled it just before the gateway died (see the module docstring)."""
        return bool(self._redelivered) and message.header.message_id in self._redelivered

    def _handed(self, event_id: str) -> None:
        """The actor returned from ``event_id``: mark it delivered, in one store operation
        per loop iteration for a burst, or sooner when the actor is slow (each mark not yet
        committed is an event that a crash would hand over again)."""
        self._redelivered.discard(event_id)
        to_mark = self._to_mark
        to_mark.append(event_id)
        now = time.monotonic()
        if len(to_mark) == 1:
            self._mark_since = now
            asyncio.get_running_loop().call_soon(self.flush_delivered)
        elif now - self._mark_since >= _MARK_DELAY_SECONDS:
            self.flush_delivered()

    def flush_delivered(self) -> None:
        """Submit the pending delivered marks now (also called before the store stops)."""
        ids, self._to_mark = self._to_mark, []
        self._mark_since = time.monotonic()
        if not ids or self.store.state is not StoreState.RUNNING:
            return
        self.store.mark_delivered(ids).add_done_callback(self._marked)

    def _marked(self, future: asyncio.Future[Result[None, StoreError]]) -> None:
        result = outcome(future)
        if isinstance(result, Err):
            # The events stay owed and are handed over again at the next start.
            self._log.error("could not mark events delivered: %s", result.err_value)
