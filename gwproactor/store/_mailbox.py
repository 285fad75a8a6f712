"""Batch outcomes from the store's writer thread to the loop, in order.

On a loop that can watch a file descriptor (asyncio's selector loops, uvloop) on a system
with ``eventfd`` (Linux), the writer appends each outcome to a deque and signals an eventfd
that the loop watches, once until the loop has drained it. Against
``loop.call_soon_threadsafe`` that is no asyncio Handle per outcome, and on the loop one
``read()`` per wake-up instead of the self-pipe's ``recv()`` loop (two system calls, the
second ending in a BlockingIOError that CPython builds with a locale-decoded message):
together about 10 % of the machine instructions of an awaited ``generate_event`` outside
sqlite. Elsewhere it posts with ``call_soon_threadsafe``, as before.

Thread rules: :meth:`OutcomeMailbox.post_threadsafe` from the writer thread; everything else
on the loop. The eventfd is closed only once the writer thread has finished (it never
writes to a closed, possibly reused, descriptor); a writer abandoned at a stop timeout
keeps its eventfd.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ("OutcomeMailbox",)

logger = logging.getLogger("gwproactor.store")  # public name: the modules are private

_T = TypeVar("_T")


class OutcomeMailbox(Generic[_T]):
    """Items posted by one thread, handed to ``deliver`` on ``loop`` in posting order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Callable[[_T], None]) -> None:
        """Cheap; :meth:`open` sets up the eventfd (until then, and without one, posts go
        through ``call_soon_threadsafe``)."""
        self._loop = loop
        self._deliver = deliver
        self._items: deque[_T] = deque()
        self._armed = False  # the eventfd was signalled and the loop has not read it yet
        self._fd = -1

    @property
    def watching(self) -> bool:
        """True while the loop watches an eventfd (False: ``call_soon_threadsafe``)."""
        return self._fd >= 0

    def open(self) -> None:
        """Watch a new eventfd if the system and the loop allow it. Loop thread, before the
        posting thread starts."""
        make = getattr(os, "eventfd", None)
        if make is None:
            return
        fd = make(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            self._loop.add_reader(fd, self._drain)
        except (NotImplementedError, RuntimeError, ValueError, OSError):
            os.close(fd)  # e.g. the Windows proactor loop: call_soon_threadsafe it is
            return
        self._fd = fd

    def post_threadsafe(self, item: _T) -> None:
        """Hand ``item`` to the loop. The posting thread. Raises nothing: on a closed loop
        (nobody left to deliver to) the item is dropped, as ``call_soon_threadsafe``'s
        RuntimeError was."""
        fd = self._fd
        if fd < 0:
            try:
                self._loop.call_soon_threadsafe(self._deliver, item)
            except RuntimeError:
                logger.debug("event store writer: loop closed, dropped a batch outcome")
            return
        self._items.append(item)
        if not self._armed:
            # After the append: the loop resets _armed only after reading the eventfd and
            # before taking the items, so an item is either taken by a drain under way or
            # signalled here.
            self._armed = True
            os.eventfd_write(fd, 1)

    def _drain(self) -> None:
        """Deliver everything posted so far (the loop, when the eventfd is readable)."""
        try:  # noqa: SIM105  (free when nothing is raised; contextlib.suppress is not)
            os.eventfd_read(self._fd)
        except OSError:
            pass  # already read (a drain called directly): BlockingIOError
        self._armed = False
        items = self._items
        while items:
            item = items.popleft()
            try:
                self._deliver(item)
            except Exception:  # the rest must still be delivered
                logger.exception("event store: delivering a batch outcome failed")

    def close(self) -> None:
        """Deliver what is left and stop watching the eventfd. Loop thread, only once the
        posting thread has finished. Idempotent."""
        fd = self._fd
        if fd < 0:
            return
        self._drain()
        self._fd = -1
        with contextlib.suppress(RuntimeError, ValueError, OSError):  # the loop is closing
            self._loop.remove_reader(fd)
        os.close(fd)
