"""Communicators and actors, and the narrow services interface they use.

Thread rule used throughout gwproactor (STYLE 6): methods named ``*_threadsafe`` may be
called from any thread; methods named ``_ext_*`` run in a worker thread; everything else is
loop-only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from result import Err, Result

from gwproactor.config import QOS, ActorSettings, ProactorSettings
from gwproactor.errors import ConfigError, StateError, StoreError
from gwproactor.events._future import EventFuture
from gwproactor.observe.logger import ProactorLogger
from gwproactor.observe.stats import ProactorStats
from gwproactor.watchdog._external import ExternalWatchdogCommandBuilder
from gwproactor.watchdog.monitored import MonitoredName
from gwproactor.wire.message import Event, Message, Payload

if TYPE_CHECKING:
    from aiohttp import web

__all__ = (
    "Actor",
    "ActorInterface",
    "Communicator",
    "CommunicatorInterface",
    "Runnable",
    "ServicesInterface",
    "load_actor",
)

T = TypeVar("T")
HTTPHandler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


class CommunicatorInterface(ABC):
    """Something with a name that the proactor can hand messages to."""

    @property
    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    def process_message(self, message: Message[Any]) -> Result[object, BaseException]:
        """Handle one message, on the loop. Return Err for an expected failure; raising
        is also survivable. Either way the proactor logs, counts and reports it, and
        goes on with the next message. Must not block: hand slow work to a thread.
        The Ok value is not used (``Ok(None)`` is the native form; the reference's
        ``Ok(True)`` is accepted)."""

    @property
    def monitored_names(self) -> Sequence[MonitoredName]:
        """What this communicator promises to pat on the internal watchdog."""
        return ()

    @property
    @abstractmethod
    def services(self) -> ServicesInterface:
        """The services (the proactor) this communicator uses."""


class ReceiveQueue(Protocol):
    """The reference's ``async_receive_queue``: what code may put messages through (the
    proactor's bounded receive queue; only the dispatcher reads it)."""

    def put_nowait(self, item: Message[Any]) -> None: ...

    def qsize(self) -> int: ...


