"""MQTT transports: paho-mqtt on the event loop, and an in-memory one for fast tests."""

from gwproactor.mqtt._client import MQTTClientWrapper
from gwproactor.mqtt._clients import MQTTClients
from gwproactor.mqtt._memory import MemoryBroker, MemoryTransport
from gwproactor.mqtt._types import (
    QOS,
    Backoff,
    Subscription,
    Transport,
    TransportListener,
    topic_matches,
)

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
