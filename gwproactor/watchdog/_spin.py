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
import selectors
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ("PollCounter",)


class _CountingSelector(selectors.BaseSelector):
    """A selector that delegates everything to ``inner`` and counts idle polls."""

    def __init__(self, inner: selectors.BaseSelector) -> None:
        self.inner = inner
        self.idle_polls = 0

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
        ready = self.inner.select(timeout)
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
