"""Communicators and actors, and the narrow services interface they use.

Thread rule used throughout gwproactor (STYLE 6): methods named ``*_threadsafe`` may be
called from any thread; methods named ``_ext_*`` run in a worker thread; everything else is
loop-only.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from result import Result

from gwproactor.config import QOS, ActorSettings, ProactorSettings
from gwproactor.errors import ConfigError, StoreError
from gwproactor.observe.logger import ProactorLogger
from gwproactor.observe.stats import ProactorStats
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

HTTPHandler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


class CommunicatorInterface(ABC):
    """Something with a name that the proactor can hand messages to."""

    @property
    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        """Handle one message, on the loop. Return Err for an expected failure; raising
        is also survivable. Either way the proactor logs, counts and reports it, and
        goes on with the next message. Must not block: hand slow work to a thread."""

    @property
    def monitored_names(self) -> Sequence[MonitoredName]:
        """What this communicator promises to pat on the internal watchdog."""
        return ()


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


class ServicesInterface(ABC):
    """What actors may ask of the proactor. Deliberately small."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The gateway's name."""

    @property
    @abstractmethod
    def settings(self) -> ProactorSettings: ...

    @property
    @abstractmethod
    def logger(self) -> ProactorLogger: ...

    @property
    @abstractmethod
    def stats(self) -> ProactorStats: ...

    @property
    @abstractmethod
    def event_loop(self) -> asyncio.AbstractEventLoop | None: ...

    @abstractmethod
    def send(self, message: Message[Any]) -> None:
        """Queue a message for the communicator ``message.header.dst`` in this gateway.
        Loop-only. Raises QueueFullError when the receive queue is at its hard bound."""

    @abstractmethod
    def send_threadsafe(self, message: Message[Any]) -> None:
        """``send`` from any thread; blocks (bounded) while the receive queue is full."""

    @abstractmethod
    def publish(self, message: Message[Any], link_name: str | None = None) -> Result[None, Any]:
        """Publish to another gateway over the link named ``link_name``, or else over the
        link whose peer is ``message.header.dst``. Loop-only."""

    @abstractmethod
    def send_to_peer(
        self,
        link_name: str,
        payload: Payload,
        *,
        actor: str = "",
        ack_required: bool = False,
    ) -> Result[None, Any]:
        """Build and publish a message to the peer of ``link_name``. Loop-only."""

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
        """Deliver messages on an MQTT filter outside ``gw/`` to a communicator as
        :class:`RawMessage` (with ``parsed`` set when ``payload_type`` is given). Loop-only."""

    @abstractmethod
    def unsubscribe_raw(self, link_name: str, topic_filter: str, communicator_name: str) -> None:
        """Undo ``subscribe_raw`` for one communicator. Loop-only."""

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
        """Publish bytes (or a payload as plain JSON) on any topic of a link. Loop-only."""

    @abstractmethod
    def generate_event(self, event: Event) -> asyncio.Future[Result[str, StoreError]]:
        """Store ``event`` durably, then send it upstream. The future resolves once it is
        committed (Ok with the event's id) or refused (Err, already counted and reported).
        Loop-only."""

    @abstractmethod
    def generate_event_threadsafe(self, event: Event) -> Result[str, StoreError]:
        """``generate_event`` from a worker thread: blocks until committed."""

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
        """Log, count and report (as a problem event) something an operator should see;
        rate-limited per ``key`` (default: the summary). Loop-only."""

    @abstractmethod
    def report_problem_threadsafe(
        self, summary: str, details: str = "", *, error: bool = True
    ) -> None: ...

    @abstractmethod
    def pat_watchdog(self, name: str) -> None:
        """Tell the internal watchdog that ``name`` is alive. Loop-only."""

    @abstractmethod
    def pat_watchdog_threadsafe(self, name: str) -> None: ...

    @abstractmethod
    def add_web_route(
        self, server_name: str, method: str, path: str, handler: HTTPHandler, **kwargs: Any
    ) -> None:
        """Serve ``handler`` on a configured web server (before start). Not thread-safe."""

    @abstractmethod
    def link_state(self, link_name: str) -> str:
        """The current state of a link (see LinkState)."""


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
    construct it as ``Class(name, services, settings)``. Raises ConfigError naming the actor
    and what failed (module, class, type, or the constructor's own error)."""
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
        actor = cls(name, services, settings)  # type: ignore[call-arg]
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"actor {name}: {spec} rejected its settings: {e}") from e
    logging.getLogger("gwproactor.lifecycle").debug("loaded actor %s (%s)", name, spec)
    return actor
