"""Lifecycle conveniences shared by the broker managers (:mod:`.mosquitto`, :mod:`.nats`,
:mod:`.rabbitmq`), as mixins built on each manager's own blocking ``start``, ``stop``,
``kill`` and its awaitable ``astart``:

* :class:`AwaitableStopMixin`: ``astop``, ``akill`` and ``arestart``;
* :class:`ContextManagerMixin`: ``with`` and ``async with`` (start on entry, stop on exit).

Package-private: the managers inherit these, nothing else should.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Protocol, Self, TypeVar

__all__ = ("AwaitableStopMixin", "ContextManagerMixin")


class _Manager(Protocol):
    """What the mixins need from the class they are mixed into."""

    def start(self) -> Self: ...

    async def astart(self) -> Self: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...

    async def astop(self) -> None: ...

    async def akill(self) -> None: ...


_M = TypeVar("_M", bound=_Manager)


class AwaitableStopMixin:
    """Awaitable forms of ``stop``, ``kill`` and ``restart``."""

    async def astop(self: _Manager) -> None:
        """Awaitable :meth:`stop` (the wait runs in a worker thread)."""
        await asyncio.to_thread(self.stop)

    async def akill(self: _Manager) -> None:
        """Awaitable :meth:`kill` (the wait runs in a worker thread)."""
        await asyncio.to_thread(self.kill)

    async def arestart(self: _M, *, kill: bool = False) -> _M:
        """Awaitable :meth:`restart`: :meth:`akill` if ``kill`` else :meth:`astop`, then
        :meth:`astart`."""
        await (self.akill() if kill else self.astop())
        return await self.astart()


class ContextManagerMixin:
    """``with`` runs :meth:`start` / :meth:`stop`, ``async with`` :meth:`astart` /
    :meth:`astop`; the manager is the value bound by ``as``."""

    def __enter__(self: _M) -> _M:
        return self.start()

    def __exit__(
        self: _Manager,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self: _M) -> _M:
        return await self.astart()

    async def __aexit__(
        self: _Manager,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()
