"""Actors whose work is blocking I/O run it in their own thread, and talk to the loop
through queues.

Loop → thread: a bounded ``queue.Queue``; the thread blocks on it with a timeout equal to
the time left until its next iteration (no polling, no busy-spin) and drains every waiting
message before iterating again. Thread → loop: :class:`AsyncQueueWriter` hands items to the
loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from result import Err, Ok, Result

from gwproactor.actor.communicator import Actor, ServicesInterface
from gwproactor.config import ActorSettings
from gwproactor.errors import QueueFullError, StateError
from gwproactor.watchdog.monitored import MonitoredName
from gwproactor.wire.message import Message

__all__ = (
    "AsyncQueueWriter",
    "SyncAsyncInteractionThread",
    "SyncAsyncQueueWriter",
    "SyncThreadActor",
    "responsive_sleep",
)

T = TypeVar("T")
_STOP = object()
DEFAULT_QUEUE_MAXSIZE = 1000
SLEEP_STEP_SECONDS_DEFAULT = 0.1


def responsive_sleep(
    obj: Any,
    seconds: float,
    step_duration: float = 0.1,
    running_field_name: str = "_main_loop_running",
    running_field: bool = True,
) -> bool:
    """Sleep ``seconds`` in a worker thread, waking early once ``obj.<running_field_name>``
    stops being ``running_field``. Returns whether the object is still running.

    If ``obj`` has a ``threading.Event`` named ``stop_event`` the wait ends the moment it is
    set (no steps at all); otherwise the flag is checked every ``step_duration`` seconds.
    """
    stop_event = getattr(obj, "stop_event", None)
    if isinstance(stop_event, threading.Event):
        return not stop_event.wait(seconds)
    deadline = time.monotonic() + seconds
    while getattr(obj, running_field_name) == running_field:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(step_duration, left))
    return bool(getattr(obj, running_field_name) == running_field)


class AsyncQueueWriter(Generic[T]):
    """Hands items from any thread to a callable on the loop (``put`` is thread-safe).
    ``put`` before ``set_loop`` raises RuntimeError: there is no loop to take the item."""

    def __init__(self, sink: Callable[[T], None] | None = None) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink = sink

    def set_loop(self, loop: asyncio.AbstractEventLoop, sink: Callable[[T], None]) -> None:
        self._loop = loop
        self._sink = sink

    def set_async_loop(
        self, loop: asyncio.AbstractEventLoop, async_queue: asyncio.Queue[T]
    ) -> None:
        """The reference's form of :meth:`set_loop`: items go to ``async_queue`` (unbounded
        queues only: a full one raises QueueFull on the loop)."""
        self.set_loop(loop, async_queue.put_nowait)

    def put(self, item: T) -> None:
        if self._loop is None or self._sink is None:
            raise StateError("AsyncQueueWriter has no loop yet")
        self._loop.call_soon_threadsafe(self._sink, item)


class SyncAsyncQueueWriter(Generic[T]):
    """Both directions between the loop and one worker thread.

    ``put_to_sync_queue`` (loop side) does not block unless asked to: a full queue gives
    Err(QueueFullError). ``get_from_sync_queue`` (thread side) blocks up to ``timeout``.
    ``put_to_async_queue`` (thread side) hands an item to the loop.

    ``SyncAsyncQueueWriter()`` and ``SyncAsyncQueueWriter(sync_queue)`` are the reference's
    forms; without a queue one of ``maxsize`` items is made (a bounded queue: the design
    keeps every per-actor queue bounded).
    """

    def __init__(
        self,
        sync_queue: queue.Queue[Any] | None = None,
        async_writer: AsyncQueueWriter[T] | None = None,
        *,
        maxsize: int = DEFAULT_QUEUE_MAXSIZE,
    ) -> None:
        self.sync_queue: queue.Queue[Any] = (
            sync_queue if sync_queue is not None else queue.Queue(maxsize=maxsize)
        )
        self.async_writer: AsyncQueueWriter[T] = async_writer or AsyncQueueWriter()

    def set_async_loop(
        self, loop: asyncio.AbstractEventLoop, async_queue: asyncio.Queue[T]
    ) -> None:
        """Items from :meth:`put_to_async_queue` go to ``async_queue`` on ``loop``."""
        self.async_writer.set_async_loop(loop, async_queue)

    def put_to_sync_queue(
        self, item: Any, block: bool = False, timeout: float | None = None
    ) -> Result[None, QueueFullError]:
        """Queue ``item`` for the thread. Non-blocking by default (the loop must not wait
        on a thread); ``block=True`` waits up to ``timeout`` (any thread but the loop's)."""
        try:
            self.sync_queue.put(item, block, timeout)
        except queue.Full:
            return Err(QueueFullError(f"worker queue full ({self.sync_queue.maxsize})"))
        return Ok(None)

    def get_from_sync_queue(self, block: bool = True, timeout: float | None = None) -> Any:
        """Raises queue.Empty after ``timeout`` (at once when not ``block``)."""
        return self.sync_queue.get(block, timeout)

    def put_to_async_queue(self, item: T) -> None:
        self.async_writer.put(item)


class SyncAsyncInteractionThread(threading.Thread):
    """A worker thread that iterates every ``iterate_seconds`` and handles messages.

    Subclasses override ``_ext_iterate`` (periodic work, e.g. read a sensor) and
    ``_ext_handle_message`` (a message from the loop), both run in this thread. An exception
    in either goes to ``_ext_on_error``, which reports it and returns whether it is fatal
    (default: not fatal, the thread goes on). The thread pats its :class:`MonitoredName`
    once per turn, so a thread stuck in a blocking call is noticed by the watchdog.
    """

    PAT_TIMEOUT: ClassVar[float] = 10.0
    """Default seconds the thread may go without patting before the watchdog reports it."""
    SLEEP_STEP_SECONDS: ClassVar[float] = 0.1
    """The reference's polling step; accepted and unused (the thread blocks on its queue)."""
    JOIN_CHECK_THREAD_SECONDS: ClassVar[float] = 1.0
    """The reference's join polling step; unused (joining awaits a future)."""

    def __init__(
        self,
        name: str | SyncAsyncQueueWriter[Any] | None = None,
        *,
        iterate_seconds: float | None = None,
        queue_maxsize: int = DEFAULT_QUEUE_MAXSIZE,
        pat_timeout_seconds: float | None = None,
        on_pat: Callable[[str], None] | None = None,
        on_problem: Callable[[str, str], None] | None = None,
        daemon: bool = True,
        channel: SyncAsyncQueueWriter[Any] | None = None,
        iterate_sleep_seconds: float | None = None,
        responsive_sleep_step_seconds: float = SLEEP_STEP_SECONDS_DEFAULT,
        pat_timeout: float | None = None,
    ) -> None:
        """``name`` names the thread and its monitored name (default: the class name).

        The reference's keywords are accepted: ``channel`` (a :class:`SyncAsyncQueueWriter`
        to use, also accepted as the first positional argument), ``iterate_sleep_seconds``
        (= ``iterate_seconds``), ``pat_timeout`` (= ``pat_timeout_seconds``) and
        ``responsive_sleep_step_seconds`` (ignored: the thread waits on its queue, which
        wakes it at once, instead of sleeping in steps)."""
        if isinstance(name, SyncAsyncQueueWriter):
            if channel is not None:
                raise TypeError("channel given twice (positionally and by keyword)")
            name, channel = None, name
        thread_name = name or type(self).__name__
        super().__init__(name=thread_name, daemon=daemon)
        del responsive_sleep_step_seconds
        self.iterate_seconds = _first(iterate_seconds, iterate_sleep_seconds, 1.0)
        self.channel: SyncAsyncQueueWriter[Any] = channel or SyncAsyncQueueWriter(
            maxsize=queue_maxsize
        )
        self.stop_event = threading.Event()
        timeout = _first(pat_timeout_seconds, pat_timeout, self.PAT_TIMEOUT)
        self.monitored_name = MonitoredName(f"thread.{thread_name}", timeout)
        self._on_pat = on_pat
        self._on_problem = on_problem
        self._done: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_pat = time.monotonic()
        self.error: BaseException | None = None
        self.handled = 0
        # Written by this thread only, read by the loop for /status (ints and a str: a
        # reader sees an old value or the new one, never a torn one).
        self.errors = 0
        self.last_error = ""
        self.last_error_time = 0.0
        self.last_message_time = 0.0
        self.iterations = 0
        self.turns = 0  # times the thread woke up (a busy-spin would make this grow)
        self.log = logging.getLogger(f"gwproactor.thread.{thread_name}")

    @property
    def pat_timeout(self) -> float:
        """Seconds this thread may go without patting (its monitored name's timeout)."""
        return self.monitored_name.timeout_seconds

    @property
    def running(self) -> bool | None:
        """None before start, True while running, False once asked to stop or ended."""
        if self.ident is None:
            return None
        return self.is_alive() and not self.stop_event.is_set()

    # -- loop side ----------------------------------------------------------------------

    def default_callbacks(
        self, on_pat: Callable[[str], None], on_problem: Callable[[str, str], None]
    ) -> None:
        """Use these for patting and problem reports unless the constructor was given
        others. Loop-only, before :meth:`start_on_loop`."""
        if self._on_pat is None:
            self._on_pat = on_pat
        if self._on_problem is None:
            self._on_problem = on_problem

    def start_on_loop(self) -> None:
        """Start the thread; ``join_async`` can then await its end. Loop-only."""
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        self.start()

    def set_async_loop(
        self, loop: asyncio.AbstractEventLoop, async_queue: asyncio.Queue[Any]
    ) -> None:
        """The reference's wiring: items the thread sends go to ``async_queue``."""
        self.channel.set_async_loop(loop, async_queue)

    def set_async_loop_and_start(
        self, loop: asyncio.AbstractEventLoop, async_queue: asyncio.Queue[Any]
    ) -> None:
        """:meth:`set_async_loop`, then start the thread. Call it on ``loop``'s thread."""
        self.set_async_loop(loop, async_queue)
        self._loop = loop
        self._done = loop.create_future()
        self.start()

    def put_to_sync_queue(
        self, message: Any, block: bool = False, timeout: float | None = None
    ) -> Result[None, QueueFullError]:
        """Queue ``message`` for the thread; Err when full (see
        :meth:`SyncAsyncQueueWriter.put_to_sync_queue` for ``block``)."""
        return self.channel.put_to_sync_queue(message, block, timeout)

    def request_stop(self) -> None:
        """Ask the thread to stop; it wakes at once (a sentinel is queued). Thread-safe."""
        self.stop_event.set()
        # A full queue is fine: the thread sees stop_event after its current turn.
        with contextlib.suppress(queue.Full):
            self.channel.sync_queue.put_nowait(_STOP)

    async def join_async(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the thread to end; True if it did."""
        if self._done is None:
            return not self.is_alive()
        try:
            await asyncio.wait_for(asyncio.shield(self._done), timeout)
        except TimeoutError:
            return False
        # run() has returned or is returning; reap it without blocking the loop.
        await asyncio.get_running_loop().run_in_executor(None, self.join, timeout)
        return not self.is_alive()

    async def async_join(self, timeout: float | None = None) -> None:
        """The reference's form of :meth:`join_async`: wait (at most ``timeout``, None:
        without bound) for the thread to end; returns either way."""
        if timeout is None:
            if self._done is not None:
                await asyncio.shield(self._done)
            await asyncio.get_running_loop().run_in_executor(None, self.join)
            return
        await self.join_async(timeout)

    # -- thread side --------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._ext_setup()
            next_iteration = time.monotonic()
            while not self.stop_event.is_set():
                now = time.monotonic()
                if now >= next_iteration:
                    self._ext_guarded(self._ext_iterate)
                    self.iterations += 1
                    next_iteration = now + self.iterate_seconds
                self._ext_pat()
                # Wake to pat at half the pat timeout however long the iterate period is
                # (an idle thread iterating hourly is alive, not stalled).
                wait = min(next_iteration - time.monotonic(), self.pat_timeout / 2)
                self._ext_wait_and_drain(max(0.0, wait))
        except BaseException as e:  # noqa: BLE001  (reported to the loop below)
            self.error = e
            self.errors += 1
            self.last_error = f"thread ended: {type(e).__name__}: {e}"[:300]
            self.last_error_time = time.time()
            self._ext_report(f"{self.name}: thread failed", repr(e))
        finally:
            self._ext_guarded(self._ext_cleanup)
            if self._loop is not None and self._done is not None:
                done = self._done
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    self._loop.call_soon_threadsafe(_resolve, done)

    def _ext_wait_and_drain(self, timeout: float) -> None:
        self.turns += 1
        try:
            item = self.channel.get_from_sync_queue(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if item is _STOP or self.stop_event.is_set():
                return
            self._ext_guarded(self._ext_handle_message, item)
            self.handled += 1
            self.last_message_time = time.time()
            try:
                item = self.channel.sync_queue.get_nowait()
            except queue.Empty:
                return

    def _ext_guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as e:
            if self._ext_on_error(e):
                raise

    def _ext_on_error(self, error: Exception) -> bool:
        """Count and report ``error``; return True to end the thread. Default: go on.

        Counted once here (``errors``, ``last_error``; shown per actor in /status) and
        logged once: by the problem report (rate-limited), or here at ERROR when the
        thread has nobody to report to. Subclasses that override this should call it."""
        text = f"{type(error).__name__}: {error}"
        self.errors += 1
        self.last_error = text[:300]
        self.last_error_time = time.time()
        self.log.debug("traceback", exc_info=error)
        if self._on_problem is None:
            self.log.error("%s", text)
        self._ext_report(f"{self.name}: {type(error).__name__}", str(error))
        return False

    def _ext_report(self, summary: str, details: str) -> None:
        if self._on_problem is not None:
            self._on_problem(summary, details)

    def _ext_pat(self) -> None:
        self._last_pat = time.monotonic()
        if self._on_pat is not None:
            self._on_pat(self.monitored_name.name)

    def pat_watchdog(self) -> None:
        """Pat this thread's monitored name now (from the thread, e.g. inside a long
        ``_ext_iterate``; the thread also pats once per turn by itself)."""
        self._ext_pat()

    def time_to_pat(self) -> bool:
        """Whether half of :attr:`pat_timeout` has passed since the last pat."""
        return time.monotonic() - self._last_pat >= self.pat_timeout / 2

    def _ext_setup(self) -> None:
        """Runs first in the thread (open a device here)."""

    def _ext_cleanup(self) -> None:
        """Runs last in the thread, also after a failure (close the device here)."""

    def _ext_iterate(self) -> None:
        """Periodic work, every ``iterate_seconds``."""

    def _ext_handle_message(self, message: Any) -> None:
        """A message from the loop."""

    def _ext_send_to_loop(self, item: Any) -> None:
        self.channel.put_to_async_queue(item)


def _first(*values: float | None) -> float:
    """The first value that is not None (the last one is the default)."""
    return next(v for v in values if v is not None)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SyncThreadActor(Actor):
    """An actor whose work runs in a :class:`SyncAsyncInteractionThread`.

    ``SyncThreadActor(name, services, sync_thread)`` as in the reference; without a thread
    :meth:`make_thread` builds one (subclasses override it). Anything but a thread in that
    place is a TypeError (an :class:`ActorSettings` goes in ``settings=``).

    Messages given to the actor go to the thread's queue; items the thread sends to the loop
    come back as messages through ``services.send`` (they must be :class:`Message` s). A
    full thread queue is an Err from ``process_message`` (counted and reported by the
    proactor), never a blocked loop.
    """

    def __init__(
        self,
        name: str,
        services: ServicesInterface,
        sync_thread: SyncAsyncInteractionThread | None = None,
        settings: ActorSettings | None = None,
    ) -> None:
        if sync_thread is not None and not isinstance(sync_thread, SyncAsyncInteractionThread):
            raise TypeError(
                f"SyncThreadActor {name!r}: the third argument is the worker thread "
                f"(a SyncAsyncInteractionThread), not {type(sync_thread).__name__}; "
                "pass settings as settings=..."
            )
        super().__init__(name, services, settings)
        self.thread = sync_thread or self.make_thread()

    def make_thread(self) -> SyncAsyncInteractionThread:
        """Build the worker thread (subclasses override)."""
        return SyncAsyncInteractionThread(self.name)

    @property
    def monitored_names(self) -> tuple[MonitoredName, ...]:
        return (self.thread.monitored_name,)

    def start(self) -> None:
        services = self.services
        loop = asyncio.get_running_loop()
        self.thread.channel.async_writer.set_loop(loop, self._from_thread)
        self.thread.default_callbacks(
            services.pat_watchdog_threadsafe, services.report_problem_threadsafe
        )
        self.thread.start_on_loop()

    def stop(self) -> None:
        self.thread.request_stop()

    async def join(self) -> None:
        timeout = self.services.settings.stop_timeout_seconds
        if not await self.thread.join_async(timeout):
            self.log.error("thread %s did not stop within %.1f s", self.thread.name, timeout)

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        return self.send_driver_message(message)

    def send_driver_message(self, message: Any) -> Result[None, Exception]:
        """Queue anything for the thread (its ``_ext_handle_message`` gets it); Err when
        the thread's queue is full. Loop."""
        result = self.thread.put_to_sync_queue(message)
        if isinstance(result, Err):
            return Err(result.err_value)
        return Ok(None)

    def _from_thread(self, item: Any) -> None:
        if isinstance(item, Message):
            self.services.send(item)
        else:
            self.on_thread_item(item)

    def on_thread_item(self, item: Any) -> None:
        """An item from the thread that is not a Message (subclasses override). Loop."""
        self.log.warning("unexpected item from thread: %r", type(item).__name__)
