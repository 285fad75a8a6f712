"""LoopIO after a lost connection: no busy loop over bytes nothing will ever parse.

The product's own classes on a socket pair: the "broker" sends a packet paho rejects
(a protocol error, so paho closes the connection mid-buffer) followed by more packets.
The bytes behind the bad packet can never be parsed: the connection is gone. ``drain``
must not keep re-scheduling itself for them (issue 17, item 7: 375,224 drain calls in
one second, the loop at 100 % CPU with zero lag).

Also: the quick-ACK syscall after each read comes after the read's messages are handed over.
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


class _RecordingSocket(socket.socket):
    """A TCP socket that notes its TCP_QUICKACK calls in ``order``."""

    order: list[str]

    def setsockopt(self, *args: Any) -> None:
        if args[:2] == (socket.IPPROTO_TCP, getattr(socket, "TCP_QUICKACK", -1)):
            self.order.append("quickack")
        super().setsockopt(*args)


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")
async def test_quickack_is_set_after_the_read_is_handed_over() -> None:
    """Re-arming TCP quick-ACK is a syscall per read: it comes after the messages of the
    read reach the receive queue's drain, not before (it was in their latency)."""
    order: list[str] = []
    read = asyncio.Event()

    def read_done() -> None:
        order.append("read_done")
        read.set()

    with socket.create_server(("127.0.0.1", 0)) as server:
        plain = socket.create_connection(server.getsockname())
        theirs, _ = server.accept()
    ours = _RecordingSocket(fileno=plain.detach())
    ours.order = order
    ours.setblocking(False)
    try:
        io = LoopIO(BrokerSettings(tcp_quickack=True), read_done)
        client = BufferedClient(
            CallbackAPIVersion.VERSION2, client_id="t", protocol=MQTTProtocolVersion.MQTTv311
        )
        attach_socket(client, ours)
        io.client = client
        io.loop = asyncio.get_running_loop()
        io.attach(client, BrokerSettings(tcp_quickack=True))
        theirs.sendall(PINGRESP)
        async with asyncio.timeout(10):
            await read.wait()
        assert order[:2] == ["read_done", "quickack"], order
        io.cancel_misc()
        io.detach()
    finally:
        ours.close()
        theirs.close()
