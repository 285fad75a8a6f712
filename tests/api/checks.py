"""One check per working name of the API reference: the documented call, and its effect.

Each check is written as code coming from the reference would be written (its constructor
forms, positional arguments and member names) and asserts what the reference says the
member does. A check may serve several names; :data:`CHECKS` maps each name to its check.
Checks that need a real broker or running gateways get them from :class:`Env`, which starts
them on demand and stops them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aiohttp
import pytest
from aiohttp import web
from result import Ok, Result

from gwproactor import (
    QOS,
    Actor,
    ActorInterface,
    ActorSettings,
    AsyncQueueWriter,
    BrokerSettings,
    Communicator,
    CommunicatorInterface,
    Event,
    ExternalWatchdogCommandBuilder,
    LinkSettings,
    Message,
    MonitoredName,
    MQTTClients,
    MQTTClientWrapper,
    Proactor,
    ProactorLogger,
    ProactorSettings,
    ProactorStats,
    ProblemEvent,
    Problems,
    Runnable,
    ServicesInterface,
    StateError,
    Subscription,
    SyncAsyncInteractionThread,
    SyncAsyncQueueWriter,
    SyncThreadActor,
    format_exceptions,
    load_settings,
    responsive_sleep,
    setup_logging,
)
from gwproactor.config import LoggingSettings, PathSettings
from gwproactor.mqtt._reference_forms import QueueListener
from gwproactor.wire.message import RawMessage
from tests.helpers import REGISTRY, Counted, Hello, record_events, wait_active, wait_until

if TYPE_CHECKING:
    from tests.support.fixtures import MosquittoFactory

__all__ = ("CHECKS", "Check", "Env", "InitActor", "check")

T = TypeVar("T")
TIMEOUT = 10.0
Check = Callable[["Env"], Awaitable[None]]
CHECKS: dict[str, Check] = {}


def now(get: Callable[[], T]) -> T:
    """``get()``: a fresh read of a property that mypy narrowed by an earlier assert."""
    return get()


def check(*names: str) -> Callable[[Check], Check]:
    """Register ``fn`` as the check of each of ``names`` (names of the reference)."""

    def register(fn: Check) -> Check:
        for name in names:
            if name in CHECKS:
                raise ValueError(f"{name} has two checks")
            CHECKS[name] = fn
        return fn

    return register


@dataclass
class Env:
    """What checks need, made on demand: a real mosquitto and gateways on it (stopped by
    :meth:`close`, whatever the check did)."""

    brokers: MosquittoFactory
    tmp_path: Path
    _broker: BrokerSettings | None = None
    _started: list[Proactor] = field(default_factory=list)

    def broker(self) -> BrokerSettings:
        if self._broker is None:
            broker = self.brokers(name="api")
            self._broker = BrokerSettings(
                port=broker.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5
            )
        return self._broker

    def pair_settings(self) -> tuple[ProactorSettings, ProactorSettings]:
        """A parent with a downstream link to a child, and the child's upstream link
        (marked primary), on the broker."""
        broker = self.broker()
        down = LinkSettings(peer="child", role="downstream", broker=broker)
        up = LinkSettings(peer="parent", role="upstream", broker=broker, primary=True)
        return (
            ProactorSettings(name="parent", links={"child": down}),
            ProactorSettings(name="child", links={"parent": up}),
        )

    async def start(self, *proactors: Proactor) -> None:
        for proactor in proactors:
            await proactor.start()
            self._started.append(proactor)

    async def pair(
        self, before_start: Callable[[Proactor, Proactor], None] | None = None
    ) -> tuple[Proactor, Proactor]:
        """Started parent and child whose links are active."""
        parent_settings, child_settings = self.pair_settings()
        parent = Proactor(parent_settings, REGISTRY)
        child = Proactor(child_settings, REGISTRY)
        if before_start is not None:
            before_start(parent, child)
        await self.start(parent, child)
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        return parent, child

    async def lone(self, name: str = "lone") -> Proactor:
        """A started gateway without links."""
        proactor = Proactor(ProactorSettings(name=name), REGISTRY)
        await self.start(proactor)
        return proactor

    def forget(self, proactor: Proactor) -> None:
        """A check stopped ``proactor`` itself."""
        self._started.remove(proactor)

    async def close(self) -> None:
        for proactor in reversed(self._started):
            await asyncio.wait_for(proactor.stop_and_join(), TIMEOUT)
        self._started.clear()


class Collector(Communicator):
    """Records messages (an actor written the reference's way: ``Ok(True)``)."""

    def __init__(self, name: str, services: ServicesInterface) -> None:
        super().__init__(name, services)
        self.received: list[Message[Any]] = []

    def process_message(self, message: Message[Any]) -> Result[bool, BaseException]:
        self.received.append(message)
        return Ok(True)


async def dispatched(proactor: Proactor, done: Callable[[], bool]) -> None:
    """Wait until ``done()``, woken by the proactor's dispatches."""
    with proactor.listener("message.dispatched") as heard:
        await wait_until(done, heard, TIMEOUT)


# -- actors and communicators -------------------------------------------------------------------


class EchoActor(Actor):
    """Documented form: ``Actor(name, services)``; ``process_message`` returns ``Ok(True)``."""

    def __init__(self, name: str, services: ServicesInterface) -> None:
        super().__init__(name, services)
        self.seen: list[Message[Any]] = []
        self.started = False

    def start(self) -> None:
        self.started = True

    def process_message(self, message: Message[Any]) -> Result[bool, BaseException]:
        self.seen.append(message)
        return Ok(True)


@check(
    "Actor",
    "Communicator",
    "Communicator.name",
    "Communicator.services",
    "CommunicatorInterface",
    "CommunicatorInterface.name",
    "CommunicatorInterface.services",
    "CommunicatorInterface.process_message",
    "Proactor.add_communicator",
    "Proactor.get_communicator",
    "Proactor.get_communicator_as_type",
    "ServicesInterface",
    "ServicesInterface.get_communicator",
    "ServicesInterface.get_communicator_as_type",
)
async def check_actor_receives_from_the_peer(env: Env) -> None:
    parent, child = await env.pair()
    services: ServicesInterface = child
    echo = EchoActor("echo", services)
    child.add_communicator(echo)
    assert echo.started  # a Runnable added while running starts at once
    typed: CommunicatorInterface = echo
    assert typed.name == "echo" and typed.services is child
    assert services.get_communicator("echo") is echo
    assert services.get_communicator("nobody") is None
    assert services.get_communicator_as_type("echo", EchoActor) is echo
    assert services.get_communicator_as_type("echo", SyncThreadActor) is None
    assert parent.send_to_peer("child", Hello(n=7), actor="echo").is_ok()
    await dispatched(child, lambda: bool(echo.seen))
    assert echo.seen[0].payload == Hello(n=7)
    assert isinstance(echo, Communicator)


class InitActor(Actor):
    """Loaded by name (``ActorInterface.load``, or a config's ``class``); ``init`` runs
    after construction. Records what it is given."""

    def __init__(
        self, name: str, services: ServicesInterface, settings: ActorSettings | None = None
    ) -> None:
        super().__init__(name, services, settings)
        self.initialised = False
        self.seen: list[Message[Any]] = []

    def init(self) -> None:
        self.initialised = True

    def process_message(self, message: Message[Any]) -> Result[None, Exception]:
        self.seen.append(message)
        return Ok(None)


@check("Actor.init", "ActorInterface", "ActorInterface.init", "ActorInterface.load")
async def check_load_by_class_name(env: Env) -> None:
    services = Proactor(ProactorSettings(name="loader"))
    actor = ActorInterface.load("dev1", "InitActor", services, __name__)
    assert isinstance(actor, InitActor) and isinstance(actor, ActorInterface)
    assert actor.name == "dev1" and actor.services is services
    assert actor.initialised


class Ticker(Runnable):
    def __init__(self) -> None:
        self.events: list[str] = []
        self._stopped = asyncio.Event()

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> None:
        self.events.append("stop")
        self._stopped.set()

    async def join(self) -> None:
        await self._stopped.wait()
        self.events.append("joined")


@check("Runnable", "Runnable.start", "Runnable.stop", "Runnable.join", "Runnable.stop_and_join")
async def check_runnable(env: Env) -> None:
    ticker = Ticker()
    ticker.start()
    await asyncio.wait_for(ticker.stop_and_join(), TIMEOUT)
    assert ticker.events == ["start", "stop", "joined"]


class Beating(Collector):
    @property
    def monitored_names(self) -> tuple[MonitoredName, ...]:
        return (MonitoredName("beating.heart", 30.0),)


@check(
    "Communicator.monitored_names",
    "CommunicatorInterface.monitored_names",
    "MonitoredName",
    "MonitoredName.name",
    "MonitoredName.timeout_seconds",
    "Proactor.monitored_names",
)
async def check_monitored_names_reach_the_watchdog(env: Env) -> None:
    proactor = Proactor(ProactorSettings(name="beat"))
    assert Collector("plain", proactor).monitored_names == ()
    proactor.add_communicator(Beating("beating", proactor))
    names = {m.name: m.timeout_seconds for m in proactor.monitored_names}
    assert names["beating.heart"] == 30.0
    heart = MonitoredName("beating.heart", 30.0)
    assert (heart.name, heart.timeout_seconds) == ("beating.heart", 30.0)


# -- thread actors ----------------------------------------------------------------------------


class Doubler(SyncAsyncInteractionThread):
    """Answers Hello(n) with Hello(2n) to ``reply_to``, from its own thread."""

    def __init__(self, gateway: str, reply_to: str) -> None:
        super().__init__(name="doubler", iterate_sleep_seconds=3600.0, pat_timeout=5.0)
        self.gateway = gateway
        self.reply_to = reply_to
        self.raw: list[Any] = []
        self.thread_ids: set[int] = set()

    def _ext_handle_message(self, message: Any) -> None:
        self.thread_ids.add(threading.get_ident())
        if isinstance(message, Message) and isinstance(message.payload, Hello):
            reply = Message.create(self.gateway, self.reply_to, Hello(n=2 * message.payload.n))
            self.channel.put_to_async_queue(reply)
        else:
            self.raw.append(message)


@check(
    "SyncThreadActor",
    "SyncThreadActor.start",
    "SyncThreadActor.stop",
    "SyncThreadActor.join",
    "SyncThreadActor.process_message",
    "SyncThreadActor.send_driver_message",
    "SyncThreadActor.monitored_names",
    "SyncAsyncInteractionThread",
    "SyncAsyncInteractionThread.run",
    "SyncAsyncInteractionThread.request_stop",
    "SyncAsyncInteractionThread.running",
    "SyncAsyncInteractionThread.pat_timeout",
    "Proactor.send",
)
async def check_thread_actor(env: Env) -> None:
    proactor = Proactor(ProactorSettings(name="gw"))
    thread = Doubler("gw", reply_to="collector")
    actor = SyncThreadActor("dev", proactor, thread)  # the documented positional form
    collector = Collector("collector", proactor)
    proactor.add_communicator(actor)
    proactor.add_communicator(collector)
    assert actor.thread is thread and thread.running is None
    assert thread.pat_timeout == 5.0
    assert actor.monitored_names == (MonitoredName("thread.doubler", 5.0),)
    await env.start(proactor)
    assert now(lambda: thread.running) is True
    proactor.send(Message.create("gw", "dev", Hello(n=21)))
    await dispatched(proactor, lambda: bool(collector.received))
    assert collector.received[0].payload == Hello(n=42)
    assert threading.get_ident() not in thread.thread_ids
    assert actor.send_driver_message({"raw": 1}).is_ok()
    assert actor.process_message(Message.create("gw", "dev", Hello(n=1))).is_ok()
    await dispatched(proactor, lambda: len(collector.received) == 2)
    assert thread.raw == [{"raw": 1}]
    actor.stop()
    await asyncio.wait_for(actor.join(), TIMEOUT)
    assert now(lambda: thread.running) is False and not thread.is_alive()


class Echoing(SyncAsyncInteractionThread):
    """Sends back what it gets; pats while handling."""

    def _ext_handle_message(self, message: Any) -> None:
        self.pat_watchdog()
        self.channel.put_to_async_queue((message, self.time_to_pat()))


@check(
    "SyncAsyncInteractionThread.set_async_loop",
    "SyncAsyncInteractionThread.set_async_loop_and_start",
    "SyncAsyncInteractionThread.put_to_sync_queue",
    "SyncAsyncInteractionThread.async_join",
    "SyncAsyncInteractionThread.pat_watchdog",
    "SyncAsyncInteractionThread.time_to_pat",
    "SyncAsyncInteractionThread.PAT_TIMEOUT",
    "SyncAsyncInteractionThread.SLEEP_STEP_SECONDS",
    "SyncAsyncInteractionThread.JOIN_CHECK_THREAD_SECONDS",
    "SyncAsyncQueueWriter",
    "SyncAsyncQueueWriter.set_async_loop",
    "SyncAsyncQueueWriter.put_to_async_queue",
    "SyncAsyncQueueWriter.sync_queue",
)
async def check_thread_with_its_own_queues(env: Env) -> None:
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[tuple[Any, bool]] = asyncio.Queue()
    pats: list[str] = []
    thread = Echoing(
        channel=SyncAsyncQueueWriter(),
        name="echo",
        iterate_sleep_seconds=3600.0,
        responsive_sleep_step_seconds=0.1,
        pat_timeout=3600.0,
        on_pat=pats.append,
    )
    assert isinstance(thread.channel.sync_queue, queue.Queue)
    thread.set_async_loop_and_start(loop, replies)
    try:
        assert thread.put_to_sync_queue("ping").is_ok()
        assert await asyncio.wait_for(replies.get(), TIMEOUT) == ("ping", False)
        assert "thread.echo" in pats
    finally:
        thread.request_stop()
        await asyncio.wait_for(thread.async_join(TIMEOUT), TIMEOUT * 2)
    assert not thread.is_alive()
    overdue = SyncAsyncInteractionThread(name="overdue", pat_timeout=0.0)
    assert overdue.time_to_pat()
    assert SyncAsyncInteractionThread(name="d").pat_timeout == (
        SyncAsyncInteractionThread.PAT_TIMEOUT
    )
    assert SyncAsyncInteractionThread.SLEEP_STEP_SECONDS > 0
    assert SyncAsyncInteractionThread.JOIN_CHECK_THREAD_SECONDS > 0
    standalone = SyncAsyncInteractionThread(name="ws")
    standalone.set_async_loop(loop, cast("asyncio.Queue[Any]", replies))
    await asyncio.to_thread(standalone.channel.put_to_async_queue, ("direct", True))
    assert await asyncio.wait_for(replies.get(), TIMEOUT) == ("direct", True)


@check(
    "SyncAsyncQueueWriter.put_to_sync_queue",
    "SyncAsyncQueueWriter.get_from_sync_queue",
    "AsyncQueueWriter",
    "AsyncQueueWriter.put",
    "AsyncQueueWriter.set_async_loop",
)
async def check_queue_writers(env: Env) -> None:
    given: queue.Queue[Any] = queue.Queue()
    writer: SyncAsyncQueueWriter[Any] = SyncAsyncQueueWriter(given)
    assert writer.sync_queue is given
    assert writer.put_to_sync_queue("a").is_ok()
    assert writer.put_to_sync_queue("b", True, 1.0).is_ok()
    assert writer.get_from_sync_queue() == "a"
    assert writer.get_from_sync_queue(True, 1.0) == "b"
    with contextlib.suppress(queue.Empty):
        writer.get_from_sync_queue(False)
        raise AssertionError("an empty queue must raise queue.Empty")
    bounded: SyncAsyncQueueWriter[Any] = SyncAsyncQueueWriter(queue.Queue(maxsize=1))
    assert bounded.put_to_sync_queue(1).is_ok()
    assert bounded.put_to_sync_queue(2).is_err()
    items: asyncio.Queue[int] = asyncio.Queue()
    async_writer: AsyncQueueWriter[int] = AsyncQueueWriter()
    async_writer.set_async_loop(asyncio.get_running_loop(), items)
    await asyncio.to_thread(async_writer.put, 5)
    assert await asyncio.wait_for(items.get(), TIMEOUT) == 5


class _Flag:
    def __init__(self, running: bool) -> None:
        self._main_loop_running = running


@check("responsive_sleep")
async def check_responsive_sleep(env: Env) -> None:
    assert responsive_sleep(_Flag(False), 30.0) is False  # not running: returns at once
    started = time.monotonic()
    assert responsive_sleep(_Flag(True), 0.05, step_duration=0.01) is True
    assert time.monotonic() - started >= 0.04


# -- watchdog ------------------------------------------------------------------------------


@check(
    "ExternalWatchdogCommandBuilder",
    "ExternalWatchdogCommandBuilder.service_variable_name",
    "ExternalWatchdogCommandBuilder.running_as_service",
    "ExternalWatchdogCommandBuilder.pat_args",
    "ExternalWatchdogCommandBuilder.default_pat_args",
    "Proactor.get_external_watchdog_builder_class",
    "ServicesInterface.get_external_watchdog_builder_class",
)
async def check_external_watchdog_builder(env: Env) -> None:
    services: ServicesInterface = Proactor("site-1", ProactorSettings())
    builder = services.get_external_watchdog_builder_class()
    assert builder is ExternalWatchdogCommandBuilder
    variable = builder.service_variable_name(services.name)
    assert variable == "SITE_1_RUNNING_AS_SERVICE"
    with _environment(variable, None):
        assert not builder.running_as_service("site-1")
        assert builder.pat_args("site-1", ["my-pat"], 12) == []
    with _environment(variable, "true"):
        assert builder.running_as_service("site-1")
        assert builder.pat_args("site-1", ["my-pat", "-q"], 12) == ["my-pat", "-q"]
        assert builder.pat_args("site-1") == builder.default_pat_args() == []


@contextlib.contextmanager
def _environment(variable: str, value: str | None) -> Any:
    import os

    old = os.environ.pop(variable, None)
    if value is not None:
        os.environ[variable] = value
    try:
        yield
    finally:
        os.environ.pop(variable, None)
        if old is not None:
            os.environ[variable] = old


# -- MQTT -------------------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _captured(name: str, level: int = logging.DEBUG) -> Any:
    logger = logging.getLogger(name)
    handler = _Records()
    old_level = logger.level
    logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@check(
    "MQTTClientWrapper",
    "MQTTClientWrapper.start",
    "MQTTClientWrapper.stop",
    "MQTTClientWrapper.connected",
    "MQTTClientWrapper.subscribe",
    "MQTTClientWrapper.subscribed",
    "MQTTClientWrapper.subscribe_all",
    "MQTTClientWrapper.unsubscribe",
    "MQTTClientWrapper.publish",
    "MQTTClientWrapper.num_subscriptions",
    "MQTTClientWrapper.num_pending_subscriptions",
    "MQTTClientWrapper.subscription_items",
    "MQTTClientWrapper.enable_logger",
    "MQTTClientWrapper.disable_logger",
    "QOS",
    "QOS.AtMostOnce",
    "QOS.AtLeastOnce",
    "QOS.ExactlyOnce",
)
async def check_mqtt_client_wrapper(env: Env) -> None:
    received: asyncio.Queue[RawMessage] = asyncio.Queue()
    client = MQTTClientWrapper("dev", env.broker(), received)
    states = cast(QueueListener, client.listener)
    assert [int(q) for q in (QOS.AtMostOnce, QOS.AtLeastOnce, QOS.ExactlyOnce)] == [0, 1, 2]
    assert not client.connected()
    assert client.subscribe("api/wrapper", QOS.AtLeastOnce)[1] is None  # sent on connect
    assert client.num_pending_subscriptions() == 1
    client.start()
    try:
        await states.wait_for(client.subscribed, TIMEOUT)
        assert client.connected()
        assert client.num_subscriptions() == 1 and client.num_pending_subscriptions() == 0
        assert client.subscription_items() == [("api/wrapper", 1)]
        rc, mid = client.subscribe_all()
        assert rc == 0 and mid is not None
        await states.wait_for(client.subscribed, TIMEOUT)
        with _captured("api.paho") as paho_log:
            client.enable_logger(logging.getLogger("api.paho"))
            before = time.monotonic()
            assert client.publish("api/wrapper", b"hello", QOS.AtLeastOnce)
            message = await asyncio.wait_for(received.get(), TIMEOUT)
            assert paho_log.records, "enable_logger sends paho's log lines to the logger"
            client.disable_logger()
            seen = len(paho_log.records)
            assert client.publish("api/wrapper", b"again", QOS.AtMostOnce)
            await asyncio.wait_for(received.get(), TIMEOUT)
            assert len(paho_log.records) == seen
        assert (message.link, message.topic, message.payload) == ("dev", "api/wrapper", b"hello")
        assert before <= message.received_at <= time.monotonic()
        rc, mid = client.unsubscribe("api/wrapper")
        assert rc == 0 and mid is not None and client.num_subscriptions() == 0
    finally:
        await asyncio.wait_for(client.stop(), TIMEOUT)
    assert not client.connected()


@check(
    "MQTTClients",
    "MQTTClients.add_client",
    "MQTTClients.start",
    "MQTTClients.stop",
    "MQTTClients.clients",
    "MQTTClients.client_wrapper",
    "MQTTClients.connected",
    "MQTTClients.upstream",
    "MQTTClients.upstream_client",
    "MQTTClients.primary_peer",
    "MQTTClients.primary_peer_client",
    "MQTTClients.subscribe",
    "MQTTClients.subscribed",
    "MQTTClients.subscribe_all",
    "MQTTClients.unsubscribe",
    "MQTTClients.publish",
    "MQTTClients.num_subscriptions",
    "MQTTClients.num_pending_subscriptions",
    "MQTTClients.enable_loggers",
    "MQTTClients.disable_loggers",
)
async def check_mqtt_clients(env: Env) -> None:
    clients = MQTTClients()
    assert clients.upstream_client == clients.primary_peer_client == ""
    clients.add_client("cloud", env.broker(), True)
    clients.add_client("local", env.broker(), False, True)
    assert clients.upstream_client == "cloud" and clients.primary_peer_client == "local"
    assert clients.upstream() is clients.client_wrapper("cloud") is clients.clients["cloud"]
    assert clients.primary_peer() is clients.clients["local"]
    received: asyncio.Queue[RawMessage] = asyncio.Queue()
    clients.subscribe("local", "api/clients", QOS.AtLeastOnce)
    assert clients.num_pending_subscriptions("local") == 1
    clients.start(asyncio.get_running_loop(), received)
    try:
        local = cast(QueueListener, clients.primary_peer().listener)
        cloud = cast(QueueListener, clients.upstream().listener)
        await local.wait_for(lambda: clients.subscribed("local"), TIMEOUT)
        await cloud.wait_for(lambda: clients.connected("cloud"), TIMEOUT)
        assert clients.num_subscriptions("local") == 1
        assert clients.num_pending_subscriptions("local") == 0
        assert clients.subscribe_all("local")[0] == 0
        await local.wait_for(lambda: clients.subscribed("local"), TIMEOUT)
        with _captured("api.paho.clients") as paho_log:
            clients.enable_loggers(logging.getLogger("api.paho.clients"))
            assert clients.publish("cloud", "api/clients", b"x", QOS.AtLeastOnce)
            message = await asyncio.wait_for(received.get(), TIMEOUT)
            assert paho_log.records
            clients.disable_loggers()
        assert (message.link, message.topic, message.payload) == ("local", "api/clients", b"x")
        assert clients.unsubscribe("local", "api/clients")[0] == 0
        assert clients.num_subscriptions("local") == 0
    finally:
        await asyncio.wait_for(clients.stop(), TIMEOUT)
    assert not clients.connected("cloud") and not clients.connected("local")


@check("Subscription", "Subscription.Topic", "Subscription.Qos")
async def check_subscription(env: Env) -> None:
    subscription = Subscription("a/+/b", QOS.AtMostOnce)
    assert (subscription.Topic, subscription.Qos) == ("a/+/b", QOS.AtMostOnce)
    topic, qos = subscription
    assert (topic, qos) == ("a/+/b", QOS.AtMostOnce)
    assert Subscription(Topic="t", Qos=QOS.ExactlyOnce)[1] is QOS.ExactlyOnce


# -- the proactor -------------------------------------------------------------------------------


@check(
    "Proactor",
    "Proactor.start",
    "Proactor.stop",
    "Proactor.join",
    "Proactor.name",
    "Proactor.settings",
    "Proactor.event_loop",
    "Proactor.publication_name",
    "Proactor.services",
    "Proactor.upstream_client",
    "Proactor.primary_peer_client",
    "ServicesInterface.publication_name",
    "ServicesInterface.settings",
    "ServicesInterface.event_loop",
)
async def check_proactor_lifecycle_documented_forms(env: Env) -> None:
    _, child_settings = env.pair_settings()
    proactor = Proactor("site-1", child_settings)  # the documented (name, settings)
    services: ServicesInterface = proactor
    assert proactor.name == services.publication_name == "site-1"
    assert proactor.settings.links == child_settings.links
    assert services.settings is proactor.settings
    assert proactor.services is proactor
    assert proactor.upstream_client == "parent" and proactor.primary_peer_client == "parent"
    assert services.event_loop is None
    with proactor.listener("link.state") as states:
        starting = proactor.start()  # the documented plain call begins start-up
        try:
            await asyncio.wait_for(starting, TIMEOUT)
            assert proactor.state == "running"
            # Stopping while the connect is in flight waits for it (a separate matter).
            await states.wait_for(lambda e: e.data["cause"] == "mqtt_connected", TIMEOUT)
            await _stop_documented(proactor, services)
        finally:
            if proactor.state != "stopped":
                await asyncio.wait_for(proactor.stop_and_join(), TIMEOUT)
    outside = Proactor("outside", ProactorSettings())
    with pytest.raises(StateError, match="running event loop"):
        await asyncio.to_thread(outside.start)  # no running loop in that thread


async def _stop_documented(proactor: Proactor, services: ServicesInterface) -> None:
    assert now(lambda: services.event_loop) is asyncio.get_running_loop()
    proactor.stop()
    await asyncio.wait_for(proactor.join(), TIMEOUT)
    assert proactor.state == "stopped"


@check("Proactor.run_forever")
async def check_run_forever(env: Env) -> None:
    parent_settings, _ = env.pair_settings()
    proactor = Proactor(parent_settings)
    with proactor.listener("link.state") as states:
        running = asyncio.create_task(proactor.run_forever(handle_signals=False))
        try:
            # Running once the link connected (a stop while connecting waits for the
            # connect to end, a separate matter).
            await states.wait_for(lambda e: e.data["cause"] == "mqtt_connected", TIMEOUT)
            assert proactor.state == "running"
        finally:
            proactor.stop()
            await asyncio.wait_for(running, TIMEOUT)
    assert proactor.state == "stopped"


@check(
    "Proactor.generate_event",
    "ServicesInterface.generate_event",
    "Proactor.logger",
    "Proactor.stats",
    "ServicesInterface.logger",
    "ServicesInterface.stats",
    "Proactor.make_stats",
)
async def check_generate_event_reaches_upstream(env: Env) -> None:
    parent, child = await env.pair(lambda parent, _: None)
    recorder = record_events(parent)
    services: ServicesInterface = child
    pending = services.generate_event(Counted(n=1))
    if not pending.done():
        try:
            pending.is_ok()
            raise AssertionError("is_ok() before the commit must raise")
        except StateError:
            pass
    result = await asyncio.wait_for(pending, TIMEOUT)
    assert result.is_ok() and pending.is_ok() and not pending.is_err()
    assert child.generate_event(Counted(n=2)).__await__ is not None
    await dispatched(parent, lambda: len(recorder.events) >= 1)
    assert recorder.events[0].n == 1
    assert isinstance(services.logger, ProactorLogger) and services.logger is child.logger
    assert isinstance(services.stats, ProactorStats) and services.stats is child.stats
    assert child.stats.link("parent").messages_out["test.counted"] >= 1
    fresh = Proactor.make_stats()
    assert isinstance(fresh, ProactorStats) and fresh is not child.stats


@check("Proactor.send_threadsafe", "ServicesInterface.send_threadsafe", "ServicesInterface.send")
async def check_send_forms(env: Env) -> None:
    proactor = await env.lone("sender")
    collector = Collector("collector", proactor)
    proactor.add_communicator(collector)
    services: ServicesInterface = proactor
    services.send(Message.create("sender", "collector", Hello(n=1)))
    await asyncio.to_thread(
        services.send_threadsafe, Message.create("sender", "collector", Hello(n=2))
    )
    await dispatched(proactor, lambda: len(collector.received) == 2)
    assert sorted(m.payload.n for m in collector.received) == [1, 2]


@check(
    "Proactor.async_receive_queue",
    "ServicesInterface.async_receive_queue",
    "Proactor.make_event_persister",
)
async def check_receive_queue_and_persister(env: Env) -> None:
    settings = ProactorSettings(name="queued")
    proactor = Proactor(settings)
    services: ServicesInterface = proactor
    assert services.async_receive_queue is None  # before start, as documented
    persister = Proactor.make_event_persister(settings)
    assert persister.path == proactor.store.path
    collector = Collector("collector", proactor)
    proactor.add_communicator(collector)
    await env.start(proactor)
    queue_ = now(lambda: services.async_receive_queue)
    assert queue_ is not None
    queue_.put_nowait(Message.create("queued", "collector", Hello(n=4)))
    await dispatched(proactor, lambda: bool(collector.received))
    assert collector.received[0].payload == Hello(n=4) and queue_.qsize() == 0


@check("Proactor.process_message")
async def check_process_message(env: Env) -> None:
    proactor = await env.lone("direct")
    collector = Collector("collector", proactor)
    proactor.add_communicator(collector)
    await proactor.process_message(Message.create("direct", "collector", Hello(n=3)))
    assert [m.payload for m in collector.received] == [Hello(n=3)]


@check(
    "Proactor.add_web_server_config",
    "Proactor.add_web_route",
    "ServicesInterface.add_web_server_config",
    "ServicesInterface.add_web_route",
)
async def check_web_server_and_route(env: Env) -> None:
    proactor = Proactor(ProactorSettings(name="web"))
    services: ServicesInterface = proactor

    async def hello(request: web.Request) -> web.StreamResponse:
        return web.Response(text=f"hello {request.match_info['who']}")

    services.add_web_server_config("api", "127.0.0.1", 0)
    services.add_web_route("api", "GET", "/hello/{who}", hello)
    services.add_web_route("not-configured", "GET", "/x", hello)  # ignored, as documented
    await env.start(proactor)
    url = f"http://127.0.0.1:{proactor.web.bound_port('api')}/hello/reference"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert await response.text() == "hello reference"


# -- logging and problems -----------------------------------------------------------------------


@check(
    "ProactorLogger",
    "ProactorLogger.lifecycle",
    "ProactorLogger.comm_event",
    "ProactorLogger.path",
    "ProactorLogger.message_enter",
    "ProactorLogger.message_exit",
    "ProactorLogger.message_summary",
    "ProactorLogger.general_enabled",
    "ProactorLogger.lifecycle_enabled",
    "ProactorLogger.comm_event_enabled",
    "ProactorLogger.message_summary_enabled",
    "ProactorLogger.path_enabled",
    "ProactorLogger.lifecycle_logger",
    "ProactorLogger.comm_event_logger",
    "ProactorLogger.message_summary_logger",
    "ProactorLogger.MESSAGE_DELIMITER_WIDTH",
    "ProactorLogger.MESSAGE_ENTRY_DELIMITER",
    "ProactorLogger.MESSAGE_EXIT_DELIMITER",
)
async def check_proactor_logger(env: Env) -> None:
    logger = ProactorLogger("apilog", "apilog.ms", "apilog.lc", "apilog.ce", {"site": "s1"})
    assert logger.lifecycle_logger.name == "apilog.lc"
    assert logger.comm_event_logger.name == "apilog.ce"
    assert logger.message_summary_logger.name == "apilog.ms"
    assert len(ProactorLogger.MESSAGE_ENTRY_DELIMITER) == ProactorLogger.MESSAGE_DELIMITER_WIDTH
    assert len(ProactorLogger.MESSAGE_EXIT_DELIMITER) == ProactorLogger.MESSAGE_DELIMITER_WIDTH
    with _captured("apilog", logging.INFO) as records:
        logger.message_summary_logger.setLevel(logging.WARNING)
        try:
            assert logger.general_enabled and logger.lifecycle_enabled
            assert logger.comm_event_enabled
            assert not logger.message_summary_enabled and not logger.path_enabled
            logger.lifecycle("started %s", "x")
            logger.comm_event("link %s up", "parent")
            logger.message_summary("OUT", "child", "gw/a/to/b/test.hello", Hello(n=1))
            logger.path("not written")
            assert [(r.name, r.getMessage()) for r in records.records] == [
                ("apilog.lc", "started x"),
                ("apilog.ce", "link parent up"),
            ]
            assert all(getattr(r, "site", None) == "s1" for r in records.records)
            records.records.clear()
            logger.message_summary_logger.setLevel(logging.DEBUG)
            assert now(lambda: logger.message_summary_enabled and logger.path_enabled)
            logger.message_summary("IN", "child", "gw/b/to/a/x", Hello(n=1), message_id="m1")
            logger.message_enter("enter %d", 1)
            logger.path("through")
            logger.message_exit("exit")
            lines = [r.getMessage() for r in records.records]
        finally:
            logger.message_summary_logger.setLevel(logging.NOTSET)
    assert "gw/b/to/a/x" in lines[0] and "m1" in lines[0] and "Hello" in lines[0]
    assert lines[1:] == [
        ProactorLogger.MESSAGE_ENTRY_DELIMITER,
        "enter 1",
        "through",
        "exit",
        ProactorLogger.MESSAGE_EXIT_DELIMITER,
    ]


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as e:
        return e


@check(
    "Problems",
    "Problems.MAX_PROBLEMS",
    "Problems.add_error",
    "Problems.add_warning",
    "Problems.add_problems",
    "Problems.error_traceback_str",
    "Problems.errors",
    "Problems.warnings",
    "Problems.max_problems",
    "Problems.problem_event",
    "format_exceptions",
)
async def check_problems(env: Env) -> None:
    boom = _raised(ValueError("boom"))
    try:
        raise Problems(msg="loading failed", errors=[boom], warnings=[UserWarning("meh")])
    except Problems as caught:
        problems = caught
    assert isinstance(problems, Exception) and "loading failed" in str(problems)
    assert problems.errors == [boom] and len(problems.warnings) == 1
    assert problems.max_problems == Problems.MAX_PROBLEMS
    many = Problems()
    for i in range(Problems.MAX_PROBLEMS + 3):
        assert many.add_error(RuntimeError(str(i))) is many
    assert len(many.errors) == Problems.MAX_PROBLEMS
    assert Problems(max_problems=None).add_warning(UserWarning("w")).warnings
    merged = Problems().add_problems(problems)
    assert merged.errors == [boom]
    text = problems.error_traceback_str()
    assert "ValueError: boom" in text and "Traceback" in text
    event = problems.problem_event("loading failed", src="gw1")
    assert isinstance(event, ProblemEvent) and isinstance(event, Event)
    assert (event.problem_type, event.summary, event.src) == ("error", "loading failed", "gw1")
    formatted = format_exceptions([boom, KeyError("k")])
    assert "ValueError: boom" in formatted and "KeyError" in formatted


@check("setup_logging")
async def check_setup_logging_from_args(env: Env) -> None:
    settings = ProactorSettings(name="logs", paths=PathSettings(state_dir=env.tmp_path / "logs"))
    errors: list[BaseException] = []
    args = argparse.Namespace(verbose=False, message_summary=True)
    summary = logging.getLogger("gwproactor.message_summary")
    old_level = summary.level
    handlers = setup_logging(args, settings, errors, False, False)
    try:
        assert errors == []
        assert summary.level == logging.INFO
        files = [h for h in handlers if isinstance(h, logging.FileHandler)]
        assert files and Path(files[0].baseFilename).parent == env.tmp_path / "logs" / "log"
    finally:
        summary.setLevel(old_level)
        for handler in handlers:
            logging.getLogger("gwproactor").removeHandler(handler)
            handler.close()


# -- settings ----------------------------------------------------------------------------------


@check(
    "ProactorSettings",
    "ProactorSettings.ack_timeout_seconds",
    "ProactorSettings.env_prefix",
    "ProactorSettings.env_nested_delimiter",
    "ProactorSettings.logging",
    "ProactorSettings.paths",
    "ProactorSettings.num_initial_event_reuploads",
)
async def check_settings(env: Env) -> None:
    defaults = ProactorSettings()
    assert isinstance(defaults.logging, LoggingSettings)
    assert isinstance(defaults.paths, PathSettings)
    assert ProactorSettings(num_initial_event_reuploads=7).num_initial_event_reuploads == 7
    prefix, delimiter = ProactorSettings.env_prefix, ProactorSettings.env_nested_delimiter
    environ = {
        f"{prefix}NAME": "from-env",
        f"{prefix}LOGGING{delimiter}LEVEL": "DEBUG",
        f"{prefix}NUM_INITIAL_EVENT_REUPLOADS": "9",
    }
    loaded = load_settings(None, None, environ=environ)
    assert (loaded.name, loaded.logging.level) == ("from-env", "DEBUG")
    assert loaded.num_initial_event_reuploads == 9
    own = LinkSettings(peer="p1", ack_timeout_seconds=7.0)
    default = LinkSettings(peer="p2")
    gateway = ProactorSettings(ack_timeout_seconds=2.0, links={"own": own, "default": default})
    assert gateway.links["own"].ack_timeout_seconds == 7.0
    assert gateway.links["default"].ack_timeout_seconds == 2.0
    assert default.ack_timeout_seconds == 5.0  # the caller's object is not changed
    assert ProactorSettings(links={"d": default}).links["d"].ack_timeout_seconds == 5.0