class Runnable(ABC):
    """Something that is started, asked to stop, and joined (with a bound)."""

    @abstractmethod
    def start(self) -> None:
        """Start on the loop. Called once, after the links started."""

    @abstractmethod
    def stop(self) -> None:
        """Ask to stop; returns at once. Idempotent."""

    @abstractmethod
    async def join(self) -> None:
        """Wait until stopped. The proactor bounds this wait with its stop timeout."""

    async def stop_and_join(self) -> None:
        self.stop()
        await self.join()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class ServicesInterface(ABC):
    """What actors may ask of the proactor. Deliberately small; the Proactor implements it.

    Threads (the rule of this module): ``*_threadsafe`` methods may be called from any
    thread; everything else is loop-only and must not be called from a worker thread (use
    the ``*_threadsafe`` twin, or ``event_loop.call_soon_threadsafe``).

    Errors: sending and publishing return ``Result`` for what can fail at run time (no
    link, link down, store full: already counted); they raise only for misuse (an unknown
    link name: :class:`~gwproactor.errors.LinkError`; a call after stop:
    :class:`~gwproactor.errors.StateError`; a full receive queue:
    :class:`~gwproactor.errors.QueueFullError`).
    """

    @property
    @abstractmethod
    def name(self) -> str:
        """The gateway's name (as on the wire). Any thread: it never changes."""

    @property
    @abstractmethod
    def settings(self) -> ProactorSettings:
        """The gateway's settings; read them, do not change them. Any thread."""

    @property
    @abstractmethod
    def logger(self) -> ProactorLogger:
        """The gateway's category loggers (``logger.child(...)`` for an actor's own).
        Logging is thread-safe."""

    @property
    @abstractmethod
    def stats(self) -> ProactorStats:
        """The gateway's counters. Loop-only (they are plain ints, owned by the loop)."""

    @property
    @abstractmethod
    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop that owns the gateway once it started; ``None`` before. A worker
        thread may use it for ``call_soon_threadsafe``."""

    @abstractmethod
    def send(self, message: Message[Any]) -> None:
        """Queue ``message`` for the communicator named ``message.header.dst`` in this
        gateway; it is dispatched later on the loop, never inside this call (an unknown
        destination is counted and reported then, not raised). Loop-only. Raises
        QueueFullError when the receive queue is at its hard bound, StateError once the
        gateway is stopping."""

    @abstractmethod
    def send_threadsafe(self, message: Message[Any]) -> None:
        """:meth:`send` from any thread other than the loop's: blocks (bounded) while the
        receive queue is full. Raises QueueFullError if it stays full, StateError before
        start or once stopping."""

    @abstractmethod
    def publish(self, message: Message[Any], link_name: str | None = None) -> Result[None, Any]:
        """Publish to another gateway over the link named ``link_name``, or else over the
        link whose peer is ``message.header.dst``. ``Ok(None)`` once the link's transport
        took it; ``Err(RoutingError)`` when no link leads there, ``Err(LinkError)`` when
        the link is down or the message cannot be encoded, ``Err(StateError)`` once
        stopping; nothing is queued for later. Raises LinkError for an unknown
        ``link_name``. Loop-only."""

    @abstractmethod
    def send_to_peer(
        self,
        link_name: str,
        payload: Payload,
        *,
        actor: str = "",
        ack_required: bool = False,
    ) -> Result[None, Any]:
        """Wrap ``payload`` in a message to the peer of link ``link_name`` (for its actor
        ``actor``, if given; ack-required if asked) and publish it. Results as
        :meth:`publish`; raises LinkError for an unknown link. Loop-only (from a worker
        thread: :meth:`send_to_peer_threadsafe`)."""

    def send_to_peer_threadsafe(
        self,
        link_name: str,
        payload: Payload,
        *,
        actor: str = "",
        ack_required: bool = False,
    ) -> Result[None, Any]:
        """:meth:`send_to_peer` from a worker thread: runs it on the loop and returns its
        Result (waiting at most ``stop_timeout_seconds``). ``Err(StateError)`` when the
        gateway is not running or the loop does not answer in time; raises LinkError for an
        unknown link, StateError when called on the loop thread (use send_to_peer)."""
        loop = self.event_loop
        if loop is None or loop.is_closed():
            return Err(StateError("send_to_peer_threadsafe: the gateway is not running"))
        if _on_loop(loop):
            raise StateError("send_to_peer_threadsafe() called on the loop; use send_to_peer()")
        done: concurrent.futures.Future[Result[None, Any]] = concurrent.futures.Future()

        def call() -> None:
            try:
                done.set_result(
                    self.send_to_peer(link_name, payload, actor=actor, ack_required=ack_required)
                )
            except Exception as e:  # noqa: BLE001 - handed to the calling thread
                done.set_exception(e)

        loop.call_soon_threadsafe(call)
        timeout = self.settings.stop_timeout_seconds
        try:
            return done.result(timeout)
        except concurrent.futures.TimeoutError:
            return Err(StateError(f"the loop did not take the message within {timeout} s"))

    @abstractmethod
    def subscribe_raw(
        self,
        link_name: str,
        topic_filter: str,
        communicator_name: str,
        *,
        payload_type: type[Payload] | None = None,
        qos: QOS | None = None,
    ) -> None:
        """Deliver messages on an MQTT filter outside ``gw/`` of link ``link_name`` to
        communicator ``communicator_name`` as :class:`RawMessage`, through the receive
        queue (with ``parsed`` set when ``payload_type`` is given; JSON that does not
        validate is counted, reported and not delivered). Restored after every reconnect.
        Raises LinkError for an unknown link, ConfigError (a ValueError) for a filter
        that overlaps ``gw/``. Loop-only."""

    @abstractmethod
    def unsubscribe_raw(self, link_name: str, topic_filter: str, communicator_name: str) -> None:
        """Undo :meth:`subscribe_raw` for one communicator (the MQTT subscription ends
        when no communicator uses the filter). Raises LinkError for an unknown link.
        Loop-only."""

    @abstractmethod
    def publish_raw(
        self,
        link_name: str,
        topic: str,
        payload: bytes | Payload,
        *,
        qos: QOS | None = None,
        retain: bool = False,
    ) -> Result[None, Any]:
        """Publish bytes (or a payload as plain JSON) on any topic of a link's broker.
        ``Ok(None)`` once the transport took it, ``Err(LinkError)`` when the link is down
        (no retry). Raises LinkError for an unknown link. Loop-only."""

    @abstractmethod
    def generate_event(self, event: Event) -> EventFuture:
        """Store ``event`` durably, then send it upstream (write-ahead: once the future
        says Ok, a crash cannot lose it). The future resolves once it is committed (Ok with
        the event's id) or refused (Err(StoreError): the store is full with policy
        ``refuse_new``, failing, or not running; already counted and reported); once done
        it also answers ``is_ok()``/``is_err()`` itself (the reference's form). Never
        raises. Cancelling the future does not un-store the event. Loop-only."""

    @abstractmethod
    def generate_event_threadsafe(self, event: Event) -> Result[str, StoreError]:
        """:meth:`generate_event` from a worker thread: blocks until the event is
        committed or refused, at most ``store.append_timeout_seconds`` (then Err, though
        the event may still be stored). Err(StoreError) also when the gateway is not
        running. Never call it on the loop thread (StateError: the loop would wait for
        itself)."""

    def is_redelivery(self, message: Message[Any]) -> bool:
        """True if ``message`` is a received event handed over again after the gateway
        restarted: this actor may already have handled it just before the gateway died.
        An actor whose effect must happen exactly once checks the event's id against what
        it recorded. Loop-only. Default: False."""
        del message
        return False

    @abstractmethod
    def report_problem(
        self, summary: str, details: str = "", *, error: bool = True, key: str | None = None
    ) -> None:
        """Log, count and report (as a problem event, stored and sent upstream) something
        an operator should see; ``error=False`` for a warning. Rate-limited per ``key``
        (default: the summary): repeats within the interval are counted, not reported.
        Raises nothing. Loop-only."""

    @abstractmethod
    def report_problem_threadsafe(
        self, summary: str, details: str = "", *, error: bool = True
    ) -> None:
        """:meth:`report_problem` from any thread (queued to the loop; dropped before the
        gateway started). Raises nothing."""

    @abstractmethod
    def pat_watchdog(self, name: str) -> None:
        """Tell the internal watchdog that monitored ``name`` is alive (a name not
        registered is ignored). Raises nothing. Loop-only."""

    @abstractmethod
    def pat_watchdog_threadsafe(self, name: str) -> None:
        """:meth:`pat_watchdog` from any thread, without waiting for the loop."""

    @abstractmethod
    def add_web_route(
        self, server_name: str, method: str, path: str, handler: HTTPHandler, **kwargs: Any
    ) -> None:
        """Serve ``handler`` for ``method path`` on the configured web server
        ``server_name`` (ignored when no such server is configured), from the start of the
        gateway on. Raises ConfigError for a route already added, StateError once the
        servers run. Loop-only, before start."""

    @abstractmethod
    def add_web_server_config(self, name: str, host: str, port: int, **kwargs: Any) -> None:
        """Configure a named web server, started with the proactor. Not thread-safe."""

    @abstractmethod
    def get_communicator(self, name: str) -> CommunicatorInterface | None:
        """The communicator named ``name``, or None."""

    @abstractmethod
    def get_communicator_as_type(self, name: str, type_: type[T]) -> T | None:
        """The communicator named ``name`` if it is a ``type_``, else None."""

    @abstractmethod
    def get_external_watchdog_builder_class(self) -> type[ExternalWatchdogCommandBuilder]:
        """The reference's builder of a custom pat command (see
        :class:`~gwproactor.watchdog.ExternalWatchdogCommandBuilder`)."""

    @property
    @abstractmethod
    def async_receive_queue(self) -> ReceiveQueue | None:
        """The reference's receive queue (None before start): ``put_nowait(message)`` is
        ``send(message)``."""

    @property
    @abstractmethod
    def publication_name(self) -> str:
        """The name this gateway publishes under (its name)."""

    @abstractmethod
    def link_state(self, link_name: str) -> str:
        """The current state of link ``link_name`` (a :class:`LinkState` value, e.g.
        ``"active"``). Raises LinkError for an unknown link. Loop-only."""


class Communicator(CommunicatorInterface):
    """A communicator with a name and the services it uses."""

    def __init__(self, name: str, services: ServicesInterface) -> None:
        self._name = name
        self._services = services
        self.log = services.logger.child(f"actor.{name}")

    @property
    def name(self) -> str:
        return self._name

    @property
    def services(self) -> ServicesInterface:
        return self._services


class ActorInterface(CommunicatorInterface, Runnable):
    """A communicator that has a place in the gateway's configuration and a lifecycle."""

    def init(self) -> None:
        """Called once right after construction by :func:`load_actor` (the reference's
        hook for set-up that needs the subclass's methods). Default: nothing. Do no I/O
        here; that belongs in ``start``."""

    @classmethod
    def load(
        cls, name: str, actor_class_name: str, services: ServicesInterface, module_name: str
    ) -> ActorInterface:
        """The reference's form of :func:`load_actor`: ``module_name.actor_class_name``
        constructed as ``Class(name, services)`` with default settings, then ``init()``.
        Raises ConfigError like :func:`load_actor`."""
        return load_actor(name, ActorSettings(cls=f"{module_name}:{actor_class_name}"), services)


