"""Small helpers for the plain paho clients that tests use as devices and bystanders."""

from __future__ import annotations

from paho.mqtt.client import Client

from gwproactor.mqtt._paho import close_all

__all__ = ("close_client",)


def close_client(client: Client) -> None:
    """Disconnect, stop the network thread and close every socket the client holds.

    paho keeps a socket pair for waking its thread and closes it only when the client is
    garbage collected; closing it here keeps ResourceWarnings (errors in this suite) from
    surfacing later, in whichever test happens to trigger the collection.
    """
    client.disconnect()
    client.loop_stop()
    close_all(client)
