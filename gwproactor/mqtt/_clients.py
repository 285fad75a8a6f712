"""MQTTClients: the named MQTT connections of one gateway."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from gwproactor.config import QOS, BrokerSettings
from gwproactor.errors import ConfigError, StateError
from gwproactor.mqtt._client import MQTTClientWrapper
from gwproactor.mqtt._types import TransportListener
from gwproactor.observe.stats import LinkStats

__all__ = ("MQTTClients",)


class MQTTClients:
    """Every :class:`MQTTClientWrapper` of a gateway by link name, the roles the seed API
    names (``upstream_client``, ``primary_peer_client``), and the small thread pool in which
    their blocking connects run (one thread per client at most, so one slow broker cannot
    hold up the others). Loop-only."""

    def __init__(self) -> None:
        self.clients: dict[str, MQTTClientWrapper] = {}
        self.upstream_client: str | None = None
        self.primary_peer_client: str | None = None
        self._executor: ThreadPoolExecutor | None = None

    def add_client(
        self,
        name: str,
        settings: BrokerSettings,
        client_id: str,
        listener: TransportListener,
        *,
        upstream: bool = False,
        primary_peer: bool = False,
        fallback_brokers: Sequence[BrokerSettings] = (),
        failover_after_seconds: float = 10.0,
        failback_check_seconds: float = 30.0,
        will: tuple[str, bytes] | None = None,
        qos: QOS = QOS.AtLeastOnce,
        stats: LinkStats | None = None,
        logger: logging.Logger | None = None,
    ) -> MQTTClientWrapper:
        if name in self.clients:
            raise ConfigError(f"MQTT client {name!r} exists already")
        if self._executor is not None:
            raise StateError("add every client before the first one starts")
        client = MQTTClientWrapper(
            name,
            settings,
            client_id,
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

    def connected(self, name: str) -> bool:
        return self.clients[name].connected

    def start(self) -> None:
        self.executor()
        for client in self.clients.values():
            client.start()

    async def stop(self, timeout: float = 5.0) -> None:
        for client in self.clients.values():
            await client.stop(timeout)
        if self._executor is not None:
            # Connects still blocked in a thread end by their own connect timeout.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
