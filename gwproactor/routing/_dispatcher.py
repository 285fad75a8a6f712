"""The receive queue and dispatch: every message for a communicator goes through here.

The queue is bounded with backpressure rather than loss: at ``receive_queue_max`` the links
stop reading their sockets (TCP then pushes back to the broker), and reading resumes once
the queue has drained to ``receive_queue_resume_fraction`` of that. Messages from actors on
the loop may go up to twice the bound before ``send`` refuses them; worker threads block in
``send_threadsafe`` (bounded) while the queue is full. The consumer drains up to
``dispatch_batch`` messages per wake-up, so a burst costs one wake-up, not one per message.

A link can also be *held* (:meth:`hold_reading`) by the event manager while too many of
the events it received await their commit; a held link stays paused when the queue drains
and resumes at :meth:`release_held` (unless the queue is full then).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from result import Err

from gwproactor.actor.communicator import CommunicatorInterface
from gwproactor.config import ProactorSettings
from gwproactor.errors import QueueFullError, StateError
from gwproactor.mqtt import Transport
from gwproactor.observe.listeners import ListenerHub
from gwproactor.observe.stats import ProactorStats
from gwproactor.wire.message import Header, Message

__all__ = ("Dispatcher",)

ReportProblem = Callable[..., None]
_MAX_ERROR_TEXT = 300  # of an actor's last error, kept for /status


class Dispatcher:
    """Loop-only except :meth:`send_threadsafe`.

    Routing: a message whose ``dst`` is the gateway itself came from a link and goes to
    ``header.actor``, or else to the communicator routed for its type; any other ``dst``
    names the communicator. A handler that raises or returns Err is counted, logged and
    reported, and dispatch goes on (isolate and report).
    """

    def __init__(
        self,
        settings: ProactorSettings,
        communicators: Mapping[str, CommunicatorInterface],
        routes: Mapping[str, str],
        *,
        transports: Callable[[], Iterable[Transport]],
        stats: ProactorStats,
        hub: ListenerHub,
        report_problem: ReportProblem,
        logger: logging.Logger,
    ) -> None:
        self._gateway = settings.name
        self._max = settings.receive_queue_max
        self._resume_at = int(settings.receive_queue_max * settings.receive_queue_resume_fraction)
        self._batch = settings.dispatch_batch
        self._thread_wait = settings.stop_timeout_seconds
        self._communicators = communicators
        self._routes = routes
        self._transports = transports
        self._stats = stats
        self._hub = hub
        self._listeners = hub.listeners  # the live list: truthy while anyone listens
        self._report_problem = report_problem
        self._log = logger
        self._rx: deque[Message[Any]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._held: list[Transport] = []  # paused for received events awaiting commit
        self._space = threading.Event()  # set while threads may add
        self._space.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._draining = False
        # Called once the communicator has returned from the message (keyed by id(message)).
        self._on_done: dict[int, Callable[[], None]] = {}

    @property
    def depth(self) -> int:
        return len(self._rx)

    @property
    def paused(self) -> bool:
        return self._paused

    def start(self, name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name=name)

    async def stop(self) -> None:
        """Stop dispatching (messages still queued are dropped: their senders are stopping;
        their ``on_done`` callbacks are never called)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._on_done.clear()

    def send(self, message: Message[Any]) -> None:
        """Queue a message. Raises QueueFullError at twice the bound (an actor flooding
        itself); link traffic never gets there because reading pauses at the bound."""
        if len(self._rx) >= 2 * self._max:
            raise QueueFullError(f"receive queue full ({len(self._rx)})")
        self.put(message)

    def send_threadsafe(self, message: Message[Any]) -> None:
        """From a worker thread: waits (bounded) while the queue is full, then hands the
        message to the loop. Raises QueueFullError if it stays full, StateError before
        start."""
        loop = self._loop
        if loop is None:
            raise StateError("send_threadsafe before start")
        if len(self._rx) >= self._max and not self._space.wait(self._thread_wait):
            raise QueueFullError("receive queue stayed full")
        loop.call_soon_threadsafe(self.put, message)

    def put(self, message: Message[Any], on_done: Callable[[], None] | None = None) -> None:
        """Queue a message and wake the dispatch task (loop-only). ``on_done()`` is called
        once the communicator has returned from it (also when it raised or returned Err,
        or no communicator took it), not if it is dropped at stop."""
        if on_done is not None:
            self._on_done[id(message)] = on_done
        self.put_quietly(message)
        self._wake()

    def event_target(self, header: Header) -> str | None:
        """Which actor a received event is owed to: the one named by ``header.actor``, ""
        if one is routed its type, None if nobody asked for it (it is only archived)."""
        if header.actor:
            return header.actor
        return "" if header.message_type in self._routes else None

    def receive(self, link_name: str, message: Message[Any]) -> None:
        """A new message from link ``link_name``: tell listeners (``message.received``),
        then queue it without a wake-up; the link calls :meth:`drain` after its read, in
        the same loop iteration."""
        if self._listeners:
            self._hub.emit("message.received", link_name, {"message": message})
        rx = self._rx  # put_quietly, inline: once per received message
        rx.append(message)
        if len(rx) >= self._max and not self._paused:
            self._pause()

    def put_quietly(self, message: Message[Any]) -> None:
        """Queue a message without waking the dispatch task, for callers that call
        :meth:`drain` right after (a link after a read): one wake-up fewer per message."""
        rx = self._rx
        rx.append(message)
        if len(rx) >= self._max and not self._paused:
            self._pause()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _pause(self) -> None:
        self._paused = True
        self._space.clear()
        self._stats.queue_pauses += 1
        for transport in self._transports():
            transport.pause_reading()
        self._log.debug("receive queue full (%d): links paused", len(self._rx))

    def _resume(self) -> None:
        self._paused = False
        self._space.set()
        held = self._held
        for transport in self._transports():
            if transport not in held:
                transport.resume_reading()

    def hold_reading(self, transport: Transport) -> None:
        """Pause one link's reading until :meth:`release_held` (received events backlog)."""
        if transport not in self._held:
            self._held.append(transport)
            transport.pause_reading()

    def release_held(self) -> None:
        """Resume the held links (those the full queue pauses stay paused until it drains)."""
        held, self._held = self._held, []
        if not self._paused:
            for transport in held:
                transport.resume_reading()

    def drain_all(self) -> int:
        """Dispatch everything queued, now (at shutdown, after links stopped reading, so the
        queue is finite: at most its bound). Received events are stored and acked before
        they are queued; this gives actors the ones already accepted. Returns how many."""
        count = 0
        self._draining = True
        try:
            while self._rx:
                self.dispatch(self._rx.popleft())
                count += 1
        finally:
            self._draining = False
        return count

    def drain(self) -> None:
        """Dispatch up to ``dispatch_batch`` queued messages now (called right after a link
        read a batch). Not re-entrant: a handler that causes a drain is a no-op inside."""
        rx = self._rx
        if self._draining or not rx:
            return
        self._draining = True
        try:  # _dispatch_batch, inline: this runs once per read, before its first message
            depth = len(rx)
            stats = self._stats
            if depth > stats.queue_high_water:  # noqa: PLR1730 - a compare, not a call to max
                stats.queue_high_water = depth
            dispatch = self.dispatch
            take = rx.popleft
            for _ in range(depth if depth < self._batch else self._batch):
                dispatch(take())
            if self._paused and len(rx) <= self._resume_at:
                self._resume()
        finally:
            self._draining = False
        if rx:
            self._wake()  # more than one batch came in: the task takes the rest

    def _dispatch_batch(self) -> None:
        rx = self._rx
        stats = self._stats
        depth = len(rx)
        if depth > stats.queue_high_water:  # noqa: PLR1730 - a compare, not a call to max
            stats.queue_high_water = depth
        dispatch = self.dispatch
        take = rx.popleft
        for _ in range(depth if depth < self._batch else self._batch):
            dispatch(take())
        if self._paused and len(rx) <= self._resume_at:
            self._resume()

    async def _run(self) -> None:
        rx = self._rx
        loop = asyncio.get_running_loop()
        while True:
            if not rx:
                self._waiter = loop.create_future()
                await self._waiter
                continue
            self._draining = True
            try:
                self._dispatch_batch()
            finally:
                self._draining = False
            if rx:
                await asyncio.sleep(0)  # let sockets and timers run between batches

    def dispatch(self, message: Message[Any]) -> None:
        """Hand one message to its communicator; then its ``on_done``, if it has one."""
        try:
            header = message.header
            if header.dst == self._gateway:
                target = header.actor or self._routes.get(header.message_type, "")
            else:
                target = header.dst
            communicator = self._communicators.get(target)
            if communicator is None:
                self._unroutable(header, target)
                return
            error: BaseException | None = None
            try:
                result = communicator.process_message(message)
            except Exception as e:  # noqa: BLE001  (an actor's bug must not stop the gateway)
                error = e
            else:
                if isinstance(result, Err):
                    error = result.err_value
            stats = self._stats
            stats.dispatched += 1
            activity = stats.actors.get(target) or stats.actor(target)
            activity.handled += 1
            activity.last_message = now = time.time()
            if error is not None:
                activity.errors += 1
                activity.last_error = f"{type(error).__name__}: {error}"[:_MAX_ERROR_TEXT]
                activity.last_error_time = now
                self._failed(target, header.message_type, error)
            if self._listeners:
                self._hub.emit("message.dispatched", target, {"message": message, "error": error})
        finally:
            if self._on_done:
                on_done = self._on_done.pop(id(message), None)
                if on_done is not None:
                    on_done()

    def _unroutable(self, header: Header, target: str) -> None:
        # Counted and rate-limited by reason, never by the names in the message: a peer
        # choosing 100,000 actor names must not make 100,000 counter keys or problems.
        if header.dst != self._gateway:
            reason = "unknown_destination"
        elif header.actor:
            reason = "unknown_actor"
        else:
            reason = "no_route"
        self._stats.unroutable[reason] += 1
        self._report_problem(
            f"unroutable message ({reason})",
            f"no communicator {target[:64]!r} for {header.message_type[:64]} from "
            f"{header.src[:64]}",
            key=f"unroutable:{reason}",
        )

    def _failed(self, target: str, message_type: str, error: BaseException) -> None:
        self._stats.handler_errors[target] += 1
        self._log.debug("handler %s failed", target, exc_info=error)
        self._report_problem(
            f"{target} failed on {message_type}",
            f"{type(error).__name__}: {error}",
            key=f"handler:{target}",
        )
