"""Shared pieces of the benchmark: the envelope bytes, MQTT packets, the worker protocol.

Standard library only: this module is imported by every benchmark subprocess, including
the ones that time their own start, so it must not pull in paho, pydantic or gwproactor.

Worker protocol: a worker is ``python scripts/_bench_worker.py <role> <json config>``. It
writes lines ``READY <json>`` (when it is ready for the other side to start) and one
``RESULT <json>`` on stdout, logs to stderr, and reads commands (``stop``) from stdin.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

HOST = "127.0.0.1"
ENVELOPE_BYTES = 273
MESSAGE_TYPE = "bench.reading"
CHILD = "child"
PARENT = "parent"
TOPIC_UP = f"gw/{CHILD}/to/{PARENT}/{MESSAGE_TYPE}"
"""Child to parent: what the receive and latency workloads publish."""
TOPIC_DOWN = f"gw/{PARENT}/to/{CHILD}/{MESSAGE_TYPE}"
"""Parent to child: what the publish workload publishes."""
RAW_TOPIC = "bench/site/dev0/reading"
"""Outside gw/: what the raw-routing workload publishes (the envelope bytes, not decoded)."""
SENT_NS_KEY = b'"sent_ns":'

Json = dict[str, Any]

# -- envelopes ----------------------------------------------------------------------------

_ENVELOPE_HEAD = (
    '{{"header":{{"src":"{src}","dst":"{dst}","message_type":"' + MESSAGE_TYPE + '",'
    '"message_id":"{mid}","ack_required":false,"actor":""}},'
    '"payload":{{"channel":"bench-ch-{ch}","value":{value},"unit":"W","sent_ns":{sent_ns},'
    '"pad":"'
)
_ENVELOPE_TAIL = '"}}'


def envelope(
    message_id: str, sent_ns: int, seq: int, *, src: str = CHILD, dst: str = PARENT
) -> bytes:
    """A valid gwproactor ``bench.reading`` envelope of exactly :data:`ENVELOPE_BYTES` bytes.

    The payload's ``pad`` string (ignored by the receiver's model) absorbs the varying
    lengths of the id, the value and the timestamp. Raises ValueError if the fields are too
    long to fit.
    """
    head = _ENVELOPE_HEAD.format(
        src=src, dst=dst, mid=message_id, ch=seq % 16, value=seq % 1000 + 0.5, sent_ns=sent_ns
    )
    pad = ENVELOPE_BYTES - len(head) - len(_ENVELOPE_TAIL)
    if pad < 0:
        raise ValueError(f"envelope fields too long by {-pad} bytes")
    return (head + "x" * pad + _ENVELOPE_TAIL).encode()


def raw_filters(count: int) -> list[str]:
    """``count`` raw filters of which exactly one (the first) matches :data:`RAW_TOPIC`."""
    return [f"bench/site/dev{i}/+" for i in range(count)]


def message_ids(count: int) -> Iterator[str]:
    """``count`` ids unique to this process run (gwproactor de-duplicates by id)."""
    prefix = os.urandom(4).hex()
    return (f"{prefix}-{i:x}" for i in range(count))


def sent_ns_of(payload: bytes) -> int:
    """The ``sent_ns`` field of an envelope, found without parsing the JSON."""
    start = payload.index(SENT_NS_KEY) + len(SENT_NS_KEY)
    return int(payload[start : payload.index(b",", start)])


# -- MQTT 3.1.1 packets ---------------------------------------------------------------------


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def connect_packet(client_id: str, keepalive: int = 600) -> bytes:
    body = b"\x00\x04MQTT\x04\x02" + keepalive.to_bytes(2, "big") + _string(client_id)
    return b"\x10" + _remaining_length(len(body)) + body


def subscribe_packet(packet_id: int, topic: str, qos: int) -> bytes:
    body = packet_id.to_bytes(2, "big") + _string(topic) + bytes((qos,))
    return b"\x82" + _remaining_length(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, qos: int, packet_id: int) -> bytes:
    """A PUBLISH packet; ``topic`` is the length-prefixed topic (see :func:`topic_field`)."""
    if qos:
        body = topic + packet_id.to_bytes(2, "big") + payload
        return b"\x32" + _remaining_length(len(body)) + body
    return b"\x30" + _remaining_length(len(topic) + len(payload)) + topic + payload


def topic_field(topic: str) -> bytes:
    return _string(topic)


def packet_id(seq: int) -> int:
    """Packet ids 1..65535, cycling (QoS1 ids are free again once acked, in order)."""
    return seq % 65535 + 1


def raw_connect(port: int, client_id: str, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to the broker with TCP_NODELAY and an accepted MQTT CONNECT.
    Raises OSError on failure (refused connection or CONNACK)."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect_packet(client_id))
    connack = recv_exactly(sock, 4)
    if connack[:2] != b"\x20\x02" or connack[3] != 0:
        sock.close()
        raise OSError(f"CONNACK refused: {connack.hex()}")
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed by the broker")
        data += chunk
    return data


# -- measuring --------------------------------------------------------------------------------


def rss_kib() -> int:
    """This process's resident set size (VmRSS), KiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of an already sorted sequence (0 if empty)."""
    if not sorted_values:
        return 0
    rank = round(fraction * (len(sorted_values) - 1))
    return sorted_values[rank]


