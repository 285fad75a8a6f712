"""BufferedClient's short path for incoming PUBLISH packets, against paho's own parser.

Packets are fed to the client as the event loop would feed socket reads, split at
arbitrary points; what reaches the application and what the client writes back (PUBACKs)
must be the same whichever parser took the packet.
"""

from __future__ import annotations

import functools
import itertools
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gwproactor.mqtt._buffered import BufferedClient
from gwproactor.mqtt._paho import attach_socket
from tests.helpers import count_opcodes

Delivery = tuple[str, bytes]


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(
    topic: bytes, payload: bytes, qos: int = 0, mid: int = 1, properties: bytes | None = None
) -> bytes:
    """A PUBLISH packet; ``properties`` (MQTT 5) is the encoded property block, length
    included (``b"\\x00"`` for none)."""
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    if properties is not None:
        body += properties
    body += payload
    return bytes([0x30 | (qos << 1)]) + remaining_length(len(body)) + body


class Harness:
    """A BufferedClient on one end of a socket pair, recording who delivered what."""

    def __init__(self, fast: bool, protocol: MQTTProtocolVersion) -> None:
        self.client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="t", protocol=protocol)
        self.ours, self.theirs = socket.socketpair()
        self.theirs.setblocking(False)
        attach_socket(self.client, self.ours)
        self.client.buffer_writes(lambda: None)
        self.fast: list[Delivery] = []
        self.slow: list[Delivery] = []
        self.client.on_message = self._on_message
        self.client.on_publish_fast(self._on_fast if fast else None)

    def _on_message(self, _c: Client, _u: Any, message: MQTTMessage) -> None:
        # The raw topic: paho hands over topics that are not UTF-8 too.
        self.slow.append(
            (message._topic.decode("utf-8", "surrogateescape"), bytes(message.payload))
        )

    def _on_fast(self, topic: str, payload: bytes) -> None:
        self.fast.append((topic, payload))

    def feed(self, data: bytes) -> None:
        self.client.feed(data)
        assert self.client.read_packets(10_000, lambda: False)

    @property
    def delivered(self) -> list[Delivery]:
        return self.fast + self.slow

    def written(self) -> bytes:
        """What the client wrote back (PUBACKs, PUBRECs), as sent on the socket."""
        assert self.client.flush()
        try:
            return self.theirs.recv(65536)
        except BlockingIOError:
            return b""

    def read_all(self) -> bytes:
        """Everything written so far, however large."""
        assert self.client.flush()
        out = b""
        while True:
            try:
                chunk = self.theirs.recv(65536)
            except BlockingIOError:
                return out
            out += chunk

    def close(self) -> None:
        self.ours.close()
        self.theirs.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness(True, MQTTProtocolVersion.MQTTv311)
    yield h
    h.close()


def test_qos0_and_qos1_take_the_short_path_and_qos1_is_acked(harness: Harness) -> None:
    stream = publish_packet(b"gw/a/to/b/x.y", b'{"n":1}') + publish_packet(
        b"gw/a/to/b/x.y", b'{"n":2}', qos=1, mid=0x1234
    )
    harness.feed(stream)
    assert harness.fast == [("gw/a/to/b/x.y", b'{"n":1}'), ("gw/a/to/b/x.y", b'{"n":2}')]
    assert harness.slow == []
    assert harness.written() == b"\x40\x02\x12\x34"
    assert harness.client.buffered == 0


def test_a_packet_split_across_reads_is_delivered_once_whole(harness: Harness) -> None:
    packet = publish_packet(b"t/" + b"x" * 200, b"p" * 300, qos=1, mid=7)  # 2-byte length
    for i in range(len(packet)):
        harness.feed(packet[i : i + 1])
        if i < len(packet) - 1:
            assert harness.delivered == [], f"delivered after {i + 1} of {len(packet)} bytes"
    assert harness.delivered == [("t/" + "x" * 200, b"p" * 300)]
    assert harness.written() == b"\x40\x02\x00\x07"


