"""The transport factory that gives each link its own MQTT connection."""

from __future__ import annotations

from gwproactor.links._link import Link, TransportFactory, presence_payload
from gwproactor.mqtt import MQTTClients, Transport, TransportListener
from gwproactor.observe.logger import ProactorLogger

__all__ = ("mqtt_transport_factory",)


def mqtt_transport_factory(
    clients: MQTTClients, gateway: str, logger: ProactorLogger
) -> TransportFactory:
    """A factory that adds one client per link to ``clients``: the link's brokers (and
    fallbacks), a client id stable per gateway and link, the upstream and primary-peer
    roles, and the retained "offline" will when the link publishes presence."""

    def factory(link: Link, listener: TransportListener) -> Transport:
        settings = link.settings
        return clients.add_client(
            link.name,
            settings.broker,
            upstream=settings.role == "upstream",
            primary_peer=settings.primary,
            client_id=settings.client_id or f"{gateway}-{link.name}",
            listener=listener,
            fallback_brokers=settings.fallback_brokers,
            failover_after_seconds=settings.failover_after_seconds,
            failback_check_seconds=settings.failback_check_seconds,
            will=(link.status_topic, presence_payload(gateway, False))
            if settings.uses_presence
            else None,
            qos=link.qos,
            stats=link.stats,
            logger=logger.child(f"mqtt.{link.name}"),
        )

    return factory
