"""gwproactor: an asyncio framework and daemon for field gateways.

One Proactor per process owns several MQTT links (each an explicit health state machine),
a bounded receive queue, and the actors it dispatches messages to. Events are stored
durably until the upstream peer acknowledges them. See README.md.

The folders follow a message's path: ``mqtt`` (the broker connection) -> ``links`` (health
state machine, acks, dedup) -> ``wire`` (names, envelope, codecs) -> ``routing`` (receive
queue, dispatch, raw topics) -> ``actor`` (communicators, thread actors) and ``events`` ->
``store`` (durable events, re-upload); ``runtime`` owns them all, ``observe``, ``watchdog``,
``web``, ``config`` and ``cli`` surround them. This module is the curated public surface.

What a gateway does not need to start (the settings loader, the logging setup, thread
actors) loads on first use of its name (PEP 562), so that ``import gwproactor`` and a
Proactor's start pay only for what runs: every name in ``__all__`` stays importable.
"""

from typing import TYPE_CHECKING, Any

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
from gwproactor.observe._format import format_exceptions
from gwproactor.observe.listeners import CommEvent, EventListener
from gwproactor.observe.logger import ProactorLogger
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

if TYPE_CHECKING:
    from gwproactor.actor.sync_thread import (
        AsyncQueueWriter,
        SyncAsyncInteractionThread,
        SyncAsyncQueueWriter,
        SyncThreadActor,
        responsive_sleep,
    )
    from gwproactor.config import load_settings
    from gwproactor.observe.logging_setup import setup_logging

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

_THREAD_ACTOR_NAMES = frozenset(
    (
        "AsyncQueueWriter",
        "SyncAsyncInteractionThread",
        "SyncAsyncQueueWriter",
        "SyncThreadActor",
        "responsive_sleep",
    )
)


def __getattr__(name: str) -> Any:
    # Plain import statements (not importlib by name), so that the architecture tests see
    # these edges of the import graph.
    module: Any
    if name in _THREAD_ACTOR_NAMES:
        from gwproactor.actor import sync_thread as module
    elif name == "load_settings":
        from gwproactor.config import _loader as module
    elif name == "setup_logging":
        from gwproactor.observe import logging_setup as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value  # once: later lookups find it without coming back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
