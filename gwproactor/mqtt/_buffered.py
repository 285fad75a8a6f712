"""paho's Client, reading from a buffer the event loop fills and writing into one it drains.

Reads: paho parses a packet with a ``recv`` for the first byte, one per byte of the remaining
length, and one for the rest: about four system calls per small message, and one event-loop
wake-up per packet. Here the loop does one large ``recv`` per readable event and paho parses
every whole packet in it, so a burst of messages costs one wake-up and one system call.

Writes: paho sends each packet (every PUBLISH, every PUBACK) with its own ``send``. Here
packets written on the loop thread go to a buffer that is sent with one ``send`` per loop
iteration (the owner schedules the flush); a burst of publishes or acks costs one system
call, and a lone message goes out in the same iteration (no Nagle-style delay). Before
paho closes the socket (after a DISCONNECT, say) the buffer is flushed, so nothing paho
believes written is silently dropped on a clean close.

Incoming PUBLISH packets at QoS 0 and 1 (MQTT 5: without properties) take a short path:
they are parsed here, straight from the buffer, and handed to the ``on_publish`` callback as
(topic, payload), with the PUBACK queued through paho as paho itself would. paho's own
parser (a ``recv`` call per byte of header, a message object and a lock per message) cost
more than the rest of the receive path together. Every other packet, and any PUBLISH this
path does not recognise (QoS 2, properties, a topic that is not UTF-8, a packet not yet
whole), goes to paho's parser unchanged.

Incoming PUBACK packets (the broker's ack of a QoS 1 publish, 4 bytes) are completed here
too, as paho would without an ``on_publish`` callback, but without decoding each into a
reason code and a properties object; a PUBACK with a reason code or properties (MQTT 5), or
a client with ``on_publish`` set, goes to paho's parser.

Outgoing PUBLISH packets at QoS 0 take a short path too (:meth:`BufferedClient.publish_qos0`):
built here straight into the write buffer. QoS 1 and 2 go through paho, which keeps them
in flight and re-sends them after a reconnect.

Only paho's socket read, write and close are replaced: in paho 2.x they are the only places
it touches its socket for data. :meth:`BufferedClient.read_packets` drives paho's packet
parser one packet at a time, so a read budget means packets. Every private paho name this
needs is reached through :class:`~gwproactor.mqtt._paho.PahoClient`, the one door to them.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion

from gwproactor.config import BrokerSettings
from gwproactor.mqtt._factory import new_paho_client
from gwproactor.mqtt._paho import PahoClient

__all__ = ("QOS2_MAX_INFLIGHT", "RECEIVE_MAXIMUM_ABSENT", "BufferedClient", "new_client")

OnPublish = Callable[[str, bytes], None]

QOS2_MAX_INFLIGHT = 20
"""paho's in-flight limit at QoS 2 on MQTT 3.1.1 (no Receive Maximum there): mosquitto's
default ``max_inflight_messages``; it silently ignores QoS 2 publishes past it."""

RECEIVE_MAXIMUM_ABSENT = 65_535
"""MQTT 5: a CONNACK without Receive Maximum means this many."""


class BufferedClient(PahoClient):
    """A paho Client whose reads are served from :meth:`feed`. Loop-only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gw_buffer = b""
        self._gw_offset = 0
        self._gw_eof = False
        self._gw_error: OSError | None = None
        self._gw_lost = ""
        self._gw_out = bytearray()
        self._gw_flush_scheduled = False
        self._gw_schedule_flush: Callable[[], None] | None = None
        self._gw_loop_thread = 0
        self._gw_on_publish: OnPublish | None = None
        self._gw_v5 = self.protocol == MQTTProtocolVersion.MQTTv5
        self._gw_heard = False  # the short path delivered since the last end_batch

    def on_publish_fast(self, callback: OnPublish | None) -> None:
        """Deliver QoS 0/1 PUBLISH packets as ``callback(topic, payload)`` without paho's
        parser (see the module docstring); paho's ``on_message`` still gets the rest."""
        self._gw_on_publish = callback

    def buffer_writes(self, schedule_flush: Callable[[], None]) -> None:
        """Buffer writes made on the calling (loop) thread; ``schedule_flush`` is called
        once per burst and must arrange a :meth:`flush` soon (``loop.call_soon``)."""
        self._gw_schedule_flush = schedule_flush
        self._gw_loop_thread = threading.get_ident()

    @property
    def unsent(self) -> int:
        """Bytes written by paho and not yet sent."""
        return len(self._gw_out)

    def flush(self) -> bool:
        """Send what is buffered; True when nothing is left (else wait for writability).
        A broken socket drops the buffer: paho learns of the loss on its read side and
        re-sends unacknowledged QoS 1 messages after reconnecting, as it would have to
        for bytes lost in the kernel's buffer."""
        self._gw_flush_scheduled = False
        out = self._gw_out
        sock = self.socket()
        if not out or sock is None:
            out.clear()
            return True
        try:
            sent = sock.send(out)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return False
        except OSError:
            out.clear()
            return True
        del out[:sent]
        return not out

    def begin_batch(self) -> None:
        """A read batch starts: until :meth:`end_batch`, writes wait in the buffer without
        a flush being scheduled (the batch's PUBACKs, and whatever the actors send while
        its messages are dispatched, go out together after it)."""
        self._gw_flush_scheduled = True

    def end_batch(self) -> bool:
        """The batch's messages have been dispatched: tell paho's keepalive that bytes
        arrived (if the short path took any) and end :meth:`begin_batch`. True when bytes
        wait in the buffer: the caller flushes them now (a lone message's PUBACK goes out
        right after its dispatch, without another loop iteration)."""
        if self._gw_heard:
            self._gw_heard = False
            self.note_bytes_received(time.monotonic())
        self._gw_flush_scheduled = False
        return bool(self._gw_out)

    def publish_qos0(self, topic: bytes, payload: bytes) -> bool:
        """Write a QoS 0 PUBLISH (no retain) straight into the write buffer, without paho's
        ``publish`` (an info object with a lock, a packet dict, a queue and ``loop_write``
        per message, for a packet that needs no state). False, and nothing written, when
        paho must do it: off the loop thread, not connected, or paho still holds packets
        of its own (they go first: order is kept). ``topic`` must be a valid topic name
        (no wildcards, 1-65535 bytes); the caller checks that once per topic."""
        schedule = self._gw_schedule_flush
        if (
            schedule is None
            or self.has_queued_packets()
            or self.socket() is None
            or threading.get_ident() != self._gw_loop_thread
        ):
            return False
        v5 = self._gw_v5
        length = 2 + len(topic) + len(payload) + v5  # MQTT 5: an empty property list
        out = self._gw_out
        out.append(0x30)
        while True:  # the remaining length: 7 bits a byte, high bit = more follows
            if length < 0x80:
                out.append(length)
                break
            out.append((length & 0x7F) | 0x80)
            length >>= 7
        out += len(topic).to_bytes(2, "big")
        out += topic
        if v5:
            out.append(0)
        out += payload
        if not self._gw_flush_scheduled:
            self._gw_flush_scheduled = True
            schedule()
        return True

    def sock_send(self, buf: bytes | bytearray) -> int:
        schedule = self._gw_schedule_flush
        if schedule is None or threading.get_ident() != self._gw_loop_thread:
            return super().sock_send(buf)  # e.g. CONNECT, written in the connect thread
        self._gw_out += buf
        if not self._gw_flush_scheduled:
            self._gw_flush_scheduled = True
            schedule()
        return len(buf)

    def sock_close(self) -> None:
        # paho closes right after writing DISCONNECT: send what is buffered first (best
        # effort, non-blocking), so a clean stop's last messages reach the broker.
        sock = self.socket()
        if self._gw_out and sock is not None:
            with contextlib.suppress(OSError):  # closing anyway; the read side reports it
                sock.send(self._gw_out)
        self._gw_out.clear()
        self._gw_flush_scheduled = False
        super().sock_close()

    def reset_buffer(self) -> None:
        """Forget buffered bytes (a new connection starts from nothing)."""
        self._gw_buffer = b""
        self._gw_offset = 0
        self._gw_eof = False
        self._gw_error = None
        self._gw_lost = ""
        self._gw_out.clear()
        self._gw_flush_scheduled = False

    @property
    def lost_reason(self) -> str:
        """How the read side ended, once it has (``closed by the broker``, or the socket
        error); "" while the connection's reads are fine."""
        return self._gw_lost

    def feed(self, data: bytes) -> None:
        """Bytes read from the socket, for paho to parse."""
        if self._gw_offset >= len(self._gw_buffer):
            self._gw_buffer = data
        else:
            self._gw_buffer = self._gw_buffer[self._gw_offset :] + data
        self._gw_offset = 0

    def feed_eof(self) -> None:
        """The peer closed the connection: paho sees it once the buffer is consumed."""
        self._gw_eof = True
        self._gw_lost = "closed by the broker"

    def feed_error(self, error: OSError) -> None:
        """The socket failed: paho sees the error once the buffer is consumed."""
        self._gw_error = error
        self._gw_lost = f"{type(error).__name__}: {error}"

    def read_packets(self, budget: int, paused: Callable[[], bool]) -> bool:
        """Parse up to ``budget`` whole packets from the buffer, one at a time (paho's
        ``loop_read`` parses as many packets as it holds messages in flight, thousands after
        a burst of publishes, which would hold the loop). Returns False once the connection
        is lost (paho has closed it and reported the disconnect). Stops early once
        ``paused()`` says so (the receive queue is full: backpressure). Call
        :meth:`end_batch` once what it delivered has been dispatched."""
        deliver = self._gw_on_publish
        for _ in range(budget):
            if self.socket() is None:
                return False
            if self._gw_offset >= len(self._gw_buffer) and not self.at_end:
                return True  # nothing left to parse (no needless read attempt)
            if paused():
                return True
            if deliver is None or self.parsing_packet():
                rc = self.read_one_packet()
            elif self._gw_publish(deliver):
                continue
            else:
                acked = self._gw_puback_in()
                rc = self.read_one_packet() if acked is None else acked
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return True
            if rc > 0:
                self.handle_read_error(rc)
                return False
        return True

    def _gw_publish(self, deliver: OnPublish) -> bool:  # noqa: PLR0911, PLR0912 - one hot path
        """Deliver one whole QoS 0/1 PUBLISH at the buffer's offset; False (nothing
        consumed) for another packet, one not yet whole, QoS 2, MQTT 5 properties, a topic
        that is not UTF-8, or a malformed packet (paho's parser takes those, and reports
        the malformed ones). One function, the lengths of one and two bytes inline: this
        runs before every message reaches its actor."""
        buffer = self._gw_buffer
        offset = self._gw_offset
        size = len(buffer)
        if offset + 4 > size:  # a PUBLISH has at least 4 bytes (or only an EOF is left)
            return False
        first = buffer[offset]
        if first & 0xF0 != 0x30 or first & 0x04:  # not a PUBLISH, or QoS 2 (or 3)
            return False
        pos = offset + 1
        length = buffer[pos]
        if length < 0x80:
            pos += 1
        elif buffer[pos + 1] < 0x80:
            length = (length & 0x7F) | (buffer[pos + 1] << 7)
            pos += 2
        else:
            length, pos = _remaining_length(buffer, pos)
        end = pos + length
        if length < 2 or end > size:
            return False
        start = pos + 2 + ((buffer[pos] << 8) | buffer[pos + 1])
        qos = first & 0x02
        if start + qos + self._gw_v5 > end:
            return False
        try:
            topic = buffer[pos + 2 : start].decode()
        except UnicodeDecodeError:
            return False
        if qos:
            mid = (buffer[start] << 8) | buffer[start + 1]
            start += 2
        if self._gw_v5:
            if buffer[start] != 0:
                return False  # properties (a topic alias, say): paho's parser handles them
            start += 1
        self._gw_offset = end
        self._gw_heard = True
        deliver(topic, buffer[start:end])
        if qos:
            if self._gw_flush_scheduled and not self.has_queued_packets():
                # _gw_puback's common case, inline: a read batch holds its writes (or a
                # flush is on its way), so the PUBACK only joins the buffer.
                self._gw_out.extend((0x40, 2, mid >> 8, mid & 0xFF))
            else:
                self._gw_puback(mid)
        return True

    def _gw_puback_in(self) -> MQTTErrorCode | None:
        """A whole 4-byte PUBACK at the buffer's offset (what a broker acks each QoS 1
        publish with, MQTT 3.1.1 and 5 alike when it succeeded), completed without paho's
        parser: paho's builds a reason code and a properties object per PUBACK, the most
        of what the ack of an uploaded event cost its sender. None (nothing consumed) for
        anything else, a longer PUBACK (MQTT 5 reason code, properties), or when an
        ``on_publish`` callback wants paho's."""
        buffer = self._gw_buffer
        offset = self._gw_offset
        if (
            offset + 4 > len(buffer)
            or buffer[offset] != 0x40
            or buffer[offset + 1] != 2
            or self.on_publish is not None
        ):
            return None
        self._gw_offset = offset + 4
        self._gw_heard = True
        return self.publish_acked((buffer[offset + 2] << 8) | buffer[offset + 3])

    def _gw_puback(self, mid: int) -> None:
        """A PUBACK for ``mid`` straight into the write buffer, as :meth:`publish_qos0`
        writes (paho's ``_send_puback`` builds a packet dict, queues it and runs
        ``loop_write`` per message: a quarter of the QoS 1 receive path). paho's own way
        when writes are not buffered or it still holds packets (they go first). MQTT 5
        allows the same 4 bytes: no reason code means success."""
        schedule = self._gw_schedule_flush
        if schedule is None or self.has_queued_packets():
            self.send_puback(mid)
            return
        self._gw_out.extend((0x40, 2, mid >> 8, mid & 0xFF))
        if not self._gw_flush_scheduled:
            self._gw_flush_scheduled = True
            schedule()

    @property
    def buffered(self) -> int:
        """Bytes not yet taken by paho."""
        return len(self._gw_buffer) - self._gw_offset

    @property
    def at_end(self) -> bool:
        """Whether an EOF or an error waits behind the buffered bytes."""
        return self._gw_eof or self._gw_error is not None

    def sock_recv(self, bufsize: int) -> bytes:
        buffer = self._gw_buffer
        offset = self._gw_offset
        available = len(buffer) - offset
        if available <= 0:
            if self._gw_error is not None:
                error, self._gw_error = self._gw_error, None
                raise error
            if self._gw_eof:
                return b""  # paho treats an empty read as a lost connection
            raise BlockingIOError  # paho: wait for more (MQTT_ERR_AGAIN)
        count = min(bufsize, available)
        self._gw_offset = offset + count
        if offset == 0 and count == len(buffer):
            return buffer
        return buffer[offset : offset + count]


