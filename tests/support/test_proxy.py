"""Tests of :mod:`.proxy`: the MQTT frame parser, and the fault proxy in front of real brokers.

Clients are paho-mqtt 2.x clients run by their own network threads (``loop_start``); their
callbacks post events to the test's event loop, where the proxy runs, so the test awaits
them (with timeouts) without blocking the proxy. A few tests use raw asyncio sockets where
the exact bytes or a TCP reset matter. Nothing sleeps: tests await client events or proxy
states (:meth:`FaultProxy.wait_until`), and time is measured only to check lower bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gwproactor.testing.ports import free_listen_port

from .paho import close_client
from .proxy import (
    FaultProxy,
    FaultProxyFactory,
    MqttFrameError,
    MqttFrameParser,
    PacketType,
    Piece,
    ProxyState,
    ProxyStateError,
)

if TYPE_CHECKING:
    from gwproactor.testing.mosquitto import Mosquitto

# The proxy module is a plugin too (fixture ``fault_proxy_factory``); its docstring turns
# assertion rewriting off, so registering it after the import above raises no warning.

TIMEOUT = 5.0
T = TypeVar("T")


# -- MQTT bytes -------------------------------------------------------------------------------


def encode_packet(packet_type: int, body: bytes, flags: int = 0) -> bytes:
    """An MQTT packet: fixed header (type, flags, varint remaining length) and ``body``."""
    length = len(body)
    header = bytearray([packet_type << 4 | flags])
    while True:
        byte, length = length & 0x7F, length >> 7
        header.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(header) + body


def connect_packet(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session and a 60 s keepalive."""
    cid = client_id.encode()
    return encode_packet(
        PacketType.CONNECT, b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    )


def subscribe_packet(packet_id: int, topic: str) -> bytes:
    """An MQTT 3.1.1 SUBSCRIBE to ``topic`` at QoS 0."""
    encoded = topic.encode()
    body = packet_id.to_bytes(2, "big") + len(encoded).to_bytes(2, "big") + encoded + b"\x00"
    return encode_packet(PacketType.SUBSCRIBE, body, flags=0b0010)


CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


