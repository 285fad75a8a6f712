"""The reference API's spellings of Proactor members, as thin adapters over the native ones.

Code written against gwproactor's API reference calls these; new code uses the native
members named in each docstring. Each adapter does no work of its own. Loop-only unless
marked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from gwproactor.config import ProactorSettings
from gwproactor.errors import StateError
from gwproactor.observe.stats import ProactorStats
from gwproactor.store import EventStore
from gwproactor.watchdog import ExternalWatchdogCommandBuilder
from gwproactor.watchdog.monitored import MonitoredName
from gwproactor.wire.codec import MessageRegistry
from gwproactor.wire.message import Message
from gwproactor.wire.names import validate_name

if TYPE_CHECKING:
    from gwproactor.links import Link
    from gwproactor.routing._dispatcher import Dispatcher
    from gwproactor.watchdog import InternalWatchdog

__all__ = (
    "ProactorReferenceForms",
    "ReceiveQueueView",
    "constructor_arguments",
    "start_as_task",
)


def constructor_arguments(
    first: ProactorSettings | str,
    second: MessageRegistry | ProactorSettings | None,
    hardware_layout: object,
) -> tuple[ProactorSettings, MessageRegistry | None]:
    """Serves ``Proactor(name, settings)`` next to the native ``Proactor(settings,
    registry)``: the gateway is named ``name`` (validated like every name). Raises
    TypeError for any other mix, and for a ``hardware_layout`` (GridWorks-only: there is
    none here; an actor's own configuration is ``ActorSettings.options``)."""
    if hardware_layout is not None:
        raise TypeError(
            "Proactor(..., hardware_layout): gwproactor has no hardware layout; "
            "give actors their options in ActorSettings.options"
        )
    if isinstance(first, str):
        if not isinstance(second, ProactorSettings):
            raise TypeError("Proactor(name, settings): settings must be a ProactorSettings")
        name = validate_name(first, "Proactor name")
        return second.model_copy(update={"name": name}), None
    if not isinstance(first, ProactorSettings):
        raise TypeError(f"Proactor(settings): not a ProactorSettings: {type(first).__name__}")
    if isinstance(second, ProactorSettings):
        raise TypeError("Proactor(settings, settings): the second argument is a registry")
    return first, second


def start_as_task(coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """Serves the reference's synchronous ``proactor.start()``: start-up begins at once as
    a task on the running loop, which ``await proactor.start()`` (the native form) awaits.
    Without a running loop it raises StateError saying what to do instead (the coroutine
    is closed, so nothing is left half-made)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        coroutine.close()
        raise StateError(
            "Proactor.start() needs a running event loop: call it from a coroutine "
            "(await proactor.start()), or run asyncio.run(proactor.run_forever())"
        ) from None
    return loop.create_task(coroutine, name=name)


class ReceiveQueueView:
    """Serves the reference's ``services.async_receive_queue.put_nowait(message)``: the
    message goes through ``send`` (the dispatcher's bounded queue; QueueFullError at its
    hard bound). ``qsize()``/``empty()`` report the queue's depth. There is no ``get``: the
    dispatcher is the queue's only reader."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    def put_nowait(self, item: Message[Any]) -> None:
        self._dispatcher.send(item)

    async def put(self, item: Message[Any]) -> None:
        self._dispatcher.send(item)

    def qsize(self) -> int:
        return self._dispatcher.depth

    def empty(self) -> bool:
        return self._dispatcher.depth == 0


class ProactorReferenceForms:
    """Members of the reference's ``Proactor`` that have native equivalents."""

    if TYPE_CHECKING:

        @property
        def name(self) -> str: ...

        @property
        def settings(self) -> ProactorSettings: ...

        @property
        def event_loop(self) -> asyncio.AbstractEventLoop | None: ...

        links: dict[str, Link]
        dispatcher: Dispatcher
        watchdog: InternalWatchdog

    @property
    def async_receive_queue(self) -> ReceiveQueueView | None:
        """The reference's receive queue, None before start (see :class:`ReceiveQueueView`;
        native: ``send``)."""
        if self.event_loop is None:
            return None
        return ReceiveQueueView(self.dispatcher)

    @classmethod
    def make_event_persister(cls, settings: ProactorSettings) -> EventStore:
        """The durable store ``settings`` describe (not started), where a proactor with
        these settings keeps its events. It is an :class:`EventStore` (async, sqlite), not
        the reference's PersisterInterface."""
        return EventStore(settings.paths.resolve(settings.name).store_file, settings.store)

    @property
    def publication_name(self) -> str:
        """The reference's name for :attr:`name` (what this gateway publishes as)."""
        return self.name

    @property
    def services(self) -> ProactorReferenceForms:
        """The reference's ``proactor.services``: the proactor is its own services."""
        return self

    @property
    def upstream_client(self) -> str:
        """The upstream link's name (``settings.upstream_link``), or ``""``."""
        return self.settings.upstream_link or ""

    @property
    def primary_peer_client(self) -> str:
        """The name of the link marked ``primary = true``, or ``""``."""
        return next((n for n, link in self.links.items() if link.settings.primary), "")

    @property
    def monitored_names(self) -> tuple[MonitoredName, ...]:
        """Every name the internal watchdog watches (``proactor.watchdog.snapshot()`` has
        their state too)."""
        return tuple(
            MonitoredName(entry.name, entry.timeout_seconds)
            for entry in self.watchdog.snapshot().values()
        )

    @classmethod
    def make_stats(cls) -> ProactorStats:
        """A fresh :class:`ProactorStats` (the proactor's own is :attr:`stats`)."""
        return ProactorStats()

    def get_external_watchdog_builder_class(self) -> type[ExternalWatchdogCommandBuilder]:
        """The reference's pat-command builder. The gateway itself runs
        ``[watchdog] external_command`` whenever it is set; the builder is for code that
        drives its own command."""
        return ExternalWatchdogCommandBuilder

    async def process_message(self, message: Message[Any]) -> None:
        """The reference's ``await proactor.process_message(message)``: dispatch
        ``message`` now, as if it came off the receive queue (native: ``send``)."""
        self.dispatcher.dispatch(message)