def _remaining_length(buffer: bytes, pos: int) -> tuple[int, int]:
    """(remaining length, position after it); length -1 if not all here or malformed."""
    size = len(buffer)
    length = 0
    for shift in (0, 7, 14, 21):  # at most four bytes, seven bits each
        if pos >= size:
            break
        byte = buffer[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length, pos
    return -1, pos


def new_client(
    settings: BrokerSettings,
    client_id: str,
    will: tuple[str, bytes] | None,
    deliver: OnPublish,
) -> BufferedClient:
    """The link's client for one broker (built by
    :func:`~gwproactor.mqtt._factory.new_paho_client`, like the failover probe), with a
    retained will (``(wire topic, payload)``), and every received message delivered as
    ``deliver(topic, payload)`` with dot-escaped ``gw/`` topics restored."""
    client = new_paho_client(settings, client_id, BufferedClient, will=will)
    escape = settings.topic_dot_escape

    def unescaped(topic: str, payload: bytes) -> None:
        deliver(topic.replace(escape or ".", ".") if topic.startswith("gw/") else topic, payload)

    to_app = deliver if escape is None else unescaped

    def on_message(_client: Client, _userdata: Any, message: MQTTMessage) -> None:
        to_app(message.topic, bytes(message.payload))

    client.on_message = on_message  # what the short path leaves to paho's parser
    client.on_publish_fast(to_app)
    return client