async def read_packets(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    """Read ``count`` whole packets from ``reader`` (with :class:`MqttFrameParser`)."""
    parser = MqttFrameParser()
    packets: list[bytes] = []
    current = b""
    while len(packets) < count:
        chunk = await asyncio.wait_for(reader.read(65536), TIMEOUT)
        assert chunk, f"EOF after {len(packets)} of {count} packets"
        for piece in parser.feed(chunk):
            current += piece.data
            if piece.last:
                packets.append(current)
                current = b""
    assert not current, "bytes after the expected packets"
    return packets


# -- the parser -------------------------------------------------------------------------------


def reassemble(pieces: list[Piece]) -> list[tuple[int, bytes]]:
    """Whole packets from consecutive pieces, checking the first/last flags on the way."""
    packets: list[tuple[int, bytes]] = []
    current: bytes | None = None
    for piece in pieces:
        assert piece.first == (current is None), piece
        current = (current or b"") + piece.data
        if piece.last:
            packets.append((piece.packet_type, current))
            current = None
    assert current is None, "unfinished packet"
    return packets


packets_strategy = st.lists(
    st.tuples(st.integers(1, 15), st.integers(0, 300)), min_size=1, max_size=8
).map(lambda specs: [encode_packet(t, os.urandom(n)) for t, n in specs])


@settings(database=None, max_examples=100, deadline=None)
@given(packets=packets_strategy, data=st.data())
def test_parser_splits_any_chunking_into_the_same_packets(
    packets: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    parser = MqttFrameParser()
    pieces: list[Piece] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        chunk_pieces = parser.feed(stream[start:end])
        assert b"".join(p.data for p in chunk_pieces) == stream[start:end]
        pieces += chunk_pieces
    assert reassemble(pieces) == [(p[0] >> 4, p) for p in packets]


@pytest.mark.parametrize(
    ("body_length", "header_length"),
    [(0, 2), (127, 2), (128, 3), (16383, 3), (16384, 4), (2097151, 4), (2097152, 5)],
)
def test_parser_decodes_remaining_length_of_one_to_four_bytes(
    body_length: int, header_length: int
) -> None:
    packet = encode_packet(PacketType.PUBLISH, bytes(body_length))
    assert len(packet) == header_length + body_length
    parser = MqttFrameParser()
    # The header fed byte by byte: the varint must survive being split anywhere.
    pieces = [p for i in range(header_length) for p in parser.feed(packet[i : i + 1])]
    pieces += parser.feed(packet[header_length:])
    assert reassemble(pieces) == [(PacketType.PUBLISH, packet)]


@pytest.mark.parametrize(
    "stream",
    [b"\x00\x00", b"\x30\xff\xff\xff\xff\x01", b"\xd0\x00\x0f\x00"],
    ids=["type-0", "five-byte-length", "type-0-after-a-packet"],
)
def test_parser_rejects_non_mqtt_streams_for_good(stream: bytes) -> None:
    parser = MqttFrameParser()
    with pytest.raises(MqttFrameError, match="not an MQTT stream"):
        parser.feed(stream)
    with pytest.raises(MqttFrameError):
        parser.feed(b"\xd0\x00")  # a valid PINGRESP: the boundaries are lost already


# -- paho clients for the tests ---------------------------------------------------------------


@dataclass(frozen=True)
class Connected:
    """on_connect fired (the broker accepted: the tests' brokers accept everyone)."""


@dataclass(frozen=True)
class Disconnected:
    """on_disconnect fired: the link was lost or closed."""


@dataclass(frozen=True)
class Subscribed:
    """on_subscribe fired: the SUBACK for ``mid`` arrived."""

    mid: int


@dataclass(frozen=True)
class Received:
    """on_message fired; ``at`` is ``time.monotonic()`` in paho's thread."""

    topic: str
    payload: bytes
    at: float


Event = Connected | Disconnected | Subscribed | Received


class PahoClient:
    """A paho 2.x client on its own network thread whose callbacks become :data:`Event` s
    queued on the test's loop. Methods are loop-only but :meth:`stop` (any thread)."""

    def __init__(self, client_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self.client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        # Tests break links on purpose and then wait for paho's reconnection: no backoff.
        self.client.reconnect_delay_set(min_delay=0, max_delay=0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self, address: tuple[str, int]) -> None:
        """Connect in paho's thread (retrying until it succeeds) and keep it connected."""
        self.client.connect_async(*address, keepalive=60)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect and join paho's thread. Blocking: run it in a worker thread."""
        close_client(self.client)

    async def next(self, timeout: float = TIMEOUT) -> Event:
        """The next event; ``TimeoutError`` if none comes within ``timeout``."""
        return await asyncio.wait_for(self._events.get(), timeout)

    async def expect(self, kind: type[T], timeout: float = TIMEOUT) -> T:
        """The next event, which must be a ``kind``."""
        event = await self.next(timeout)
        assert isinstance(event, kind), f"expected {kind.__name__}, got {event!r}"
        return event

    def pending(self) -> list[Event]:
        """The events queued now, without waiting."""
        events: list[Event] = []
        while not self._events.empty():
            events.append(self._events.get_nowait())
        return events

    def subscribe(self, topic: str) -> int:
        """Send SUBSCRIBE (QoS 0); returns its mid."""
        rc, mid = self.client.subscribe(topic, qos=0)
        assert rc is MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None
        return mid

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue a QoS 0 PUBLISH (paho's thread sends it)."""
        info = self.client.publish(topic, payload, qos=0)
        assert info.rc is MQTTErrorCode.MQTT_ERR_SUCCESS

    # paho's callbacks, in paho's thread

    def _post(self, event: Event) -> None:
        # The loop may be closed if paho calls back after the test ended: nobody listens.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._post(Connected())

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._post(Disconnected())

    def _on_subscribe(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._post(Subscribed(mid))

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        self._post(Received(message.topic, bytes(message.payload), time.monotonic()))


class PahoClients:
    """Makes connected :class:`PahoClient` s with unique ids; :meth:`aclose` stops them."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._clients: list[PahoClient] = []

    async def connect(self, name: str, address: tuple[str, int]) -> PahoClient:
        """A client connected to ``address`` (its first event, Connected, consumed)."""
        client = PahoClient(f"{self._prefix}-{name}", asyncio.get_running_loop())
        self._clients.append(client)
        client.start(address)
        await client.expect(Connected)
        return client

    async def aclose(self) -> None:
        # In worker threads: joining paho's threads must not block the loop the proxy runs on.
        await asyncio.gather(*(asyncio.to_thread(c.stop) for c in self._clients))


@pytest.fixture
def topic() -> str:
    """A topic prefix no other test uses."""
    return f"test/proxy/{uuid.uuid4().hex}"


@pytest.fixture
async def paho(
    request: pytest.FixtureRequest, mosquitto: Mosquitto, fault_proxy_factory: FaultProxyFactory
) -> AsyncIterator[PahoClients]:
    """Client factory; depends on the broker and proxies so that it is torn down first."""
    clients = PahoClients(f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}")
    try:
        yield clients
    finally:
        await clients.aclose()


@pytest.fixture
async def proxy(fault_proxy_factory: FaultProxyFactory, mosquitto: Mosquitto) -> FaultProxy:
    """A started proxy in front of ``mosquitto``."""
    return await fault_proxy_factory((mosquitto.host, mosquitto.port))


def direct(broker: Mosquitto) -> tuple[str, int]:
    """The broker's own address, bypassing any proxy."""
    return broker.host, broker.port


async def raw_connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw socket through ``proxy`` that has completed an MQTT CONNECT/CONNACK."""
    reader, writer = await asyncio.open_connection(*proxy.address)
    writer.write(connect_packet(f"raw-{uuid.uuid4().hex}"))
    assert await asyncio.wait_for(reader.readexactly(4), TIMEOUT) == CONNACK_ACCEPTED
    return reader, writer


async def close_raw(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):  # the proxy may have reset it already
        await writer.wait_closed()


# -- the proxy --------------------------------------------------------------------------------


async def test_passes_pub_sub_through_and_counts_it(
    proxy: FaultProxy, paho: PahoClients, topic: str
) -> None:
    sub = await paho.connect("sub", proxy.address)
    pub = await paho.connect("pub", proxy.address)
    mid = sub.subscribe(f"{topic}/a")
    assert await sub.next() == Subscribed(mid)
    pub.publish(f"{topic}/a", b"hello")
    received = await sub.expect(Received)
    assert (received.topic, received.payload) == (f"{topic}/a", b"hello")

    stats = proxy.stats()
    assert (stats.accepted, stats.refused, proxy.connection_count) == (2, 0, 2)
    kind = PacketType
    assert stats.up.packets == {kind.CONNECT: 2, kind.SUBSCRIBE: 1, kind.PUBLISH: 1}
    assert stats.down.packets == {kind.CONNACK: 2, kind.SUBACK: 1, kind.PUBLISH: 1}
    assert stats.up.forwarded_bytes == stats.up.received_bytes > 0
    assert stats.down.forwarded_bytes == stats.down.received_bytes > 0


async def test_tasks_are_named_by_port_connection_and_direction(proxy: FaultProxy) -> None:
    _, writer = await raw_connect(proxy)
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert {f"proxy[{proxy.port}].1.up", f"proxy[{proxy.port}].1.down"} <= names
    await close_raw(writer)
    # The client's EOF travels to the broker, whose EOF travels back: both pumps end.
    await proxy.wait_until(lambda: proxy.connection_count == 0)


async def test_cut_resets_connections_and_clients_reconnect(
    proxy: FaultProxy, paho: PahoClients, topic: str
) -> None:
    gateway = await paho.connect("gateway", proxy.address)
    proxy.cut()
    assert [await gateway.next(), await gateway.next()] == [Disconnected(), Connected()]
    assert proxy.stats().accepted == 2 and proxy.connection_count == 1

    # The new connection carries traffic both ways.
    mid = gateway.subscribe(topic)
    assert await gateway.next() == Subscribed(mid)
    gateway.publish(topic, b"after the cut")
    assert (await gateway.expect(Received)).payload == b"after the cut"


async def test_cut_is_a_tcp_reset(proxy: FaultProxy) -> None:
    reader, writer = await raw_connect(proxy)
    proxy.cut()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), TIMEOUT)
    await close_raw(writer)
    assert proxy.connection_count == 0


async def test_refuse_resets_new_connections_until_turned_off(proxy: FaultProxy) -> None:
    _, kept_writer = await raw_connect(proxy)
    proxy.refuse()
    reader, writer = await asyncio.open_connection(*proxy.address)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), TIMEOUT)
    await close_raw(writer)
    assert (proxy.stats().accepted, proxy.stats().refused, proxy.connection_count) == (1, 1, 1)

    proxy.refuse(False)
    _, writer = await raw_connect(proxy)
    assert (proxy.stats().accepted, proxy.stats().refused, proxy.connection_count) == (2, 1, 2)
    await close_raw(writer)
    await close_raw(kept_writer)


async def test_paho_reconnects_once_refusing_stops(proxy: FaultProxy, paho: PahoClients) -> None:
    gateway = await paho.connect("gateway", proxy.address)
    proxy.refuse()
    proxy.cut()
    await proxy.wait_until(lambda: proxy.stats().refused >= 2)  # paho keeps trying
    proxy.refuse(False)
    events = [await gateway.next()]
    while events[-1] != Connected():
        events.append(await gateway.next())
    # The cut, then zero or more attempts that got as far as a connection before the reset.
    assert set(events[:-1]) == {Disconnected()}


async def test_unreachable_upstream_resets_the_client(
    fault_proxy_factory: FaultProxyFactory,
) -> None:
    proxy = await fault_proxy_factory(("127.0.0.1", free_listen_port()))
    reader, writer = await asyncio.open_connection(*proxy.address)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), TIMEOUT)
    await close_raw(writer)
    assert proxy.stats().accepted == 1 and proxy.connection_count == 0


async def test_stall_holds_bytes_until_resumed_in_order(
    proxy: FaultProxy, mosquitto: Mosquitto, paho: PahoClients, topic: str
) -> None:
    sub = await paho.connect("sub", proxy.address)
    pub = await paho.connect("pub", direct(mosquitto))
    mid = sub.subscribe(topic)
    assert await sub.next() == Subscribed(mid)
    forwarded = proxy.stats().down.forwarded_bytes

    proxy.stall()
    for i in range(10):
        pub.publish(topic, b"%d" % i)
    # The proxy has read all ten from the broker, and forwarded none of them.
    await proxy.wait_until(lambda: proxy.stats().down.packets.get(PacketType.PUBLISH) == 10)
    assert proxy.stats().down.forwarded_bytes == forwarded
    assert sub.pending() == []
    assert proxy.connection_count == 1  # nothing was closed

    proxy.stall(False)
    received = [await sub.expect(Received) for _ in range(10)]
    assert [r.payload for r in received] == [b"%d" % i for i in range(10)]


async def test_stall_one_direction_lets_the_other_flow(
    proxy: FaultProxy, mosquitto: Mosquitto, paho: PahoClients, topic: str
) -> None:
    gateway = await paho.connect("gateway", proxy.address)
    cloud = await paho.connect("cloud", direct(mosquitto))
    mid = gateway.subscribe(f"{topic}/down")
    assert await gateway.next() == Subscribed(mid)
    mid = cloud.subscribe(f"{topic}/up")
    assert await cloud.next() == Subscribed(mid)

    proxy.stall(direction="up")
    gateway.publish(f"{topic}/up", b"stuck")
    await proxy.wait_until(lambda: proxy.stats().up.packets.get(PacketType.PUBLISH) == 1)
    cloud.publish(f"{topic}/down", b"flows")
    assert (await gateway.expect(Received)).payload == b"flows"
    assert cloud.pending() == []

    proxy.stall(False, direction="up")
    assert (await cloud.expect(Received)).payload == b"stuck"


async def test_held_suback_comes_after_a_publish_the_subscription_let_through(
    proxy: FaultProxy, mosquitto: Mosquitto, paho: PahoClients, topic: str
) -> None:
    gateway = await paho.connect("gateway", proxy.address)
    cloud = await paho.connect("cloud", direct(mosquitto))
    proxy.hold_packets({PacketType.SUBACK})
    mid = gateway.subscribe(topic)
    # The broker creates a subscription before it sends the SUBACK: once the SUBACK is
    # held, a PUBLISH to the topic is delivered, and it overtakes the SUBACK.
    await proxy.wait_until(lambda: proxy.held_count == 1)
    assert proxy.held_types == (PacketType.SUBACK,)
    cloud.publish(topic, b"early")
    assert (await gateway.expect(Received)).payload == b"early"
    assert gateway.pending() == []

    assert proxy.release_held() == 1
    assert await gateway.next() == Subscribed(mid)
    assert proxy.held_count == 0


async def test_held_subacks_are_released_one_at_a_time_in_order(
    proxy: FaultProxy, paho: PahoClients, topic: str
) -> None:
    gateway = await paho.connect("gateway", proxy.address)
    proxy.hold_packets({PacketType.SUBACK})
    mids = [gateway.subscribe(f"{topic}/{i}") for i in range(3)]
    await proxy.wait_until(lambda: proxy.held_count == 3)
    for i, mid in enumerate(mids):
        assert proxy.release_held(count=1) == 1
        assert await gateway.next() == Subscribed(mid)
        # The others are still in the proxy: nothing else can have reached the client.
        assert proxy.held_count == 2 - i
        assert gateway.pending() == []
    assert proxy.release_held() == 0


async def test_release_waits_for_the_end_of_a_packet_in_flight(
    proxy: FaultProxy, mosquitto: Mosquitto, paho: PahoClients, topic: str
) -> None:
    reader, writer = await raw_connect(proxy)
    cloud = await paho.connect("cloud", direct(mosquitto))
    proxy.hold_packets({PacketType.SUBACK})
    writer.write(subscribe_packet(1, topic))
    await proxy.wait_until(lambda: proxy.held_count == 1)

    # A slow PUBLISH is partly forwarded when the SUBACK is released: the SUBACK must wait
    # for its end rather than land in the middle of it.
    proxy.throttle(50_000)
    forwarded = proxy.stats().down.forwarded_bytes
    payload = os.urandom(10_000)
    cloud.publish(topic, payload)
    await proxy.wait_until(lambda: proxy.stats().down.forwarded_bytes > forwarded + 1000)
    assert proxy.release_held() == 1

    publish, suback = await read_packets(reader, 2)
    assert publish[0] >> 4 == PacketType.PUBLISH and publish.endswith(payload)
    assert suback == encode_packet(PacketType.SUBACK, b"\x00\x01\x00")
    await close_raw(writer)


async def test_delay_adds_latency_each_way_and_keeps_order(
    proxy: FaultProxy, paho: PahoClients, topic: str
) -> None:
    gateway = await paho.connect("gateway", proxy.address)
    mid = gateway.subscribe(topic)
    assert await gateway.next() == Subscribed(mid)
    delay = 0.1
    proxy.delay(delay)
    start = time.monotonic()
    for i in range(5):
        gateway.publish(topic, b"%d" % i)
    received = [await gateway.expect(Received) for _ in range(5)]
    assert [r.payload for r in received] == [b"%d" % i for i in range(5)]
    # Through the proxy to the broker and back: delayed twice.
    assert min(r.at for r in received) - start >= 2 * delay


async def test_throttle_bounds_throughput(
    proxy: FaultProxy, mosquitto: Mosquitto, paho: PahoClients, topic: str
) -> None:
    sub = await paho.connect("sub", proxy.address)
    pub = await paho.connect("pub", direct(mosquitto))
    mid = sub.subscribe(topic)
    assert await sub.next() == Subscribed(mid)
    rate, size = 50_000, 20_000
    proxy.throttle(rate)
    payload = os.urandom(size)
    start = time.monotonic()
    pub.publish(topic, payload)
    received = await sub.expect(Received)
    assert received.payload == payload
    # size / rate = 0.4 s; half of it leaves room for slicing and clock granularity.
    assert received.at - start >= 0.5 * size / rate


async def test_stop_resets_stalled_connections_and_ends_every_task(mosquitto: Mosquitto) -> None:
    async with FaultProxy(mosquitto.host, mosquitto.port) as proxy:
        reader, writer = await raw_connect(proxy)
        proxy.stall()
        writer.write(encode_packet(PacketType.PINGREQ, b""))
        await proxy.wait_until(lambda: proxy.stats().up.packets.get(PacketType.PINGREQ) == 1)
    assert proxy.state is ProxyState.STOPPED
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), TIMEOUT)
    await close_raw(writer)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith(proxy.name)]
    await proxy.stop()  # idempotent
    with pytest.raises(ProxyStateError):
        await proxy.start()


def test_controls_check_their_arguments() -> None:
    proxy = FaultProxy("127.0.0.1", 1)  # never started: nothing connects to port 1
    with pytest.raises(ProxyStateError):
        _ = proxy.port
    with pytest.raises(ValueError, match="delay"):
        proxy.delay(-1)
    with pytest.raises(ValueError, match="throttle"):
        proxy.throttle(0)
    with pytest.raises(ValueError, match=r"\[0, 16\]"):
        proxy.hold_packets({0, 9, 16})
    with pytest.raises(ProxyStateError, match="mqtt=False"):
        FaultProxy("127.0.0.1", 1, mqtt=False).hold_packets({9})
