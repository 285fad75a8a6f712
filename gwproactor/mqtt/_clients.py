"""MQTTClients: the named MQTT connections of one gateway."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from gwproactor.config import QOS, BrokerSettings
from gwproactor.errors import ConfigError, StateError
from gwproactor.mqtt._client import MQTTClientWrapper
from gwproactor.mqtt._reference_forms import QueueListener
from gwproactor.mqtt._types import TransportListener
from gwproactor.observe.stats import LinkStats
from gwproactor.wire.message import RawMessage

__all__ = ("MQTTClients",)


class MQTTClients:
    """Every :class:`MQTTClientWrapper` of a gateway by link name, the roles the reference
    names (``upstream_client``, ``primary_peer_client``; ``""`` when unset), and the small
    thread pool in which their blocking connects run (one thread per client at most, so one
    slow broker cannot hold up the others). Loop-only.

    The per-client methods taking the client's name first (``publish(client, ...)``,
    ``subscribe(client, ...)``, ...) are the reference's; they delegate to the wrapper.
    A client added without a listener delivers its messages as :class:`RawMessage` s to
    the queue given to ``start(loop, async_queue)``.
    """

    def __init__(self) -> None:
        self.clients: dict[str, MQTTClientWrapper] = {}
        self.upstream_client = ""
        self.primary_peer_client = ""
        self._executor: ThreadPoolExecutor | None = None
        self._queue_listeners: list[QueueListener] = []
        self._stop_task: asyncio.Task[None] | None = None

    def add_client(
        self,
        name: str,
        settings: BrokerSettings,
        upstream: bool = False,
        primary_peer: bool = False,
        *,
        client_id: str | None = None,
        listener: TransportListener | None = None,
        fallback_brokers: Sequence[BrokerSettings] = (),
        failover_after_seconds: float = 10.0,
        failback_check_seconds: float = 30.0,
        will: tuple[str, bytes] | None = None,
        qos: QOS = QOS.AtLeastOnce,
        stats: LinkStats | None = None,
        logger: logging.Logger | None = None,
    ) -> MQTTClientWrapper:
        """Add a client (before any starts). ``client_id`` defaults to ``name``; without a
        ``listener`` the client's messages go to ``start``'s queue."""
        if name in self.clients:
            raise ConfigError(f"MQTT client {name!r} exists already")
        if self._executor is not None:
            raise StateError("add every client before the first one starts")
        if listener is None:
            listener = QueueListener(name)
            self._queue_listeners.append(listener)
        client = MQTTClientWrapper(
            name,
            settings,
            client_id or name,
            listener,
            fallback_brokers=fallback_brokers,
            failover_after_seconds=failover_after_seconds,
            failback_check_seconds=failback_check_seconds,
            will=will,
            qos=qos,
            stats=stats,
            logger=logger,
        )
        self.clients[name] = client
        if upstream:
            self.upstream_client = name
        if primary_peer:
            self.primary_peer_client = name
        return client

    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=max(1, len(self.clients)), thread_name_prefix="mqtt-connect"
            )
            for client in self.clients.values():
                client.use_executor(self._executor)
        return self._executor

    def client(self, name: str) -> MQTTClientWrapper:
        return self.clients[name]

    def client_wrapper(self, client: str) -> MQTTClientWrapper:
        """The reference's name for :meth:`client`."""
        return self.clients[client]

    def upstream(self) -> MQTTClientWrapper:
        """The client added with ``upstream=True``; KeyError if none was."""
        return self.clients[self.upstream_client]

    def primary_peer(self) -> MQTTClientWrapper:
        """The client added with ``primary_peer=True``; KeyError if none was."""
        return self.clients[self.primary_peer_client]

    def connected(self, client: str) -> bool:
        return self.clients[client].connected()

    def start(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        async_queue: asyncio.Queue[RawMessage] | None = None,
    ) -> None:
        """Start every client on the running loop. ``loop`` (the reference's argument)
        must be that loop if given; ``async_queue`` receives the messages of the clients
        added without a listener."""
        if loop is not None and loop is not asyncio.get_running_loop():
            raise StateError("MQTTClients.start(loop, ...) must run on that loop")
        for listener in self._queue_listeners:
            listener.queue = async_queue
        self.executor()
        for client in self.clients.values():
            client.start()

    def stop(self, timeout: float = 5.0) -> asyncio.Task[None]:
        """Stop every client, as a task: await it (native) or not (the reference's plain
        ``stop()``). Loop-only; idempotent."""
        if self._stop_task is None or self._stop_task.done():
            self._stop_task = asyncio.get_running_loop().create_task(
                self._stop(timeout), name="mqtt_clients.stop"
            )
        return self._stop_task

    async def _stop(self, timeout: float) -> None:
        for client in self.clients.values():
            await client.stop(timeout)
        if self._executor is not None:
            # Connects still blocked in a thread end by their own connect timeout.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # -- the reference's per-client forms ---------------------------------------------------

    def publish(self, client: str, topic: str, payload: bytes, qos: QOS) -> bool:
        return self.clients[client].publish(topic, payload, qos)

    def subscribe(self, client: str, topic: str, qos: QOS) -> tuple[int, int | None]:
        return self.clients[client].subscribe(topic, qos)

    def unsubscribe(self, client: str, topic: str) -> tuple[int, int | None]:
        return self.clients[client].unsubscribe(topic)

    def subscribe_all(self, client: str) -> tuple[int, int | None]:
        return self.clients[client].subscribe_all()

    def subscribed(self, client: str) -> bool:
        return self.clients[client].subscribed()

    def num_subscriptions(self, client: str) -> int:
        return self.clients[client].num_subscriptions()

    def num_pending_subscriptions(self, client: str) -> int:
        return self.clients[client].num_pending_subscriptions()

    def enable_loggers(
        self, logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None
    ) -> None:
        for wrapper in self.clients.values():
            wrapper.enable_logger(logger)

    def disable_loggers(self) -> None:
        for wrapper in self.clients.values():
            wrapper.disable_logger()
