"""The Proactor: one asyncio loop that owns the links, the receive queue and the actors.

Start order is dependency order (links, then the dispatcher, then actors); stop is the exact
reverse and is shielded from cancellation, so a stop that has begun always finishes (each
join bounded by ``stop_timeout_seconds``). A failing actor is isolated and reported, never
fatal to the gateway (hat's isolate-and-report, not TaskGroup semantics).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from result import Err, Ok, Result

from gwproactor.actor.communicator import (
    CommunicatorInterface,
    HTTPHandler,
    Runnable,
    ServicesInterface,
    load_actor,
)
from gwproactor.config import ProactorSettings
from gwproactor.errors import ConfigError, LinkError, RoutingError, StateError, StoreError
from gwproactor.events import EventFuture, EventManager
from gwproactor.links import Link, TransportFactory
from gwproactor.links._mqtt import mqtt_transport_factory
from gwproactor.mqtt import QOS, MQTTClients
from gwproactor.observe._problem_reporter import ProblemReporter
from gwproactor.observe.history import GatewayHistory
from gwproactor.observe.listeners import CommEvent, EventListener, ListenerHub
from gwproactor.observe.logger import ProactorLogger
from gwproactor.observe.recent_log import RecentLog
from gwproactor.observe.stats import ProactorStats
from gwproactor.routing import Dispatcher, InboundRouter, RawRouter, Routes
from gwproactor.runtime._health import GatewayHealth
from gwproactor.runtime._instance import InstanceLock
from gwproactor.runtime._lifecycle import Lifecycle, ProactorState
from gwproactor.runtime._reference_forms import (
    ProactorReferenceForms,
    constructor_arguments,
    start_as_task,
)
from gwproactor.runtime._shutdown import stop_parts
from gwproactor.store import EventStore, StoredEvent, StoreState
from gwproactor.web import WebManager
from gwproactor.wire.codec import MessageRegistry
from gwproactor.wire.codecs import codec_for_link
from gwproactor.wire.message import Event, Message, Payload

__all__ = ("Proactor",)

T = TypeVar("T")


class Proactor(ProactorReferenceForms, ServicesInterface):
    """A gateway's runtime. Construct (cheap, no I/O), add communicators, then ``await
    start()`` or ``await run_forever()`` on the loop that will own it.

    The constructor builds every part once, in dependency order (receive queue, raw routes,
    health, inbound router, links, store, events, problems, web, admin and configured
    actors) and hands each part what it uses; no part holds the Proactor. Its own life is a
    :class:`ProactorState` with one guarded setter: it runs once (``start`` twice, or after
    ``stop``, is a StateError), and ``send``/``publish`` after ``stop`` are refused.

    Thread rule: ``*_threadsafe`` methods may be called from any thread; everything else
    only on the proactor's loop. Errors: programming and lifecycle errors raise (subclasses
    of ProactorError); expected failures (a link that cannot take a message, a full store)
    come back as ``Result`` values.

    ``Proactor(settings, registry)`` is the native form; the reference's
    ``Proactor(name, settings)`` is accepted too (see :mod:`._reference_forms`).
    """

    def __init__(
        self,
        settings: ProactorSettings | str,
        registry: MessageRegistry | ProactorSettings | None = None,
        hardware_layout: None = None,
        *,
        transport_factory: TransportFactory | None = None,
        load_actors: bool = True,
        logger: ProactorLogger | None = None,
    ) -> None:
        settings, registry = constructor_arguments(settings, registry, hardware_layout)
        self._settings = settings
        self._name = settings.name
        self._logger = logger or ProactorLogger()
        self._lifecycle = self._logger.lifecycle_logger
        self._stats = ProactorStats()
        self.registry = registry or MessageRegistry()
        self.hub = ListenerHub()
        self.mqtt_clients = MQTTClients()
        self._transport_factory = transport_factory or mqtt_transport_factory(
            self.mqtt_clients, self._name, self._logger
        )
        self._communicators: dict[str, CommunicatorInterface] = {}
        self._routes = Routes()
        self._started_runnables: list[Runnable] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._life = Lifecycle(self._name, self._lifecycle)
        self._stop_requested: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._started_at = 0.0
        self._signalled = False
        # The parts, built once in dependency order; each is handed what it uses (none of
        # them sees the Proactor).
        self.links: dict[str, Link] = {}
        self.dispatcher = Dispatcher(
            settings,
            self._communicators,
            self._routes,
            transports=lambda: [link.transport for link in self.links.values()],
            stats=self._stats,
            hub=self.hub,
            report_problem=self.report_problem,
            logger=self._logger.child("dispatch"),
        )
        self.raw = RawRouter(  # raw messages arrive on the read path, drained right after
            self.links,
            put=self.dispatcher.put_quietly,
            hub=self.hub,
            report_problem=self.report_problem,
        )
        self.health = GatewayHealth(
            self._name,
            settings.watchdog,
            links=self.links,
            state=lambda: self._life.state,
            hub=self.hub,
            report_problem=self.report_problem,
            lifecycle_log=self._lifecycle,
        )
        self.watchdog = self.health.watchdog
        self.patter = self.health.patter
        # The last WARNING+ records of every part (the page's recent-log view), while running.
        self.recent_log = RecentLog(settings.web.recent_log_size)
        self.history = GatewayHistory(
            sample_seconds=settings.web.history_sample_seconds,
            backlog=lambda: self.store.pending_count,
        )
        self._inbound = InboundRouter(
            history=self.history,
            dispatcher=self.dispatcher,
            raw=self.raw,
            hub=self.hub,
            report_problem=self.report_problem,
            on_state_change=self._refresh_status_line,
            comm_log=self._logger.comm_event_logger,
        )
        for link_name, link_settings in settings.links.items():
            codec = codec_for_link(self._name, link_settings, self.registry)
            self.history.link(link_name)
            self.links[link_name] = Link(
                link_name,
                self._name,
                link_settings,
                codec,
                self._inbound,
                self._transport_factory,
                stats=self._stats.link(link_name),
                logger=self._logger.child(f"link.{link_name}"),
            )
        self.paths = settings.paths.resolve(self._name)
        self._instance_lock = InstanceLock(self.paths.state_dir)
        self.store = EventStore(
            self.paths.store_file, settings.store, on_problem=self._on_store_problem
        )
        self.events = EventManager(
            settings,
            self.store,
            self.upstream_link,
            stats=self._stats,
            hub=self.hub,
            target=self.dispatcher.event_target,
            deliver=self.dispatcher.put,
            registry=self.registry,
            report_problem=self.report_problem,
            logger=self._logger.child("events"),
            hold_reading=lambda link: self.dispatcher.hold_reading(link.transport),
            release_reading=self.dispatcher.release_held,
        )
        self._inbound.bind_events(self.events)
        self.problems = ProblemReporter(
            settings.problem_report_interval_seconds,
            stats=self._stats,
            hub=self.hub,
            logger=self._logger.general,
            generate_event=self.generate_event,
            can_store=lambda: self.store.state is StoreState.RUNNING,
        )
        self.web = WebManager(self)
        admin_links = [n for n, link in settings.links.items() if link.role == "admin"]
        if admin_links:
            # Imported only by gateways with an admin link (start-up time and memory: its
            # payload models are built when the module loads).
            from gwproactor.actor.admin import ADMIN_ACTOR, AdminCommander
            from gwproactor.actor.admin import COMMANDS as ADMIN_COMMANDS

            admin_link = admin_links[0]
            self.add_communicator(
                AdminCommander(
                    self,
                    admin_link,
                    admin_peer=self.links[admin_link].peer,
                    status=self.status,
                    restart_actor=self.restart_actor,
                )
            )
            for command in ADMIN_COMMANDS:
                self.route(command.type_name, ADMIN_ACTOR)
        if load_actors:
            for actor_name, actor_settings in settings.actors.items():
                self.add_communicator(load_actor(actor_name, actor_settings, self))
                for message_type in actor_settings.handles:
                    self.route(message_type, actor_name)

    # -- ServicesInterface: facts -----------------------------------------------------------

    @property
    def name(self) -> str:
        """The gateway's name (its long name on the wire: ``settings.name``)."""
        return self._name

    @property
    def settings(self) -> ProactorSettings:
        """The settings this proactor was built from (read-only by convention)."""
        return self._settings

    @property
    def logger(self) -> ProactorLogger:
        """The category loggers (general, message summary, lifecycle, comm events)."""
        return self._logger

    @property
    def stats(self) -> ProactorStats:
        """Counters of the whole gateway, including each link's. Loop-owned."""
        return self._stats

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop that owns the proactor, once ``start`` ran; ``None`` before."""
        return self._loop

    @property
    def state(self) -> ProactorState:
        """Where the proactor is in its life (a ``str`` enum: constructed, starting,
        running, stopping, stopped)."""
        return self._life.state

    @property
    def receive_queue_depth(self) -> int:
        """Messages waiting in the receive queue now."""
        return self.dispatcher.depth

    @property
    def reading_paused(self) -> bool:
        """Whether links stopped reading their sockets because the receive queue is full."""
        return self.dispatcher.paused

    @property
    def ready(self) -> bool:
        """Running, and every link active."""
        return self._life.state is ProactorState.running and all(
            link.active for link in self.links.values()
        )

    @property
    def uptime_seconds(self) -> float:
        """Monotonic seconds since ``start`` completed; 0.0 before."""
        return time.monotonic() - self._started_at if self._started_at else 0.0

    def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot (see :mod:`gwproactor.runtime._status`); no secrets in it."""
        from gwproactor.runtime._status import build_status  # not needed to start

        return build_status(self)

    def link(self, name: str) -> Link:
        """The link named ``name``. Raises LinkError naming the links there are."""
        try:
            return self.links[name]
        except KeyError:
            raise LinkError(f"no link named {name!r}; links: {sorted(self.links)}") from None

    def link_state(self, link_name: str) -> str:
        """The state of link ``link_name`` as a string. Raises LinkError."""
        return self.link(link_name).state.value

    @property
    def upstream_link(self) -> Link | None:
        """The link of role ``upstream`` (the one events are uploaded on), if any."""
        name = self._settings.upstream_link
        return self.links[name] if name is not None else None

    # -- communicators ----------------------------------------------------------------------

    def add_communicator(self, communicator: CommunicatorInterface) -> None:
        """Make ``communicator`` reachable by its name. Before start, or while running (a
        Runnable added while running is started at once). Payload types listed in its
        ``payload_types`` class attribute are registered with every link's codec. Raises
        ValueError on a name clash or a type name registered twice."""
        name = communicator.name
        if name in self._communicators or name in self.links or name == self._name:
            raise ConfigError(f"communicator name {name!r} is taken")
        self._communicators[name] = communicator
        payload_types = getattr(communicator, "payload_types", ())
        if payload_types:
            self.registry.register(*payload_types)
            for link in self.links.values():
                link.codec.refresh()
        for monitored in communicator.monitored_names:
            self.watchdog.register(monitored)
        if self.state is ProactorState.running and isinstance(communicator, Runnable):
            self._start_runnable(communicator)

    async def restart_actor(self, name: str) -> Result[None, Exception]:
        """Stop an actor loaded from the config, join it (bounded), load it anew and start
        it. Err if there is no such configured actor or it fails to come back."""
        actor_settings = self._settings.actors.get(name)
        old = self._communicators.get(name)
        if actor_settings is None or old is None:
            return Err(KeyError(f"no configured actor {name!r}"))
        if isinstance(old, Runnable):
            old.stop()
            try:
                await asyncio.wait_for(old.join(), self._settings.stop_timeout_seconds)
            except TimeoutError:
                return Err(TimeoutError(f"{name} did not stop"))
            if old in self._started_runnables:
                self._started_runnables.remove(old)
        for monitored in old.monitored_names:
            self.watchdog.unregister(monitored.name)
        del self._communicators[name]
        try:
            self.add_communicator(load_actor(name, actor_settings, self))
        except Exception as e:  # noqa: BLE001  (reported to the admin as the command's result)
            return Err(e)
        return Ok(None)

    @property
    def routes(self) -> Routes:
        """Message type (or pattern) -> communicator, for link messages and events that
        name no actor; ``routes.get(type_name)`` resolves patterns."""
        return self._routes

    def route(self, message_type: str, communicator_name: str) -> None:
        """Send link messages and events of ``message_type`` that name no actor to this
        communicator. ``message_type`` may be a pattern (``site.*``: ``site`` and every
        type below it; ``gw.?.state``: one level); an exact type wins over patterns, else
        the first pattern routed. Raises ConfigError (InvalidNameError for a bad type name)
        for a key that could never match."""
        self._routes.add(message_type, communicator_name)

    def get_communicator(self, name: str) -> CommunicatorInterface | None:
        """The communicator named ``name``, or ``None``."""
        return self._communicators.get(name)

    def get_communicator_as_type(self, name: str, type_: type[T]) -> T | None:
        """The communicator named ``name`` if it is a ``type_``, else ``None``."""
        communicator = self._communicators.get(name)
        return communicator if isinstance(communicator, type_) else None

    @property
    def communicators(self) -> dict[str, CommunicatorInterface]:
        """A copy of the name -> communicator table (actors, admin)."""
        return dict(self._communicators)

    # -- listeners --------------------------------------------------------------------------

    def listener(
        self,
        names: Iterable[str] | str | None = None,
        predicate: Callable[[CommEvent], bool] | None = None,
        *,
        history: int = 10_000,
        max_queued: int = 100_000,
    ) -> EventListener:
        """A listener for comm events; registered while used as ``with``."""
        return self.hub.listener(names, predicate, history=history, max_queued=max_queued)

    def listen(
        self, *listeners: EventListener
    ) -> AbstractContextManager[tuple[EventListener, ...]]:
        """Register several listeners for one ``with`` block (see ``ListenerHub.listen``)."""
        return self.hub.listen(*listeners)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Start the store, links, the dispatcher, actors, the web servers and the
        watchdogs, in that order, as a task: ``await start()`` returns when all started
        (links are connecting, not necessarily active). A proactor runs once: StateError
        if it was started or stopped before. If a part fails to start, every part started
        so far is stopped (the proactor ends ``stopped``) and the error is raised.
        Cancelling the caller stops the parts the same way. Loop: call it on the loop that
        will own the proactor. A plain ``start()`` there (the reference's form) begins the
        same start-up; without a running loop it raises StateError at once."""
        return start_as_task(self._start(), f"proactor[{self._name}].start")

    async def _start(self) -> None:
        self._life.require("start()", ProactorState.constructed)
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self._stopped = asyncio.Event()
        try:
            self.paths.ensure()
            self._instance_lock.acquire()  # one instance per gateway: before the store opens
        except BaseException:
            # Refused before anything started (another process runs this gateway, say):
            # nothing to stop, and no "starting"/"stopping"/"stopped" lines, which would
            # read as if the running gateway had stopped. The caller says why.
            self._life.set(ProactorState.stopped)
            self._stopped.set()
            self._stop_requested.set()
            raise
        self._life.set(ProactorState.starting)
        self._logger.general.addHandler(self.recent_log)  # removed once stopped
        self._lifecycle.info("%s starting", self._name)
        try:
            await self.store.start()
            self._abort_if_stop_requested()
            self.events.start()
            # Before the links start: nothing newer may overtake what is still owed.
            await self.events.load_undelivered()
            self._abort_if_stop_requested()
            self.events.warn_if_stranded()

            for link in self.links.values():
                link.start()
            self.dispatcher.start(f"proactor[{self._name}].dispatch")
            self.events.redeliver()
            for communicator in self._communicators.values():
                if isinstance(communicator, Runnable):
                    self._start_runnable(communicator)
            await self.web.start()
            self._abort_if_stop_requested()
            self.watchdog.start()
            self.patter.start()
            self.history.start(self._loop.call_later)
        except BaseException:
            await self._shutdown()
            raise
        self._life.set(ProactorState.running)
        self._started_at = time.monotonic()
        self.patter.ready(self.status_line())
        self._lifecycle.info("%s running", self._name)

    def _abort_if_stop_requested(self) -> None:
        """After each await of start-up: a ``stop()`` that came meanwhile ends the start
        here, and start-up's error path stops what was started (a shutdown running beside
        the start would miss the parts started after it passed them)."""
        assert self._stop_requested is not None
        if self._stop_requested.is_set():
            raise StateError(f"{self._name}: stopped while starting")

    def _start_runnable(self, runnable: Runnable) -> None:
        runnable.start()
        self._started_runnables.append(runnable)

    def stop(self) -> None:
        """Ask the proactor to stop. Returns at once; ``join`` waits. Idempotent while
        starting, running or stopping. While starting, the start ends at its next step
        (``start()`` then raises StateError) and stops what it had started. Before
        ``start`` it marks the proactor stopped (a later ``start`` raises StateError) and
        logs that nothing was running. Loop-only."""
        if self._stop_requested is None:
            if self._life.state is ProactorState.constructed:
                self._lifecycle.info("%s: stop() before start(): nothing to stop", self._name)
                self._life.set(ProactorState.stopped)
            return
        self._stop_requested.set()
        if self._life.state is ProactorState.starting:
            return  # start-up sees it at its next step and stops what it started
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(
                self._shutdown(), name=f"proactor[{self._name}].stop"
            )

    def stop_threadsafe(self) -> None:
        """``stop`` from any thread; a no-op before ``start``."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.stop)

    async def join(self) -> None:
        """Wait until the proactor has stopped completely."""
        if self._stopped is not None:
            await self._stopped.wait()

    async def stop_and_join(self) -> None:
        """``stop``, then wait until stopped. Cancelling the wait does not cancel the
        stop, which is shielded and finishes on its own."""
        self.stop()
        await self.join()

    async def run_forever(self, *, handle_signals: bool = True) -> None:
        """Start, run until ``stop`` (or SIGTERM/SIGINT when ``handle_signals`` and on the
        main thread), then stop cleanly. The signal handlers are in place before ``start``:
        a signal that arrives while the proactor starts stops it as soon as it is running
        (never the default action, which would kill it without a clean stop)."""
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        self._signalled = False
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        try:
            await self.start()
            assert self._stop_requested is not None
            if self._signalled:
                self.stop()
            await self._stop_requested.wait()
            self.stop()
            await self.join()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._lifecycle.info("%s: %s, stopping", self._name, sig.name)
        if self._life.state in (ProactorState.constructed, ProactorState.starting):
            self._signalled = True  # run_forever stops it once start() has returned
        else:
            self.stop()

    async def _shutdown(self) -> None:
        # Shielded: a cancelled caller must not leave links half-closed or threads running.
        await asyncio.shield(self._shutdown_inner())

    async def _shutdown_inner(self) -> None:
        if self._life.state in (ProactorState.stopping, ProactorState.stopped):
            if self._stopped is not None:
                await self._stopped.wait()
            return
        self._life.set(ProactorState.stopping)
        self._lifecycle.info("%s stopping", self._name)
        self.history.stop()
        errors = await stop_parts(
            self._name,
            patter=self.patter,
            watchdog=self.watchdog,
            web=self.web,
            links=self.links,
            dispatcher=self.dispatcher,
            runnables=self._started_runnables,
            mqtt_clients=self.mqtt_clients,
            store=self.store,
            flush_delivered=self.events.flush_delivered,
            timeout=self._settings.stop_timeout_seconds,
            log=self._lifecycle,
        )
        for error in errors:
            self._lifecycle.error("%s: error while stopping: %s", self._name, error)
        self._instance_lock.release()  # last: the store is closed
        self._life.set(ProactorState.stopped)
        self._lifecycle.info("%s stopped", self._name)
        self._logger.general.removeHandler(self.recent_log)
        if self._stopped is not None:
            self._stopped.set()
        if self._stop_requested is not None:
            self._stop_requested.set()

    # -- the receive queue ------------------------------------------------------------------

    def send(self, message: Message[Any]) -> None:
        """Queue ``message`` for the communicator its ``dst`` names (dispatched on the loop,
        never in this call). Raises QueueFullError at twice the queue bound and StateError
        once the proactor is stopping or stopped. Loop-only."""
        self._require_not_stopped("send()")
        self.dispatcher.send(message)

    def send_threadsafe(self, message: Message[Any]) -> None:
        """:meth:`send` from a worker thread: blocks (bounded by ``stop_timeout_seconds``)
        while the queue is full. Raises QueueFullError if it stays full, StateError before
        start or once stopping. Any thread."""
        self._require_not_stopped("send_threadsafe()")
        self.dispatcher.send_threadsafe(message)

    def _require_not_stopped(self, action: str) -> None:
        if self._life.state in (ProactorState.stopping, ProactorState.stopped):
            raise StateError(f"{self._name}: {action} after stop(); the proactor is {self.state}")

    def _refresh_status_line(self) -> None:
        if self._life.state is ProactorState.running:
            self.patter.set_status(self.status_line())

    # -- links ------------------------------------------------------------------------------

    def publish(self, message: Message[Any], link_name: str | None = None) -> Result[None, Any]:
        """Publish ``message`` on ``link_name``, or on the link whose peer is
        ``message.dst``. Err(RoutingError) when no link leads there, Err(StateError) once
        stopped, Err(LinkError) when the link cannot take it now. Loop-only."""
        if self._life.state in (ProactorState.stopping, ProactorState.stopped):
            return Err(StateError(f"{self._name}: publish() after stop()"))
        if link_name is None:
            link_name = next((n for n, lk in self.links.items() if lk.peer == message.dst), None)
            if link_name is None:
                return Err(RoutingError(f"no link to {message.dst!r}"))
        return self.link(link_name).publish(message)

    def send_to_peer(
        self,
        link_name: str,
        payload: Payload,
        *,
        actor: str = "",
        ack_required: bool = False,
    ) -> Result[None, Any]:
        """Wrap ``payload`` in a message to the peer of link ``link_name`` (to actor
        ``actor`` there, if given) and publish it. Returns the link's Result (Err(LinkError)
        when it cannot take it now); raises LinkError for an unknown link. Loop-only; from a
        worker thread use ``send_to_peer_threadsafe``."""
        return self.link(link_name).send(payload, ack_required=ack_required, actor=actor)

    def subscribe_raw(
        self,
        link_name: str,
        topic_filter: str,
        communicator_name: str,
        *,
        payload_type: type[Payload] | None = None,
        qos: QOS | None = None,
    ) -> None:
        """Deliver messages on ``topic_filter`` (any MQTT filter outside ``gw/``) of link
        ``link_name`` to ``communicator_name``, through the receive queue like any other
        message, as a :class:`RawMessage` (bytes, topic, link). With ``payload_type`` the
        JSON is also validated into that model (``RawMessage.parsed``); failures are counted
        as ``raw_decode_errors``, reported, and not delivered. Subscribing the same filter
        for the same communicator again replaces the earlier route. Loop-only."""
        self.raw.subscribe(self.link(link_name), topic_filter, communicator_name, payload_type, qos)

    def unsubscribe_raw(self, link_name: str, topic_filter: str, communicator_name: str) -> None:
        """Undo :meth:`subscribe_raw` for one communicator. Loop-only."""
        self.raw.unsubscribe(self.link(link_name), topic_filter, communicator_name)

    def publish_raw(
        self,
        link_name: str,
        topic: str,
        payload: bytes | Payload,
        *,
        qos: QOS | None = None,
        retain: bool = False,
    ) -> Result[None, LinkError]:
        """Publish raw bytes, or a payload model as plain JSON, on any topic of a link."""
        return self.raw.publish(self.link(link_name), topic, payload, qos, retain)

    # -- events ---------------------------------------------------------------------------------

    def generate_event(self, event: Event) -> EventFuture:
        """Store ``event`` durably, then publish it upstream (write-ahead). The
        future resolves to Ok(event id) once committed, or Err(StoreError) if the store
        refused it (full with ``refuse_new``, or failing); once done it also answers
        ``is_ok()``/``is_err()`` (the reference's form). Cancelling the future does not
        un-store the event. Loop-only."""
        return self.events.generate_event(event)

    def generate_event_threadsafe(self, event: Event) -> Result[str, StoreError]:
        """``generate_event`` from a worker thread: blocks until the event is
        committed (or refused) and returns the Result. Never call it on the loop."""
        return self.events.generate_event_threadsafe(event)

    def is_redelivery(self, message: Message[Any]) -> bool:
        return self.events.is_redelivery(message)

    async def query_events(
        self,
        pattern: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 100,
        pending: bool | None = None,
        *,
        latest: bool = False,
    ) -> list[StoredEvent]:
        """Stored events by type pattern (``?`` one level, ``*`` any suffix), wall-clock
        time range (ns) and limit, oldest first; with ``latest`` the last ``limit`` of
        them (still oldest first)."""
        return await self.events.query(pattern, start_ns, end_ns, limit, pending, latest=latest)

    def _on_store_problem(self, kind: str, detail: str) -> None:
        # Logged, counted, emitted and shown in /status, but not stored as an event: a
        # problem of the store stored in that store feeds on itself (found by the tests).
        self.problems.report(f"store: {kind}", detail, key=kind, store=False, kind="store")

    # -- problems ---------------------------------------------------------------------------

    def report_problem(
        self,
        summary: str,
        details: str = "",
        *,
        error: bool = True,
        key: str | None = None,
        kind: str | None = None,
    ) -> None:
        """Log, count, emit and store a problem; rate-limited per ``key`` (default: the
        summary) to one per ``problem_report_interval_seconds``. ``kind`` labels the
        ``problems_total`` metric (default: ``key`` up to its first ``:``)."""
        self.problems.report(summary, details, error=error, key=key, kind=kind)

    def report_problem_threadsafe(
        self, summary: str, details: str = "", *, error: bool = True
    ) -> None:
        """``report_problem`` from any thread (queued to the loop)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(
                lambda: self.report_problem(summary, details, error=error, kind="thread")
            )

    # -- watchdog (the daemon work adds the external side) ----------------------------------------

    def pat_watchdog(self, name: str) -> None:
        """Tell the internal watchdog that monitored ``name`` is alive. Loop-only."""
        self.watchdog.pat(name)

    def pat_watchdog_threadsafe(self, name: str) -> None:
        """``pat_watchdog`` from any thread."""
        self.watchdog.pat_threadsafe(name)

    def status_line(self) -> str:
        """One line for systemd's STATUS= and the CLI: the state of every link."""
        return self.health.status_line()

    # -- web (served by the daemon work) ----------------------------------------------------------

    def add_web_server_config(self, name: str, host: str, port: int, **kwargs: Any) -> None:
        """Configure a named web server, started with the proactor. Not thread-safe."""
        self.web.add_server(name, host, port, **kwargs)

    def add_web_route(
        self, server_name: str, method: str, path: str, handler: HTTPHandler, **kwargs: Any
    ) -> None:
        """Serve ``handler`` on the named server (ignored if that server is not configured).
        Before start. Not thread-safe."""
        self.web.add_route(server_name, method, path, handler, **kwargs)
