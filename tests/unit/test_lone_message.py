"""A lone message (at 1,000 msg/s every message arrives alone: one wake-up each) reaches
its actor with little work in front of it, and what can wait comes after it.

* From the link to the actor: the Python calls made for one message (the latency benchmark
  added ~20-30 µs over raw paho; each frame is ~0.1-0.2 µs of it). Before: 24 calls,
  among them ``Mapping.get`` around ``Routes.__getitem__``, ``ListenerHub.__bool__`` twice,
  ``Link.type_label`` and ``MessageRegistry.__contains__``, ``Link._heard`` (and its
  ``overdue`` property) for an active link with no ping out, ``model_validate_json`` (a
  frame around the validator), two ``Ok`` objects and ``ok_value``, ``put_quietly`` and
  ``_dispatch_one``; then 12 with ``_dispatch_batch`` (now inline in ``drain``). Now 11,
  the actor's own two included.
* In the socket's read: no settings read and no ``contextlib.suppress`` per read; the
  PUBACK of a QoS 1 message is sent after the message was
  dispatched, in the same read (it was a ``call_soon``: one more loop iteration and
  ``epoll_wait`` per message), and before quick-ACK is re-armed (re-armed first, it sent
  a bare ACK ahead of the PUBACK that would have carried it: a packet more per message).
"""

from __future__ import annotations

import asyncio
import collections
import select
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gwproactor import BrokerSettings, Proactor
from gwproactor.mqtt import MemoryBroker
from gwproactor.mqtt._buffered import BufferedClient
from gwproactor.mqtt._loop_io import LoopIO
from gwproactor.mqtt._paho import attach_socket
from gwproactor.wire.message import Message
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Hello,
    Recorder,
    is_state,
    memory_factory,
    pair_settings,
)

Calls = collections.Counter[tuple[str, str]]


def _calls(run: Any) -> Calls:
    """The Python functions ``run`` calls (file name, function), with their counts; this
    module's own (``run`` itself) left out."""
    calls: Calls = collections.Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename != __file__:
            calls[(Path(frame.f_code.co_filename).name, frame.f_code.co_name)] += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


async def test_a_lone_message_reaches_its_actor_in_few_calls() -> None:
    parent, _ = pair_settings(BrokerSettings())
    proactor = Proactor(parent, REGISTRY, transport_factory=memory_factory(MemoryBroker()))
    recorder = Recorder("recorder", proactor)
    proactor.add_communicator(recorder)
    proactor.route(Hello.type_name, recorder.name)
    with proactor.listener("link.state") as states:
        await proactor.start()
        await states.wait_for(is_state("awaiting_peer", "child"), TIMEOUT)  # subscribed
    try:
        link = proactor.link("child")

        def wire(n: int) -> tuple[str, bytes]:
            message = Message.create("child", "parent", Hello(n=n))
            return link.codec.header_topic(message.header), link.codec.encode(message)

        def receive(topic: str, payload: bytes) -> None:
            link.on_transport_message(topic, payload)  # what the transport does per read
            link.on_transport_read_done()

        for n in range(3):  # the link becomes active; caches fill
            receive(*wire(n))
        assert link.active
        topic, payload = wire(99)
        calls = _calls(lambda: receive(topic, payload))
    finally:
        await proactor.stop_and_join()
    assert [m.payload.n for m in recorder.received] == [0, 1, 2, 99]
    replaced = {
        ("<frozen _collections_abc>", "get"),
        ("listeners.py", "__bool__"),
        ("_link.py", "type_label"),
        ("_link.py", "_heard"),
        ("main.py", "model_validate_json"),
        ("result.py", "ok_value"),
        ("_dispatcher.py", "put_quietly"),
    }
    assert not replaced & set(calls), calls
    assert sum(calls.values()) <= 11, calls


class _RecordingSocket(socket.socket):
    """A TCP socket that notes its sends and its TCP_QUICKACK calls in ``order``."""

    order: list[str]

    def send(self, data: Any, flags: int = 0) -> int:
        self.order.append(f"send {bytes(data).hex()}")
        return super().send(data, flags)

    def setsockopt(self, *args: Any) -> None:
        if args[:2] == (socket.IPPROTO_TCP, getattr(socket, "TCP_QUICKACK", -1)):
            self.order.append("quickack")
        super().setsockopt(*args)


class _CountingSettings(BrokerSettings):
    """Counts reads of its fields (a pydantic model's attribute read goes through its
    ``__getattr__`` hook: a few hundred instructions)."""

    def __getattribute__(self, name: str) -> Any:
        if name in BrokerSettings.model_fields:
            reads = object.__getattribute__(self, "__dict__").setdefault("_reads", [])
            reads.append(name)
        return super().__getattribute__(name)


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")
async def test_a_qos1_puback_goes_out_in_the_read_after_dispatch_before_quickack() -> None:
    order: list[str] = []
    settings = _CountingSettings(tcp_quickack=True)
    io = LoopIO(settings, lambda: order.append("dispatched"))
    with socket.create_server(("127.0.0.1", 0)) as server:
        plain = socket.create_connection(server.getsockname())
        theirs, _ = server.accept()
    ours = _RecordingSocket(fileno=plain.detach())
    ours.order = order
    ours.setblocking(False)
    try:
        client = BufferedClient(
            CallbackAPIVersion.VERSION2, client_id="t", protocol=MQTTProtocolVersion.MQTTv311
        )
        client.on_publish_fast(lambda topic, payload: order.append(f"delivered {topic}"))
        attach_socket(client, ours)
        io.client = client
        io.loop = asyncio.get_running_loop()
        io.attach(client, settings)
        topic = b"gw/child/to/parent/x.y"
        body = len(topic).to_bytes(2, "big") + topic + (0x1234).to_bytes(2, "big") + b"{}"
        theirs.sendall(bytes([0x32, len(body)]) + body)  # PUBLISH, QoS 1, packet id 0x1234
        assert select.select([ours], [], [], 10)[0], "the PUBLISH did not arrive"
        reads: list[str] = settings.__dict__.setdefault("_reads", [])
        reads.clear()
        calls = _calls(io.on_readable)  # what the loop calls: one readable event
        # Nothing per read that a connection's set-up can do once: no settings read (they
        # were: read_buffer_bytes, read_batch_packets), no contextlib.suppress object.
        assert reads == []
        assert not [c for c in calls if c[0] == "contextlib.py"], calls
        # All of it within the one call: no loop iteration between the dispatch and the ack.
        assert order == [
            "delivered gw/child/to/parent/x.y",
            "dispatched",
            "send 40021234",
            "quickack",
        ]
        io.detach()
    finally:
        ours.close()
        theirs.close()