def test_qos2_is_left_to_paho(harness: Harness) -> None:
    harness.feed(publish_packet(b"t", b"two", qos=2, mid=9))
    assert harness.fast == []
    assert harness.written() == b"\x50\x02\x00\x09"  # PUBREC: paho's QoS 2 handshake
    harness.feed(b"\x62\x02\x00\x09")  # PUBREL
    assert harness.slow == [("t", b"two")]


def test_a_topic_that_is_not_utf8_is_left_to_paho(harness: Harness) -> None:
    harness.feed(publish_packet(b"t/\xff", b"x"))
    assert harness.fast == []
    assert harness.slow == [(b"t/\xff".decode("utf-8", "surrogateescape"), b"x")]


def test_mqtt5_without_properties_is_short_with_properties_is_paho() -> None:
    h = Harness(True, MQTTProtocolVersion.MQTTv5)
    try:
        expiry = b"\x05\x02\x00\x00\x00\x3c"  # Message Expiry Interval = 60
        h.feed(publish_packet(b"t/plain", b"a", qos=1, mid=3, properties=b"\x00"))
        h.feed(publish_packet(b"t/props", b"b", qos=1, mid=4, properties=expiry))
        assert h.fast == [("t/plain", b"a")]
        assert h.slow == [("t/props", b"b")]
        # MQTT 5 PUBACKs: paho sends the short form (no reason code) for success.
        assert h.written() == b"\x40\x02\x00\x03\x40\x02\x00\x04"
    finally:
        h.close()


def test_other_packets_still_reach_paho(harness: Harness) -> None:
    subacks: list[int] = []
    harness.client.on_subscribe = lambda _c, _u, mid, _rc, _p: subacks.append(mid)
    harness.feed(b"\x90\x03\x00\x05\x01" + publish_packet(b"t", b"after"))
    assert subacks == [5]
    assert harness.fast == [("t", b"after")]


def test_an_exception_in_the_callback_does_not_replay_the_packet(harness: Harness) -> None:
    calls: list[Delivery] = []

    def boom(topic: str, payload: bytes) -> None:
        calls.append((topic, payload))
        raise RuntimeError("actor bug")

    harness.client.on_publish_fast(boom)
    harness.client.feed(publish_packet(b"t", b"1") + publish_packet(b"t", b"2"))
    with pytest.raises(RuntimeError):
        harness.client.read_packets(100, lambda: False)
    harness.client.on_publish_fast(harness._on_fast)
    assert harness.client.read_packets(100, lambda: False)
    assert calls == [("t", b"1")]
    assert harness.fast == [("t", b"2")]