def latency_summary(latencies_ns: list[int]) -> Json:
    """p50/p90/p99/max of one-way latencies, in microseconds."""
    ordered = sorted(latencies_ns)
    return {
        "samples": len(ordered),
        "p50_us": percentile(ordered, 0.50) / 1000,
        "p90_us": percentile(ordered, 0.90) / 1000,
        "p99_us": percentile(ordered, 0.99) / 1000,
        "max_us": (ordered[-1] / 1000) if ordered else 0.0,
    }


def warmup_count(total: int) -> int:
    """Messages left out of latency and CPU figures at the start of a paced run."""
    return min(max(total // 20, 20), total // 2)


# -- worker protocol -----------------------------------------------------------------------------


def emit(kind: str, data: Json) -> None:
    """Tell the orchestrator something: one ``<kind> <json>`` line on stdout."""
    sys.stdout.write(f"{kind} {json.dumps(data)}\n")
    sys.stdout.flush()


def wait_command(timeout: float) -> str:
    """The next line from the orchestrator on stdin ('' at EOF or after ``timeout``)."""
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        return ""
    return sys.stdin.readline().strip()


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this worker when its parent dies (Linux), so that a killed
    benchmark leaves nothing behind; exit at once if the parent is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(3)


def monotonic_ns() -> int:
    """CLOCK_MONOTONIC: system-wide, so comparable between processes on one host."""
    return time.monotonic_ns()


class Tally:
    """What a receiver records: arrival times, CPU time at the edges, one-way latencies.

    Throughput mode measures from the first message to the last; latency mode leaves the
    first :func:`warmup_count` messages out of the latency and CPU figures. ``hit`` is on
    the hot path of both receivers (raw paho and gwproactor), so both pay the same for it.
    """

    def __init__(self, expected: int, *, latency: bool) -> None:
        self.expected = expected
        self.latency = latency
        self.warm = warmup_count(expected) if latency else 0
        self.count = 0
        self.first_ns = 0
        self.last_ns = 0
        self.cpu_first = 0.0
        self.window_ns = 0
        self.window_cpu = 0.0
        self.cpu_last = 0.0
        self.latencies: list[int] = []

    def hit(self, now_ns: int, sent_ns: int) -> bool:
        """Record one message that arrived at ``now_ns``; True once all expected arrived."""
        count = self.count = self.count + 1
        self.last_ns = now_ns
        if count == 1:
            self.first_ns = now_ns
            self.cpu_first = time.process_time()
        if self.latency:
            if count > self.warm:
                self.latencies.append(now_ns - sent_ns)
            elif count == self.warm:
                self.window_ns = now_ns
                self.window_cpu = time.process_time()
        if count >= self.expected:
            self.cpu_last = time.process_time()
            return True
        return False

    def result(self) -> Json:
        if self.count < self.expected:
            self.cpu_last = time.process_time()
        intervals = max(self.count - 1, 1)
        span_ns = max(self.last_ns - self.first_ns, 1)
        out: Json = {
            "count": self.count,
            "expected": self.expected,
            "complete": self.count >= self.expected,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "rate": intervals / span_ns * 1e9,
            "cpu_us_per_msg": (self.cpu_last - self.cpu_first) / intervals * 1e6,
            "cpu_total_s": time.process_time(),
        }
        if self.latency:
            window_ns = max(self.last_ns - self.window_ns, 1)
            out["cpu_fraction"] = (self.cpu_last - self.window_cpu) / (window_ns / 1e9)
            out["latency"] = latency_summary(self.latencies)
        return out
