"""LoopIO after a lost connection: no busy loop over bytes nothing will ever parse.

The product's own classes on a socket pair: the "broker" sends a packet paho rejects
(a protocol error, so paho closes the connection mid-buffer) followed by more packets.
The bytes behind the bad packet can never be parsed: the connection is gone. ``drain``
must not keep re-scheduling itself for them (issue 17, item 7: 375,224 drain calls in
one second, the loop at 100 % CPU with zero lag).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from paho.mqtt.client import Client, DisconnectFlags
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gwproactor.config import BrokerSettings
from gwproactor.mqtt._buffered import BufferedClient
from gwproactor.mqtt._loop_io import LoopIO
from gwproactor.mqtt._paho import attach_socket

BAD_PACKET = b"\x00\x00"  # command 0 is reserved: paho reports a protocol error
PINGRESP = b"\xd0\x00"


class Counting(LoopIO):
    def __init__(self) -> None:
        super().__init__(BrokerSettings(), lambda: None)
        self.drains = 0
        self.disconnected = asyncio.Event()

    def drain(self) -> None:
        self.drains += 1
        super().drain()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


async def test_drain_stops_once_the_connection_is_lost_mid_buffer(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    io = Counting()
    client = BufferedClient(
        CallbackAPIVersion.VERSION2, client_id="t", protocol=MQTTProtocolVersion.MQTTv311
    )

    def on_disconnect(
        _c: Client, _u: Any, _f: DisconnectFlags, _r: ReasonCode, _p: Properties | None
    ) -> None:
        io.disconnected.set()
        io.detach()  # what MQTTClientWrapper does on a lost connection

    client.on_disconnect = on_disconnect
    attach_socket(client, ours)
    io.client = client
    io.loop = asyncio.get_running_loop()
    io.attach(client, BrokerSettings())
    theirs.sendall(BAD_PACKET + PINGRESP * 1000)
    # One readable event: one read, one drain, the protocol error, the disconnect.
    async with asyncio.timeout(10):
        await io.disconnected.wait()
    assert client.socket() is None
    before = io.drains
    for _ in range(200):
        await asyncio.sleep(0)
    assert io.drains - before <= 1, f"drain ran {io.drains - before} times for a dead socket"
    assert client.buffered == 0, "the dead connection's bytes are forgotten"
    io.cancel_misc()