_topics = st.binary(min_size=1, max_size=300).filter(lambda b: b"\x00" not in b)
_packets = st.lists(
    st.tuples(_topics, st.binary(max_size=400), st.integers(0, 2), st.integers(1, 0xFFFF)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(packets=_packets, cuts=st.lists(st.integers(0, 5000), max_size=6))
def test_same_deliveries_and_replies_as_paho(
    packets: list[tuple[bytes, bytes, int, int]], cuts: list[int]
) -> None:
    stream = b"".join(publish_packet(t, p, q, m) for t, p, q, m in packets)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    outcomes: list[tuple[list[Delivery], bytes, int]] = []
    for fast in (True, False):
        h = Harness(fast, MQTTProtocolVersion.MQTTv311)
        try:
            for a, b in itertools.pairwise(points):
                h.feed(stream[a:b])
            qos2 = [m for _t, _p, q, m in packets if q == 2]
            for mid in qos2:  # complete paho's QoS 2 handshakes so that those deliver too
                h.feed(b"\x62\x02" + mid.to_bytes(2, "big"))
            outcomes.append((sorted(h.delivered), h.written(), h.client.buffered))
        finally:
            h.close()
    assert outcomes[0] == outcomes[1]


# -- outgoing: QoS 0 PUBLISH packets written straight into the buffer ------------------------


def _writer(protocol: MQTTProtocolVersion) -> Harness:
    return Harness(False, protocol)


@settings(max_examples=60, deadline=None)
@given(
    topic=st.binary(min_size=1, max_size=300).filter(lambda t: b"+" not in t and b"#" not in t),
    payload_size=st.sampled_from([0, 1, 100, 127, 128, 16_000, 16_383, 16_384, 40_000]),
    v5=st.booleans(),
)
def test_short_qos0_publish_writes_what_paho_writes(
    topic: bytes, payload_size: int, v5: bool
) -> None:
    protocol = MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311
    payload = bytes(range(256)) * (payload_size // 256) + b"x" * (payload_size % 256)
    by_paho, short = _writer(protocol), _writer(protocol)
    try:
        by_paho.client.publish(topic.decode("latin-1"), payload, 0)
        assert short.client.publish_qos0(topic.decode("latin-1").encode(), payload)
        expected, got = by_paho.read_all(), short.read_all()
        assert got == expected
    finally:
        by_paho.close()
        short.close()


def test_short_qos0_publish_waits_behind_packets_paho_holds() -> None:
    h = _writer(MQTTProtocolVersion.MQTTv311)
    try:
        # Inside a paho callback paho queues a packet instead of writing it at once.
        with h.client._in_callback_mutex:
            h.client.publish("t/first", b"1", 1)
            assert not h.client.publish_qos0(b"t/second", b"2")  # would overtake it
        h.client.loop_write()
        assert h.client.publish_qos0(b"t/second", b"2")
        written = h.read_all()
        assert written.index(b"t/first") < written.index(b"t/second")
    finally:
        h.close()


def test_short_qos0_publish_is_a_fraction_of_pahos_bytecode() -> None:
    h = _writer(MQTTProtocolVersion.MQTTv311)
    try:
        payload = b"p" * 273
        h.client.publish("gw/a/to/b/x.y", payload, 0)  # first-call costs out of the count
        h.client.publish_qos0(b"gw/a/to/b/x.y", payload)
        by_paho = count_opcodes(lambda: h.client.publish("gw/a/to/b/x.y", payload, 0))
        short = count_opcodes(lambda: h.client.publish_qos0(b"gw/a/to/b/x.y", payload))
        assert short <= 0.25 * by_paho, (short, by_paho)
    finally:
        h.close()


# -- PUBACKs written straight into the buffer --------------------------------------------------


def test_puback_waits_behind_packets_paho_holds(harness: Harness) -> None:
    with harness.client._in_callback_mutex:  # paho queues instead of writing at once
        harness.client.publish("t/first", b"1", 1)
        harness.feed(publish_packet(b"t/in", b"x", qos=1, mid=9))
    harness.client.loop_write()
    written = harness.read_all()
    assert written.index(b"t/first") < written.index(b"\x40\x02\x00\x09")
    harness.feed(publish_packet(b"t/in", b"y", qos=1, mid=0xABCD))  # now the short way
    assert harness.read_all() == b"\x40\x02\xab\xcd"


def test_a_qos1_publish_costs_little_more_bytecode_than_qos0(harness: Harness) -> None:
    """The PUBACK goes straight into the write buffer: paho's _send_puback (a packet dict,
    its queue and loop_write) cost 298 more opcodes per QoS 1 message than QoS 0; now 58."""
    qos0 = publish_packet(b"gw/a/to/b/x.y", b"p" * 273)
    qos1 = publish_packet(b"gw/a/to/b/x.y", b"p" * 273, qos=1, mid=5)
    harness.feed(qos0)
    harness.feed(qos1)
    by_qos0 = count_opcodes(lambda: harness.feed(qos0))
    by_qos1 = count_opcodes(lambda: harness.feed(qos1))
    assert by_qos1 - by_qos0 <= 100, (by_qos0, by_qos1)


def test_in_a_read_batch_the_puback_costs_under_50_opcodes(harness: Harness) -> None:
    """Inside a read batch (writes held until it is dispatched) the PUBACK only joins the
    buffer, inline in the parse: 58 opcodes more than QoS 0 through _gw_puback, now 46."""
    qos0 = publish_packet(b"gw/a/to/b/x.y", b"p" * 273)
    qos1 = publish_packet(b"gw/a/to/b/x.y", b"p" * 273, qos=1, mid=5)
    harness.client.begin_batch()
    harness.feed(qos0)
    harness.feed(qos1)
    by_qos0 = count_opcodes(lambda: harness.feed(qos0))
    by_qos1 = count_opcodes(lambda: harness.feed(qos1))
    assert by_qos1 - by_qos0 <= 50, (by_qos0, by_qos1)
    assert harness.client.end_batch()  # PUBACKs wait to be sent
    assert harness.written() == b"\x40\x02\x00\x05" * 2
    assert harness.client.buffered == 0


def test_the_short_path_parses_a_lone_publish_in_a_quarter_of_paho_s_bytecode() -> None:
    """One lone message per read (1,000 msg/s): feed, parse, deliver (and the PUBACK). The
    short path took 0.33 (QoS 0) and 0.30 (QoS 1) of paho's parser's bytecode; with the
    lengths parsed inline in one function, 0.24 and 0.23."""
    ratios = []
    for qos in (0, 1):
        packet = publish_packet(b"gw/child/to/parent/bench.reading", b"p" * 273, qos=qos, mid=5)
        counts = []
        for fast in (True, False):
            h = Harness(fast, MQTTProtocolVersion.MQTTv311)
            try:
                h.feed(packet)  # first-call costs out of the count
                counts.append(count_opcodes(functools.partial(h.feed, packet)))
                assert len(h.delivered) == 2
            finally:
                h.close()
        ratios.append(counts[0] / counts[1])
    assert max(ratios) <= 0.28, ratios


def _puback(mid: int) -> bytes:
    return bytes([0x40, 2, mid >> 8, mid & 0xFF])


@pytest.mark.parametrize("protocol", [MQTTProtocolVersion.MQTTv311, MQTTProtocolVersion.MQTTv5])
def test_a_puback_completes_a_publish_as_paho_s_parser_does(protocol: MQTTProtocolVersion) -> None:
    """Behind an in-flight limit of 1, each PUBACK marks its publish published and lets the
    queued one out: the same states and the same bytes written with the short PUBACK path
    as with paho's parser. An unknown mid is ignored; an MQTT 5 PUBACK with a reason code
    goes to paho's parser (and completes the publish all the same)."""
    outcomes: list[list[object]] = []
    for fast in (True, False):
        h = Harness(fast, protocol)
        try:
            h.client.limit_inflight(1)
            infos = [h.client.publish(f"t/{n}", b"x", qos=1) for n in range(3)]
            states: list[object] = [h.read_all(), [i.is_published() for i in infos]]
            h.feed(_puback(infos[0].mid) + _puback(0x7777))
            states += [h.read_all(), [i.is_published() for i in infos]]
            h.feed(_puback(infos[1].mid))
            last = (
                _puback(infos[2].mid)
                if protocol == MQTTProtocolVersion.MQTTv311
                else bytes([0x40, 3, infos[2].mid >> 8, infos[2].mid & 0xFF, 0x10])
            )
            h.feed(last)
            states += [h.read_all(), [i.is_published() for i in infos], h.client.want_write()]
            outcomes.append(states)
        finally:
            h.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1] == [False, False, False]
    assert outcomes[0][3] == [True, False, False]
    assert outcomes[0][5] == [True, True, True]


def test_a_puback_costs_under_a_third_of_paho_s_parser() -> None:
    """The broker's PUBACK of each QoS 1 publish (every uploaded event's): paho's parser
    reads it with a recv per part and builds a reason code and a properties object for it
    (1,467 opcodes per PUBACK fed, 1,515 with the read loop of the short PUBLISH path in
    front); the short PUBACK path completes the publish in 357."""
    counts = []
    for fast in (True, False):
        h = Harness(fast, MQTTProtocolVersion.MQTTv311)
        try:
            first, second = (h.client.publish("t/a", b"x", qos=1) for _ in range(2))
            h.feed(_puback(first.mid))  # first-call costs out of the count
            counts.append(count_opcodes(functools.partial(h.feed, _puback(second.mid))))
            assert second.is_published()
        finally:
            h.close()
    short, paho = counts
    assert short * 3 <= paho, counts