class Actor(Communicator, ActorInterface):
    """Base for actors. Constructors are cheap and do no I/O; I/O starts in ``start``.

    ``settings.options`` carries the actor's own configuration; ``settings.handles`` the
    message types from links that the proactor routes here.
    """

    def __init__(
        self, name: str, services: ServicesInterface, settings: ActorSettings | None = None
    ) -> None:
        super().__init__(name, services)
        self.actor_settings = settings or ActorSettings(cls=f"{type(self).__module__}:x")
        self._stopped = asyncio.Event()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self._stopped.set()

    async def join(self) -> None:
        await self._stopped.wait()


def load_actor(name: str, settings: ActorSettings, services: ServicesInterface) -> ActorInterface:
    """Import ``settings.cls`` (``package.module:Class`` or ``package.module.Class``) and
    construct it as ``Class(name, services, settings=settings)``, then call its ``init()``.
    Raises ConfigError naming the actor and what failed (module, class, type, or the
    constructor's own error)."""
    spec = settings.cls
    module_name, _, class_name = spec.partition(":") if ":" in spec else spec.rpartition(".")
    if not module_name or not class_name:
        raise ConfigError(f"actor {name}: class {spec!r} is not 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"actor {name}: cannot import {module_name}: {e}") from e
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, ActorInterface)):
        raise ConfigError(f"actor {name}: {spec} is not an Actor class")
    try:
        actor = cls(name, services, settings=settings)  # type: ignore[call-arg]
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"actor {name}: {spec} rejected its settings: {e}") from e
    actor.init()
    logging.getLogger("gwproactor.lifecycle").debug("loaded actor %s (%s)", name, spec)
    return actor
