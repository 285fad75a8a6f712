"""Types shared by the MQTT transports (the real paho one and the in-memory one)."""

from __future__ import annotations

import random
from collections.abc import Awaitable
from typing import NamedTuple, Protocol

from paho.mqtt.client import topic_matches_sub

from gwproactor.config import QOS

__all__ = (
    "QOS",
    "Backoff",
    "Subscription",
    "Transport",
    "TransportListener",
    "topic_matches",
)


class Subscription(NamedTuple):
    """An MQTT filter and its QoS, as in the reference: ``Subscription(topic, qos)`` with
    fields ``Topic`` and ``Qos``, unpackable as ``topic, qos = subscription``."""

    Topic: str
    Qos: QOS = QOS.AtLeastOnce

    @property
    def topic(self) -> str:
        return self.Topic

    @property
    def qos(self) -> QOS:
        return self.Qos


class TransportListener(Protocol):
    """What a transport tells its owner (a link). Every call is made on the event loop."""

    def on_transport_connected(self) -> None:
        """CONNACK accepted; subscriptions are being (re)sent."""

    def on_transport_disconnected(self, reason: str) -> None:
        """The connection is gone; the transport reconnects by itself unless stopped."""

    def on_transport_connect_failed(self, reason: str) -> None:
        """An attempt to connect failed (refused, TLS, timeout); another follows."""

    def on_transport_broker_changed(self, broker: str) -> None:
        """The transport failed over (or back) to another broker."""

    def on_transport_problem(self, kind: str, detail: str) -> None:
        """Something the operator should know about the connection (``client_id_clash``:
        connections keep being thrown out soon after they are made)."""

    def on_transport_suback(self, topic: str, granted: bool) -> None:
        """A SUBACK for one subscription (``granted`` False: the broker refused it)."""

    def on_transport_message(self, topic: str, payload: bytes) -> None:
        """A PUBLISH arrived. Hot path: keep it short."""

    def on_transport_read_done(self) -> None:
        """A batch of packets was read: a good moment to process what arrived (outside
        paho's callbacks, within the same loop iteration)."""


class Transport(Protocol):
    """A connection to one broker that keeps itself up. Loop-only unless marked."""

    def connected(self) -> bool: ...

    @property
    def broker_label(self) -> str: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> Awaitable[None]:
        """Disconnect and stop reconnecting, within about ``timeout`` seconds."""

    def subscribe(self, topic: str, qos: QOS) -> object: ...

    def unsubscribe(self, topic: str) -> object: ...

    @property
    def subscriptions(self) -> dict[str, QOS]: ...

    @property
    def all_subscribed(self) -> bool:
        """Connected, and every subscription has its SUBACK."""

    def publish(self, topic: str, payload: bytes, qos: QOS, retain: bool = False) -> bool: ...

    @property
    def inflight_limit(self) -> int:
        """How many QoS 1/2 publishes the current connection lets out unfinished at once
        (0: no limit); the ones past it wait in the transport, though ``publish`` took
        them. Known once connected (it may change with every connection: an MQTT 5
        broker's Receive Maximum). Optional: the link takes a transport without it as
        unlimited."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def request_reconnect(self) -> None:
        """Drop the connection now; the transport reconnects by itself."""


class Backoff:
    """Capped exponential backoff with jitter, reset after a good connection.

    The n-th consecutive failure waits ``min(max, min * 2**(n-1))``, of which the fraction
    ``jitter`` is drawn at random, so that a fleet does not reconnect in lockstep after a
    broker restart.
    """

    def __init__(self, minimum: float, maximum: float, jitter: float) -> None:
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.jitter = jitter
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        base = min(self.maximum, self.minimum * 2.0 ** min(self.failures - 1, 32))
        return base * (1 - self.jitter) + random.uniform(0, base * self.jitter)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches the MQTT filter (``+`` one level, ``#`` the rest)."""
    return bool(topic_matches_sub(topic_filter, topic))
