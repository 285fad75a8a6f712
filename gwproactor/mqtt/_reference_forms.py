"""The reference API's members of ``MQTTClientWrapper`` that have native equivalents, and
the receive queue its ``(name, client_config, receive_queue)`` constructor takes.

Each member here is a thin adapter; its docstring names the native form. Loop-only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from paho.mqtt.enums import MQTTErrorCode

from gwproactor.config import QOS
from gwproactor.wire.message import RawMessage

if TYPE_CHECKING:
    from gwproactor.mqtt._buffered import BufferedClient
    from gwproactor.mqtt._types import TransportListener

__all__ = ("QueueListener", "WrapperReferenceForms")

PahoLogger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class QueueListener:
    """A transport listener that puts every received message on an asyncio queue as a
    :class:`RawMessage` (``link`` is the client's name, ``received_at`` when it arrived).
    Serves ``MQTTClientWrapper(name, client_config, receive_queue)``; connection events
    are not queued (ask ``connected()``/``subscribed()``). A full queue drops the message
    with a warning: give an unbounded queue, or use a listener of your own."""

    def __init__(self, name: str, queue: asyncio.Queue[RawMessage] | None = None) -> None:
        self.name = name
        self.queue = queue  # None until MQTTClients.start(loop, async_queue) sets it
        self._log = logging.getLogger(f"gwproactor.mqtt.{name}")
        self._changed = asyncio.Event()  # set at every connect, disconnect and SUBACK

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once ``predicate()`` holds, re-checking it after every connection change
        and SUBACK (e.g. ``wait_for(client.subscribed, 5)``). Raises TimeoutError."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def _change(self) -> None:
        self._changed.set()

    def on_transport_message(self, topic: str, payload: bytes) -> None:
        if self.queue is None:
            self._log.warning("no receive queue: dropped a message on %s", topic)
            return
        try:
            self.queue.put_nowait(RawMessage(link=self.name, topic=topic, payload=payload))
        except asyncio.QueueFull:
            self._log.warning("receive queue full: dropped a message on %s", topic)

    def on_transport_connected(self) -> None:
        self._change()

    def on_transport_disconnected(self, reason: str) -> None:
        self._change()

    def on_transport_connect_failed(self, reason: str) -> None:
        self._change()

    def on_transport_broker_changed(self, broker: str) -> None:
        self._change()

    def on_transport_suback(self, topic: str, granted: bool) -> None:
        self._change()

    def on_transport_problem(self, kind: str, detail: str) -> None:
        self._log.warning("%s: %s", kind, detail)

    def on_transport_read_done(self) -> None:
        pass


class WrapperReferenceForms:
    """Reference members of ``MQTTClientWrapper`` (mixed into it)."""

    if TYPE_CHECKING:
        _subscriptions: dict[str, QOS]
        _pending_subacks: dict[int, str]
        _connected: bool
        _paho_logger: logging.Logger | None
        _listener: TransportListener

        @property
        def _client(self) -> BufferedClient | None: ...

        @property
        def all_subscribed(self) -> bool: ...

        def _send_subscribe(self, topic: str, qos: QOS) -> tuple[int, int | None]: ...

    @property
    def listener(self) -> TransportListener:
        """Where this connection reports (a :class:`QueueListener` for a wrapper made with
        a receive queue)."""
        return self._listener

    def num_subscriptions(self) -> int:
        """How many filters are subscribed (native: ``len(subscriptions)``)."""
        return len(self._subscriptions)

    def num_pending_subscriptions(self) -> int:
        """How many subscriptions still lack their SUBACK on the current connection (all
        of them while disconnected)."""
        if not self._connected:
            return len(self._subscriptions)
        return len(self._pending_subacks)

    def subscribed(self) -> bool:
        """Connected and every subscription acknowledged (native: ``all_subscribed``)."""
        return self.all_subscribed

    def subscription_items(self) -> list[tuple[str, int]]:
        """``(topic, qos)`` of every subscription (native: ``subscriptions``)."""
        return [(topic, int(qos)) for topic, qos in self._subscriptions.items()]

    def subscribe_all(self) -> tuple[int, int | None]:
        """Send a SUBSCRIBE for every remembered filter now (the wrapper also does this
        after every connect by itself). Returns the last ``(rc, mid)``, or
        ``(MQTT_ERR_NO_CONN, None)`` when not connected or nothing is subscribed."""
        result: tuple[int, int | None] = (int(MQTTErrorCode.MQTT_ERR_NO_CONN), None)
        if self._connected:
            for topic, qos in list(self._subscriptions.items()):
                result = self._send_subscribe(topic, qos)
        return result

    def enable_logger(self, logger: PahoLogger | None = None) -> None:
        """Send paho's own log lines to ``logger`` (default ``gwproactor.mqtt.paho``), for
        this connection and the ones after reconnects (an adapter's ``extra`` is not
        kept: paho takes a plain logger)."""
        if isinstance(logger, logging.LoggerAdapter):
            logger = logger.logger
        self._paho_logger = logger or logging.getLogger("gwproactor.mqtt.paho")
        if self._client is not None:
            self._client.enable_logger(self._paho_logger)

    def disable_logger(self) -> None:
        """Stop :meth:`enable_logger`'s paho log lines."""
        self._paho_logger = None
        if self._client is not None:
            self._client.disable_logger()
