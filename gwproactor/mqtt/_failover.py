"""Choosing among a link's brokers: stay, fail over, fail back.

A link may name several brokers in order of preference (hat-event's client follows the
active server in the same spirit). The link stays on its current broker while it can reach
it; after ``failover_after_seconds`` of failed attempts it moves to the next one (wrapping
around). While on a fallback broker it probes the preferred one every
``failback_check_seconds`` with a separate, throwaway connection, and only once that probe
gets a CONNACK does it move back: the working connection is never dropped on a guess.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from paho.mqtt.client import Client
from paho.mqtt.enums import MQTTErrorCode

from gwproactor.config import BrokerSettings
from gwproactor.errors import ConfigError
from gwproactor.mqtt._factory import new_paho_client
from gwproactor.mqtt._paho import close_all

__all__ = ("BrokerSelector", "probe_broker")


class BrokerSelector:
    """Which broker to use next. Pure bookkeeping; loop-only."""

    def __init__(
        self,
        brokers: Sequence[BrokerSettings],
        failover_after_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not brokers:
            raise ConfigError("a link needs at least one broker")
        self.brokers = list(brokers)
        self.failover_after_seconds = failover_after_seconds
        self.index = 0
        self._clock = clock
        self._failing_since: float | None = None

    @property
    def current(self) -> BrokerSettings:
        return self.brokers[self.index]

    @property
    def on_preferred(self) -> bool:
        return self.index == 0

    def connected(self) -> None:
        self._failing_since = None

    def failed(self) -> bool:
        """Record a failed attempt; True if the selector moved to the next broker."""
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        if len(self.brokers) > 1 and now - self._failing_since >= self.failover_after_seconds:
            self.move_to((self.index + 1) % len(self.brokers))
            return True
        return False

    def move_to(self, index: int) -> None:
        self.index = index
        self._failing_since = None


def probe_broker(broker: BrokerSettings, client_id: str) -> bool:
    """Blocking (run it in an executor): whether ``broker`` accepts an MQTT connection
    within its connect timeout. Its own throwaway client, built like the link's
    (:func:`~gwproactor.mqtt._factory.new_paho_client`: same protocol, credentials, TLS and
    hostname check, socket options), so the link's connection is untouched and the probe
    fails only where the link would."""
    client = new_paho_client(broker, client_id, Client, throwaway=True)
    accepted = threading.Event()
    client.on_connect = lambda _c, _u, _f, reason, _p: None if reason.is_failure else accepted.set()
    deadline = time.monotonic() + broker.connect_timeout_seconds
    try:
        client.connect(broker.host, broker.port, keepalive=max(5, broker.keepalive_seconds))
        while not accepted.is_set() and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
    except (OSError, ValueError):
        return False
    finally:
        client.disconnect()
        close_all(client)
    return accepted.is_set()
