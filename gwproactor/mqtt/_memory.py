"""An in-memory broker and transport with the same interface as the paho one.

For the fast test layer: state machine tables, activation orders and routing can be tested
in milliseconds, deterministically, with full control over when SUBACKs and messages arrive.
Everything is loop-only, and deliveries are scheduled with ``call_soon`` so that, as on a
real socket, nothing is delivered inside the sender's call.
"""

from __future__ import annotations

import asyncio
from collections import deque

from paho.mqtt.client import topic_matches_sub

from gwproactor.config import QOS
from gwproactor.mqtt._types import TransportListener
from gwproactor.observe.stats import LinkStats

__all__ = ("MemoryBroker", "MemoryTransport")


class MemoryBroker:
    """A broker in the same process. ``hold_subacks`` keeps SUBACKs until
    :meth:`release_subacks`; :meth:`stop` and :meth:`start` simulate an outage."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.up = True
        self.hold_subacks = False
        self.published: list[tuple[str, bytes]] = []
        self._connected: set[MemoryTransport] = set()
        self._waiting: set[MemoryTransport] = set()
        self._held: deque[tuple[MemoryTransport, str]] = deque()

    def stop(self) -> None:
        self.up = False
        for transport in list(self._connected):
            transport.lose("broker stopped")

    def start(self) -> None:
        self.up = True
        waiting, self._waiting = self._waiting, set()
        for transport in waiting:
            transport.schedule_connect()

    def release_subacks(self, count: int | None = None) -> int:
        """Send held SUBACKs, oldest first; returns how many were released."""
        released = 0
        while self._held and (count is None or released < count):
            transport, topic = self._held.popleft()
            if transport in self._connected:
                transport.suback(topic)
            released += 1
        return released

    @property
    def held_subacks(self) -> int:
        return len(self._held)

    # -- transport side: called by MemoryTransport ------------------------------------------

    def admit(self, transport: MemoryTransport) -> bool:
        if not self.up:
            self._waiting.add(transport)
            return False
        self._connected.add(transport)
        return True

    def forget(self, transport: MemoryTransport) -> None:
        self._connected.discard(transport)
        self._waiting.discard(transport)

    def subscribe(self, transport: MemoryTransport, topic: str) -> None:
        if self.hold_subacks:
            self._held.append((transport, topic))
        else:
            asyncio.get_running_loop().call_soon(transport.suback, topic)

    def wait_for_start(self, transport: MemoryTransport) -> None:
        """Connect ``transport`` at the next :meth:`start`."""
        self._waiting.add(transport)

    def publish(self, topic: str, payload: bytes) -> None:
        """Deliver to every connected transport with a matching subscription."""
        self.published.append((topic, payload))
        loop = asyncio.get_running_loop()
        for transport in self._connected:
            if transport.matches(topic):
                loop.call_soon(transport.deliver, topic, payload)


class MemoryTransport:
    """A :class:`~gwproactor.mqtt._types.Transport` on a :class:`MemoryBroker`."""

    def __init__(
        self,
        broker: MemoryBroker,
        listener: TransportListener,
        *,
        stats: LinkStats | None = None,
    ) -> None:
        self.broker = broker
        self._listener = listener
        self.stats = stats or LinkStats(broker.name)
        self._subscriptions: dict[str, QOS] = {}
        self._pending: set[str] = set()
        self._connected = False
        self._started = False
        self._paused = False
        self._buffer: deque[tuple[str, bytes]] = deque()
        self._ever_connected = False
        # Nothing waits for an acknowledgement here: no limit (a test may set one, as a
        # broker's Receive Maximum would, to see what the link's users make of it).
        self.inflight_limit = 0

    def connected(self) -> bool:
        return self._connected

    @property
    def broker_label(self) -> str:
        return f"memory:{self.broker.name}"

    @property
    def subscriptions(self) -> dict[str, QOS]:
        return dict(self._subscriptions)

    @property
    def all_subscribed(self) -> bool:
        return self._connected and not self._pending

    def start(self) -> None:
        self._started = True
        self.schedule_connect()

    async def stop(self, timeout: float = 5.0) -> None:
        self._started = False
        if self._connected:
            self.lose("stopped")
        self.broker.forget(self)

    def subscribe(self, topic: str, qos: QOS) -> None:
        self._subscriptions[topic] = qos
        if self._connected:
            self._pending.add(topic)
            self.broker.subscribe(self, topic)

    def unsubscribe(self, topic: str) -> None:
        self._subscriptions.pop(topic, None)
        self._pending.discard(topic)

    def publish(self, topic: str, payload: bytes, qos: QOS, retain: bool = False) -> bool:
        if not self._connected:
            return False
        self.broker.publish(topic, payload)
        return True

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        while self._buffer and not self._paused and self._connected:
            self._listener.on_transport_message(*self._buffer.popleft())
        self._listener.on_transport_read_done()

    def request_reconnect(self) -> None:
        if self._connected:
            self.lose("reconnect requested")

    # -- broker side: called by MemoryBroker -----------------------------------------------

    def schedule_connect(self) -> None:
        asyncio.get_running_loop().call_soon(self._try_connect)

    def _try_connect(self) -> None:
        if not self._started or self._connected or not self.broker.admit(self):
            return
        self._connected = True
        self.stats.connects += 1
        if self._ever_connected:
            self.stats.reconnects += 1
        self._ever_connected = True
        self._pending = set(self._subscriptions)
        self._listener.on_transport_connected()
        for topic in list(self._pending):
            self.broker.subscribe(self, topic)

    def lose(self, reason: str) -> None:
        if not self._connected:
            return
        self._connected = False
        self._pending.clear()
        self._buffer.clear()
        self.broker.forget(self)
        self.stats.disconnects += 1
        self._listener.on_transport_disconnected(reason)
        if self._started:
            self.broker.wait_for_start(self)
            if self.broker.up:
                self.broker.start()

    def suback(self, topic: str) -> None:
        if topic in self._pending:
            self._pending.discard(topic)
            self._listener.on_transport_suback(topic, True)

    def matches(self, topic: str) -> bool:
        return any(topic_matches_sub(sub, topic) for sub in self._subscriptions)

    def deliver(self, topic: str, payload: bytes) -> None:
        if not self._connected:
            return
        if self._paused:
            self._buffer.append((topic, payload))
        else:
            self._listener.on_transport_message(topic, payload)
            self._listener.on_transport_read_done()
