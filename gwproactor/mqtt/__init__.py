"""MQTT transports: paho-mqtt on the event loop, and an in-memory one for fast tests (loaded
on first use of its names: a gateway does not pay for it at start-up)."""

from typing import TYPE_CHECKING, Any

from gwproactor.mqtt._client import MQTTClientWrapper
from gwproactor.mqtt._clients import MQTTClients
from gwproactor.mqtt._types import (
    QOS,
    Backoff,
    Subscription,
    Transport,
    TransportListener,
    topic_matches,
)

if TYPE_CHECKING:
    from gwproactor.mqtt._memory import MemoryBroker, MemoryTransport

__all__ = (
    "QOS",
    "Backoff",
    "MQTTClientWrapper",
    "MQTTClients",
    "MemoryBroker",
    "MemoryTransport",
    "Subscription",
    "Transport",
    "TransportListener",
    "topic_matches",
)


def __getattr__(name: str) -> Any:
    if name in ("MemoryBroker", "MemoryTransport"):
        from gwproactor.mqtt import _memory

        return getattr(_memory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
