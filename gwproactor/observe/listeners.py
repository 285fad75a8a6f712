"""Comm events and listeners: how code and tests wait for things instead of polling.

Modelled on qemu.qmp's EventListener: a listener filters by event names and an optional
predicate, keeps its own FIFO and a bounded history, and is used as a context manager, as
an async iterator, or with ``get()``. The proactor emits :class:`CommEvent` s for link state
changes, messages received and dispatched, events stored and acked, and problems.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from gwproactor.errors import StateError
from gwproactor.observe._records import FrozenRecord

__all__ = ("CommEvent", "EventListener", "ListenerHub")


class CommEvent(FrozenRecord):
    """Something that happened in the gateway. Immutable (a frozen record, see
    :mod:`gwproactor.observe._records`).

    ``name`` is dotted (``link.state``, ``message.received``, ``event.stored``,
    ``event.acked``, ``problem``); ``source`` names the link or communicator; ``data``
    carries the details (for ``link.state``: ``old``, ``new``, ``cause``); ``time`` is
    ``time.monotonic()`` when it was made unless given.
    """

    __match_args__ = ("name", "source", "data", "time")
    __slots__ = ("data", "name", "source", "time")
    name: str
    source: str
    data: Mapping[str, Any]
    time: float

    def __init__(
        self,
        name: str,
        source: str,
        data: Mapping[str, Any] | None = None,
        time: float | None = None,
    ) -> None:
        _set(self, "name", name)
        _set(self, "source", source)
        _set(self, "data", {} if data is None else data)
        _set(self, "time", _monotonic() if time is None else time)


_set = object.__setattr__
_monotonic = time.monotonic


class EventListener:
    """A filtered FIFO of comm events. Loop-only.

    ``names``: the event names to accept (None: all). ``predicate``: an extra filter.
    ``history``: how many accepted events to keep for later inspection (read-only: a
    tuple, oldest first, kept after the listener is removed). ``max_queued``: the FIFO's
    bound; a listener nobody reads keeps only the newest events (the oldest are dropped
    and counted in ``dropped``), so a forgotten listener cannot grow without limit at the
    message rate.

    Register it with ``with listener:`` (it must come from a hub: ``proactor.listener``
    or ``hub.listener``; a listener without one is a StateError there, since it would
    never hear anything), or several at once with ``with hub.listen(a, b):``. Leaving
    the ``with`` removes it and clears its FIFO; its history stays.
    """

    def __init__(
        self,
        names: Iterable[str] | str | None = None,
        predicate: Callable[[CommEvent], bool] | None = None,
        *,
        history: int = 10_000,
        max_queued: int = 100_000,
        hub: ListenerHub | None = None,
    ) -> None:
        if isinstance(names, str):
            names = (names,)
        self.names = frozenset(names) if names is not None else None
        self.predicate = predicate
        self._history: deque[CommEvent] = deque(maxlen=history)
        self._queue: asyncio.Queue[CommEvent] = asyncio.Queue(max_queued)
        self.dropped = 0
        self._hub = hub

    def accepts(self, event: CommEvent) -> bool:
        if self.names is not None and event.name not in self.names:
            return False
        return self.predicate is None or self.predicate(event)

    def put(self, event: CommEvent) -> None:
        if self.accepts(event):
            self._history.append(event)
            if self._queue.full():
                self._queue.get_nowait()
                self.dropped += 1
            self._queue.put_nowait(event)

    @property
    def history(self) -> tuple[CommEvent, ...]:
        """The last accepted events, oldest first (a copy: read-only)."""
        return tuple(self._history)

    def empty(self) -> bool:
        return self._queue.empty()

    def clear(self) -> list[CommEvent]:
        """Drop every event waiting in the FIFO and return them, oldest first (the
        history stays)."""
        dropped: list[CommEvent] = []
        while not self._queue.empty():
            dropped.append(self._queue.get_nowait())
        return dropped

    async def get(self, timeout: float | None = None) -> CommEvent:
        """The next accepted event. Raises TimeoutError after ``timeout`` seconds."""
        if timeout is None:
            return await self._queue.get()
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def wait_for(self, predicate: Callable[[CommEvent], bool], timeout: float) -> CommEvent:
        """Skip events until one satisfies ``predicate``; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            event = await self.get(max(0.0, deadline - time.monotonic()))
            if predicate(event):
                return event

    def __aiter__(self) -> AsyncIterator[CommEvent]:
        return self

    async def __anext__(self) -> CommEvent:
        return await self._queue.get()

    def __enter__(self) -> EventListener:
        if self._hub is None:
            raise StateError(
                "this listener has no hub, so it would never hear anything: make it with "
                "proactor.listener(...) or register it with hub.listen(listener)"
            )
        self._hub.add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._hub is not None:
            self._hub.remove(self)
        self.clear()


class ListenerHub:
    """The set of registered listeners; ``emit`` is cheap when nobody listens."""

    def __init__(self) -> None:
        self._listeners: list[EventListener] = []

    def __bool__(self) -> bool:
        return bool(self._listeners)

    @property
    def listeners(self) -> list[EventListener]:
        """The registered listeners: one list for the hub's lifetime, changed in place by
        :meth:`add` and :meth:`remove`. A hot path may keep it and test it (truthy while
        anyone listens) without a call per message; it must not change it."""
        return self._listeners

    def listener(
        self,
        names: Iterable[str] | str | None = None,
        predicate: Callable[[CommEvent], bool] | None = None,
        *,
        history: int = 10_000,
        max_queued: int = 100_000,
    ) -> EventListener:
        """A listener that registers itself on ``with`` (or call :meth:`add`)."""
        return EventListener(names, predicate, history=history, max_queued=max_queued, hub=self)

    @contextlib.contextmanager
    def listen(self, *listeners: EventListener) -> Iterator[tuple[EventListener, ...]]:
        """Register every listener in ``listeners`` (including ones made without a hub)
        for the ``with`` block; on leaving, remove them and clear their FIFOs."""
        for listener in listeners:
            self.add(listener)
        try:
            yield listeners
        finally:
            for listener in listeners:
                self.remove(listener)
                listener.clear()

    def add(self, listener: EventListener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove(self, listener: EventListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def emit(self, name: str, source: str, data: Mapping[str, Any] | None = None) -> None:
        if not self._listeners:
            return
        event = CommEvent(name, source, data or {})
        for listener in self._listeners:
            listener.put(event)
