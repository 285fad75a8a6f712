"""The baseline side of the benchmark: raw-socket MQTT tools and raw paho-mqtt clients.

* :func:`publish_burst` / :func:`publish_paced`: the load generator. It writes pre-built
  MQTT PUBLISH packets straight to a socket (in 64 KiB ``sendall`` chunks for a burst), so
  it is not the bottleneck; it reports its own rate to prove it.
* :func:`subscribe_count`: a raw-socket subscriber that counts PUBLISH packets (and acks
  them at QoS1); it parses only the fixed headers, so it outruns any paho client.
* :func:`receive_paho`, :func:`publish_paho`, :func:`start_paho`: the raw paho-mqtt 2.x
  baselines that gwproactor is compared with.

Every function runs in a fresh worker process and returns its result as a dict.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from typing import Any

from _bench_wire import (
    TOPIC_DOWN,
    TOPIC_UP,
    Json,
    Tally,
    emit,
    envelope,
    message_ids,
    monotonic_ns,
    packet_id,
    publish_packet,
    raw_connect,
    recv_exactly,
    rss_kib,
    sent_ns_of,
    subscribe_packet,
    topic_field,
    wait_command,
)

_CHUNK = 64 * 1024
_PUBACK_BYTES = 4
_DISCONNECT = b"\xe0\x00"


class _AckCounter(threading.Thread):
    """Reads and discards the PUBACKs of a QoS1 publisher (4 bytes each, nothing else
    arrives: the publisher subscribes to nothing), noting when the last one came."""

    def __init__(self, sock: socket.socket, expected: int) -> None:
        super().__init__(name="bench.puback-reader", daemon=True)
        self._sock = sock
        self._expected_bytes = expected * _PUBACK_BYTES
        self.received_bytes = 0
        self.done_ns = 0
        self.error = ""

    def run(self) -> None:
        try:
            while self.received_bytes < self._expected_bytes:
                chunk = self._sock.recv(_CHUNK)
                if not chunk:
                    self.error = "broker closed the connection"
                    return
                self.received_bytes += len(chunk)
            self.done_ns = monotonic_ns()
        except OSError as e:
            self.error = f"{type(e).__name__}: {e}"

    @property
    def acks(self) -> int:
        return self.received_bytes // _PUBACK_BYTES


def publish_burst(cfg: Json) -> Json:
    """Publish ``count`` envelopes as fast as the socket takes them."""
    count, qos, port = cfg["count"], cfg["qos"], cfg["port"]
    topic = topic_field(cfg.get("topic", TOPIC_UP))
    built_ns = monotonic_ns()
    data = b"".join(
        publish_packet(topic, envelope(mid, built_ns, i), qos, packet_id(i))
        for i, mid in enumerate(message_ids(count))
    )
    sock = raw_connect(port, f"bench-pub-{os.getpid()}")
    sock.settimeout(cfg.get("timeout", 120.0))
    acker = _AckCounter(sock, count) if qos else None
    if acker is not None:
        acker.start()
    view = memoryview(data)
    start_ns = monotonic_ns()
    for offset in range(0, len(data), _CHUNK):
        sock.sendall(view[offset : offset + _CHUNK])
    written_ns = monotonic_ns()
    if acker is not None:
        acker.join(cfg.get("timeout", 120.0))
    done_ns = acker.done_ns if acker is not None and acker.done_ns else written_ns
    sock.sendall(_DISCONNECT)
    sock.close()
    return {
        "count": count,
        "bytes": len(data),
        "first_ns": start_ns,
        "written_ns": written_ns,
        "done_ns": done_ns,
        "acks": acker.acks if acker is not None else None,
        "ack_error": acker.error if acker is not None else "",
        "rate": count / max(done_ns - start_ns, 1) * 1e9,
    }


def publish_paced(cfg: Json) -> Json:
    """Publish ``count`` envelopes at ``rate`` per second, each stamped with its send time
    (CLOCK_MONOTONIC) just before it is written."""
    count, qos, port, rate = cfg["count"], cfg["qos"], cfg["port"], cfg["rate"]
    topic = topic_field(cfg.get("topic", TOPIC_UP))
    ids = list(message_ids(count))
    sock = raw_connect(port, f"bench-pub-{os.getpid()}")
    acker = _AckCounter(sock, count) if qos else None
    if acker is not None:
        acker.start()
    interval_ns = round(1e9 / rate)
    start_ns = monotonic_ns() + 5_000_000
    behind = 0
    for i, mid in enumerate(ids):
        due = start_ns + i * interval_ns
        now = monotonic_ns()
        if due > now:
            time.sleep((due - now) / 1e9)
        elif now - due > interval_ns:
            behind += 1
        sock.sendall(publish_packet(topic, envelope(mid, monotonic_ns(), i), qos, packet_id(i)))
    end_ns = monotonic_ns()
    if acker is not None:
        acker.join(30.0)
    sock.sendall(_DISCONNECT)
    sock.close()
    return {
        "count": count,
        "rate": (count - 1) / max(end_ns - start_ns, 1) * 1e9,
        "late_by_more_than_one_interval": behind,
    }


def subscribe_count(cfg: Json) -> Json:
    """Subscribe to ``topic`` and count PUBLISH packets until ``count`` arrived or none
    came for ``idle_timeout`` seconds. Acks QoS1 publishes, one ``sendall`` per read."""
    count, qos, port = cfg["count"], cfg["qos"], cfg["port"]
    sock = raw_connect(port, f"bench-sub-{os.getpid()}")
    sock.sendall(subscribe_packet(1, cfg.get("topic", TOPIC_DOWN), qos))
    suback = recv_exactly(sock, 5)
    if suback[0] != 0x90 or suback[4] > 2:
        raise OSError(f"SUBACK refused: {suback.hex()}")
    emit("READY", {})
    sock.settimeout(cfg.get("idle_timeout", 30.0))
    buf = bytearray()
    seen = first_ns = last_ns = 0
    while seen < count:
        try:
            chunk = sock.recv(256 * 1024)
        except TimeoutError:
            break
        if not chunk:
            break
        now = monotonic_ns()
        if not first_ns:
            first_ns = now
        buf += chunk
        got, used, acks = _scan_publishes(buf)
        del buf[:used]
        if acks:
            sock.sendall(b"".join(acks))
        if got:
            seen += got
            last_ns = now
    sock.sendall(_DISCONNECT)
    sock.close()
    return {
        "count": seen,
        "expected": count,
        "complete": seen >= count,
        "first_ns": first_ns,
        "last_ns": last_ns,
        "rate": max(seen - 1, 0) / max(last_ns - first_ns, 1) * 1e9,
    }


def _scan_publishes(buf: bytearray) -> tuple[int, int, list[bytes]]:
    """Complete PUBLISH packets at the start of ``buf``: (how many, bytes used, PUBACKs)."""
    size = len(buf)
    pos = got = 0
    acks: list[bytes] = []
    while pos + 2 <= size:
        length = 0
        shift = 0
        i = pos + 1
        while i < size:
            byte = buf[i]
            length |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if not byte & 0x80:
                break
        else:
            break
        end = i + length
        if end > size:
            break
        first = buf[pos]
        if first >> 4 == 3:
            got += 1
            if first & 0x06:
                topic_len = (buf[i] << 8) | buf[i + 1]
                pid = i + 2 + topic_len
                acks.append(b"\x40\x02" + bytes(buf[pid : pid + 2]))
        pos = end
    return got, pos, acks


# -- raw paho-mqtt 2.x ------------------------------------------------------------------------


def _nodelay(client: Any) -> None:
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def receive_paho(cfg: Json) -> Json:
    """A raw paho receiver: ``loop_forever`` in this process, ``on_message`` counting (and,
    in latency mode, reading ``sent_ns`` out of the bytes). TCP_NODELAY is set after
    connecting, as gwproactor does by default."""
    from paho.mqtt.client import Client, MQTTMessage
    from paho.mqtt.enums import CallbackAPIVersion

    qos = cfg["qos"]
    latency = cfg["mode"] == "latency"
    tally = Tally(cfg["count"], latency=latency)
    client = Client(CallbackAPIVersion.VERSION2, client_id=f"bench-recv-raw-{os.getpid()}")

    def on_connect(client: Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        _nodelay(client)
        client.subscribe(cfg.get("topic", TOPIC_UP), qos)

    def on_subscribe(_c: Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        emit("READY", {"tcp_nodelay": True})

    hit = tally.hit

    if latency:

        def on_message(client: Client, _u: Any, message: MQTTMessage) -> None:
            now = monotonic_ns()
            if hit(now, sent_ns_of(bytes(message.payload))):
                client.disconnect()
    else:

        def on_message(client: Client, _u: Any, message: MQTTMessage) -> None:
            if hit(monotonic_ns(), 0):
                client.disconnect()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    _stop_when_idle(client, tally, cfg.get("idle_timeout", 20.0))
    client.connect("127.0.0.1", cfg["port"])
    client.loop_forever()
    return tally.result()


def _stop_when_idle(client: Any, tally: Tally, idle_timeout: float) -> None:
    """Disconnect ``client`` (ending ``loop_forever``) if no message came for
    ``idle_timeout`` seconds: a lost message must not hang the benchmark."""

    def watch() -> None:
        last = -1
        while True:
            time.sleep(idle_timeout)
            if tally.count >= tally.expected:
                return
            if tally.count == last:
                client.disconnect()
                return
            last = tally.count

    threading.Thread(target=watch, name="bench.idle-watch", daemon=True).start()


def publish_paho(cfg: Json) -> Json:
    """Raw paho publishing ``count`` pre-encoded envelopes in a tight loop on one thread,
    driven through paho's external-loop calls (``loop_read``/``loop_write`` on our own
    ``select``), then until everything is written and, at QoS1, acknowledged.

    Deliberately the leanest use of paho: no ``loop()``/``loop_start()`` (their wake-up
    socket pair costs a ``send`` per publish) and no ``on_publish`` callback (paho builds a
    ReasonCode and a Properties object per call); completion is read from the
    MQTTMessageInfo of each publish. Max in-flight is 1000, as gwproactor configures it.
    """
    from paho.mqtt.client import Client, MQTTMessageInfo
    from paho.mqtt.enums import CallbackAPIVersion

    count, qos = cfg["count"], cfg["qos"]
    sent_ns = monotonic_ns()
    payloads = [
        envelope(mid, sent_ns, i, src="parent", dst="child")
        for i, mid in enumerate(message_ids(count))
    ]
    client = Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-raw-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", cfg["port"])
    sock = client.socket()
    assert isinstance(sock, socket.socket)
    deadline = time.monotonic() + 10
    while not client.is_connected() and time.monotonic() < deadline:
        _pump(client, sock, 0.05)
    _nodelay(client)
    emit("READY", {"tcp_nodelay": True})
    infos: list[MQTTMessageInfo] = []
    cpu0 = time.process_time()
    first_ns = monotonic_ns()
    publish = client.publish
    append = infos.append
    for i, payload in enumerate(payloads):
        append(publish(TOPIC_DOWN, payload, qos))
        if i & 255 == 255:
            _pump(client, sock, 0)
    loop_end_ns = monotonic_ns()
    deadline = time.monotonic() + cfg.get("timeout", 120.0)
    while time.monotonic() < deadline and (
        client.want_write() or not (infos[-1].is_published() and _all_published(infos))
    ):
        _pump(client, sock, 0.01)
    done_ns = monotonic_ns()
    cpu_done = time.process_time() - cpu0
    wait_command(cfg.get("timeout", 120.0))
    cpu = time.process_time() - cpu0  # until the subscriber has them all, like gwproactor's
    client.disconnect()
    return {
        "count": count,
        "first_ns": first_ns,
        "loop_end_ns": loop_end_ns,
        "done_ns": done_ns,
        "published": sum(1 for info in infos if info.is_published()),
        "cpu_done_us_per_msg": cpu_done / count * 1e6,
        "cpu_us_per_msg": cpu / count * 1e6,
    }


def _pump(client: Any, sock: socket.socket, timeout: float) -> None:
    """One turn of an external loop: read if readable, write if paho wants to."""
    writers = [sock] if client.want_write() else []
    readable, writable, _ = select.select([sock], writers, [], timeout)
    if readable:
        client.loop_read()
    if writable:
        client.loop_write()


def _all_published(infos: list[Any]) -> bool:
    return all(info.is_published() for info in infos)


def start_paho(cfg: Json) -> Json:
    """Two raw paho clients (``loop_start`` threads), each subscribed; reports the time from
    launch to both SUBACKs, RSS then, and CPU while idle for ``idle_seconds``."""
    from paho.mqtt.client import Client
    from paho.mqtt.enums import CallbackAPIVersion

    subscribed = [threading.Event(), threading.Event()]
    clients: list[Client] = []
    for n, event in enumerate(subscribed):
        client = Client(CallbackAPIVersion.VERSION2, client_id=f"bench-start-{os.getpid()}-{n}")
        topic = f"gw/child{n}/to/parent/#"

        def on_connect(c: Client, _u: Any, _f: Any, _rc: Any, _p: Any, topic: str = topic) -> None:
            _nodelay(c)
            c.subscribe(topic, 1)

        def on_subscribe(
            _c: Client, _u: Any, _m: int, _rc: Any, _p: Any, event: threading.Event = event
        ) -> None:
            event.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.connect("127.0.0.1", cfg["port"])
        client.loop_start()
        clients.append(client)
    for event in subscribed:
        event.wait(30)
    return _idle_report(cfg, all(e.is_set() for e in subscribed), clients)


def _idle_report(cfg: Json, ok: bool, clients: list[Any]) -> Json:
    subscribed_ns = monotonic_ns()
    rss = rss_kib()
    emit("READY", {"subscribed": ok})
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(cfg["idle_seconds"])
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    for client in clients:
        client.disconnect()
        client.loop_stop()
    return {
        "subscribed": ok,
        "startup_ms": (subscribed_ns - cfg["launch_ns"]) / 1e6,
        "rss_mib": rss / 1024,
        "idle_cpu_fraction": cpu / wall,
    }
