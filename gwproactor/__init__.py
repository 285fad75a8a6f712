"""gwproactor: an asyncio framework and daemon for field gateways.

One Proactor per process owns several MQTT links (each an explicit health state machine),
a bounded receive queue, and the actors it dispatches messages to. Events are stored
durably until the upstream peer acknowledges them. See README.md.

The folders follow a message's path: ``mqtt`` (the broker connection) -> ``links`` (health
state machine, acks, dedup) -> ``wire`` (names, envelope, codecs) -> ``routing`` (receive
queue, dispatch, raw topics) -> ``actor`` (communicators, thread actors) and ``events`` ->
``store`` (durable events, re-upload); ``runtime`` owns them all, ``observe``, ``watchdog``,
``web``, ``config`` and ``cli`` surround them. This module is the curated public surface.
"""

from gwproactor._version import __version__
from gwproactor.actor.communicator import (
    Actor,
    ActorInterface,
    Communicator,
    CommunicatorInterface,
    ReceiveQueue,
    Runnable,
    ServicesInterface,
    load_actor,
)
from gwproactor.actor.sync_thread import (
    AsyncQueueWriter,
    SyncAsyncInteractionThread,
    SyncAsyncQueueWriter,
    SyncThreadActor,
    responsive_sleep,
)
from gwproactor.config import (
    QOS,
    ActorSettings,
    BrokerSettings,
    LinkSettings,
    LoggingSettings,
    ProactorSettings,
    TlsSettings,
    WatchdogSettings,
    WebSettings,
    load_settings,
)
from gwproactor.errors import (
    ConfigError,
    DecodeError,
    EncodeError,
    InvalidNameError,
    InvalidQueryError,
    LinkError,
    ProactorError,
    QueueFullError,
    RoutingError,
    StateError,
    StoreError,
    StoreFullError,
    UnsendableEventError,
    WebServerError,
    WireError,
)
from gwproactor.events import EventFuture
from gwproactor.links import Link, LinkState
from gwproactor.mqtt import MQTTClients, MQTTClientWrapper, Subscription
from gwproactor.observe.listeners import CommEvent, EventListener
from gwproactor.observe.logger import ProactorLogger
from gwproactor.observe.logging_setup import format_exceptions, setup_logging
from gwproactor.observe.problems import ProblemEvent, Problems
from gwproactor.observe.stats import ActorActivity, LinkStats, ProactorStats
from gwproactor.routing import Routes
from gwproactor.runtime._lifecycle import ProactorState
from gwproactor.runtime.proactor import Proactor
from gwproactor.store import StoredEvent
from gwproactor.watchdog import ExternalWatchdogCommandBuilder
from gwproactor.watchdog.monitored import MonitoredName
from gwproactor.wire.codec import Codec, JsonCodec, MessageRegistry
from gwproactor.wire.message import (
    Ack,
    AnyEvent,
    Event,
    Header,
    Message,
    Payload,
    Ping,
    RawMessage,
)

__all__ = (
    "__version__",
    # runtime
    "Proactor",
    "ProactorState",
    "Routes",
    "ProactorSettings",
    "LoggingSettings",
    "WatchdogSettings",
    "WebSettings",
    "load_settings",
    # actors
    "Actor",
    "ActorInterface",
    "Communicator",
    "CommunicatorInterface",
    "Runnable",
    "ServicesInterface",
    "ReceiveQueue",
    "load_actor",
    "SyncThreadActor",
    "SyncAsyncInteractionThread",
    "SyncAsyncQueueWriter",
    "AsyncQueueWriter",
    "responsive_sleep",
    # messages
    "Message",
    "Header",
    "Payload",
    "Event",
    "AnyEvent",
    "Ack",
    "Ping",
    "RawMessage",
    "StoredEvent",
    "EventFuture",
    "MessageRegistry",
    "Codec",
    "JsonCodec",
    # links and MQTT
    "Link",
    "LinkState",
    "LinkSettings",
    "BrokerSettings",
    "TlsSettings",
    "ActorSettings",
    "MQTTClients",
    "MQTTClientWrapper",
    "QOS",
    "Subscription",
    # observation
    "CommEvent",
    "EventListener",
    "MonitoredName",
    "ExternalWatchdogCommandBuilder",
    "ProactorLogger",
    "ProactorStats",
    "LinkStats",
    "ActorActivity",
    "Problems",
    "ProblemEvent",
    "setup_logging",
    "format_exceptions",
    # errors
    "ProactorError",
    "ConfigError",
    "WireError",
    "DecodeError",
    "EncodeError",
    "InvalidNameError",
    "LinkError",
    "QueueFullError",
    "RoutingError",
    "StateError",
    "StoreError",
    "StoreFullError",
    "UnsendableEventError",
    "InvalidQueryError",
    "WebServerError",
)
