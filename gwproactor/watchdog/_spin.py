"""Counting the event loop's idle polls, to tell a spinning loop from a busy one.

A loop that re-schedules a callback that does nothing (``call_soon`` forever) never lags:
every timer runs on time, so the lag check cannot see it, yet it burns a core. What it does
show is the rate of *idle polls*: iterations whose selector poll had a zero timeout (work
was ready) and found no socket ready. A working loop makes a few thousand iterations a
second at most, each with real work; a spinning one makes a hundred thousand.

:class:`PollCounter` wraps the selector of an asyncio selector loop (CPython's
``SelectorEventLoop`` keeps it in ``_selector``; there is no public way to observe the
loop's iterations) and counts. On a loop without one (uvloop, the Windows proactor) it is
not installed and the spin check is off. Loop-only.
"""

from __future__ import annotations

import asyncio
import math
import select
import selectors
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ("PollCounter",)


_EPOLL = getattr(selectors, "EpollSelector", None)
_NOT_EPOLLIN = ~getattr(select, "EPOLLIN", 0)
_NOT_EPOLLOUT = ~getattr(select, "EPOLLOUT", 0)
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class _CountingSelector(selectors.BaseSelector):
    """A selector that delegates everything to ``inner`` and counts idle polls.

    On CPython's own ``EpollSelector`` (Linux, asyncio's default) :meth:`select` polls its
    epoll object itself, with the same result: the loop calls it on every iteration, and
    a wrapper frame around ``EpollSelector.select`` and its ``_key_from_fd`` frame per
    ready socket were paid on every wake-up, before the callbacks of what woke it."""

    def __init__(self, inner: selectors.BaseSelector) -> None:
        self.inner = inner
        self.idle_polls = 0
        self._epoll: Any = None
        self._fd_to_key: dict[int, selectors.SelectorKey] = {}
        if _EPOLL is not None and type(inner) is _EPOLL:
            # Its state (CPython 3.4+): the epoll object and the fd -> key map that
            # register/unregister change in place.
            self._epoll = getattr(inner, "_selector", None)
            fd_to_key = getattr(inner, "_fd_to_key", None)
            if isinstance(fd_to_key, dict):
                self._fd_to_key = fd_to_key
            else:
                self._epoll = None

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self.inner.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self.inner.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self.inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        epoll = self._epoll
        if epoll is None:
            ready = self.inner.select(timeout)
        else:  # EpollSelector.select (CPython 3.11), in this frame
            if timeout is None:
                wait = -1.0
            elif timeout <= 0:
                wait = 0.0
            else:  # epoll has a millisecond resolution: wait at least ``timeout``
                wait = math.ceil(timeout * 1e3) * 1e-3
            fd_to_key = self._fd_to_key
            ready = []
            try:
                fd_events = epoll.poll(wait, max(len(fd_to_key), 1))
            except InterruptedError:
                fd_events = []
            for fd, event in fd_events:
                key = fd_to_key.get(fd)
                if key is not None:
                    mask = 0
                    if event & _NOT_EPOLLIN:
                        mask |= _WRITE
                    if event & _NOT_EPOLLOUT:
                        mask |= _READ
                    ready.append((key, mask & key.events))
        if timeout == 0 and not ready:
            self.idle_polls += 1
        return ready

    def close(self) -> None:
        self.inner.close()

    def get_key(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self.inner.get_key(fileobj)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self.inner.get_map()


class PollCounter:
    """The idle polls of one loop, from :meth:`install` to :meth:`uninstall`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, selector: _CountingSelector) -> None:
        self._loop = loop
        self._selector = selector

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop) -> PollCounter | None:
        """Count ``loop``'s idle polls from now on; None if the loop has no selector."""
        inner = getattr(loop, "_selector", None)
        if isinstance(inner, _CountingSelector):
            return cls(loop, inner)
        if not isinstance(inner, selectors.BaseSelector):
            return None
        counting = _CountingSelector(inner)
        setattr(loop, "_selector", counting)  # noqa: B010 (a private attribute, on purpose)
        return cls(loop, counting)

    @property
    def idle_polls(self) -> int:
        return self._selector.idle_polls

    def uninstall(self) -> None:
        """Give the loop its own selector back (if nobody wrapped it again since)."""
        if getattr(self._loop, "_selector", None) is self._selector:
            setattr(self._loop, "_selector", self._selector.inner)  # noqa: B010
