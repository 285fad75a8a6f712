"""The one door to paho-mqtt's private internals.

gwproactor drives paho from the event loop and parses incoming PUBLISH packets itself (see
:mod:`gwproactor.mqtt._buffered`); paho has no public API for either, so a few of its
private names are used. All of them are used here, and only here: :class:`PahoClient`
gives each one a public name, and everything else in gwproactor (ruff's SLF rule keeps it
so) uses those. Each name below says why it is needed and which paho release it was read
against; ``tests/unit/test_paho_door.py`` checks that each still exists on the installed
paho, and ``scripts/paho_matrix.py`` runs the MQTT tests against the lowest and the highest
paho release that ``pyproject.toml`` allows.

When paho changes one of these, the fix belongs here (and the version range in
``pyproject.toml`` moves with it): paho 2.1 named ``_last_bytes_received``
``_last_msg_in`` and had no ``drop_out_messages``, which is why 2.1 is not allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paho.mqtt.client import Client
from paho.mqtt.enums import MQTTErrorCode

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

__all__ = (
    "CHECKED_AGAINST",
    "PRIVATE_INFO_NAMES",
    "PRIVATE_NAMES",
    "PUBLIC_NAMES_SINCE",
    "PahoClient",
    "attach_socket",
    "close_all",
)

#: The paho release every name below was read against.
CHECKED_AGAINST = "2.2.0"

#: Every private paho name gwproactor touches, and why. ``tests/unit/test_paho_door.py``
#: asserts each exists on the installed paho (methods on the class, attributes on a client).
PRIVATE_NAMES: dict[str, str] = {
    "_sock_recv": "overridden: paho reads its socket for data only here; the loop's reads "
    "are served from a buffer instead",
    "_sock_send": "overridden: paho writes its socket for data only here; writes made on "
    "the loop are batched into one send per loop iteration",
    "_sock_close": "overridden, and called to close the socket without a DISCONNECT "
    "(paho has no public close); the write buffer is flushed first",
    "_reset_sockets": "closes the socket and the wake-up socket pair (what paho's __del__ "
    "does; paho has no public close)",
    "_sock": "set by tests to attach a socket pair; read through the public socket()",
    "_in_packet": "the parser's state: command 0 means no packet is half-parsed, so the "
    "short PUBLISH path may take the next bytes",
    "_packet_read": "parses one packet from the socket (loop_read would parse up to "
    "max_inflight packets at once and hold the loop)",
    "_loop_rc_handle": "what loop_read does with a failed read: close and report the disconnect",
    "_msgtime_mutex": "guards _last_bytes_received (paho's keepalive thread reads it)",
    "_last_bytes_received": "keepalive: paho sets it per packet it parses; the short "
    "PUBLISH path sets it too, or paho would count a busy link as silent",
    "_send_puback": "acknowledges a QoS 1 PUBLISH the short path delivered, as paho would",
    "_max_inflight_messages": "the in-flight limit, set at CONNACK from the broker's Receive "
    "Maximum (paho's max_inflight_messages_set refuses once the socket is open)",
    "_out_packet": "paho's queue of packets not yet written: a QoS 0 PUBLISH written "
    "straight to the buffer waits while paho holds any (order is kept)",
    "_out_message_mutex": "guards _out_messages (held while a PUBACK completes a publish, "
    "as paho's _handle_pubackcomp holds it)",
    "_out_messages": "the QoS>0 publishes waiting for their PUBACK, by mid: the short "
    "PUBACK path forgets the acked one, as paho's _do_on_publish does",
    "_inflight_messages": "how many of them are in flight: one fewer per PUBACK",
    "_update_inflight": "lets out publishes queued behind the in-flight limit after a PUBACK",
}
#: Private names of paho's MQTTMessageInfo (the object ``publish`` returns).
PRIVATE_INFO_NAMES: dict[str, str] = {
    "_set_as_published": "marks a publish's info published (wakes wait_for_publish) on "
    "its PUBACK, as paho's _do_on_publish does",
}

#: Public paho names that older 2.x releases lack, with the release that added them.
PUBLIC_NAMES_SINCE: dict[str, str] = {
    "drop_out_messages": "2.2.0",  # on CONNACK (mqtt/_client.py); 2.1 fails every connect
}


class PahoClient(Client):
    """paho's :class:`~paho.mqtt.client.Client` with the private parts gwproactor uses
    under public names. Subclasses override :meth:`sock_recv`, :meth:`sock_send` and
    :meth:`sock_close` (paho calls them for every data read, data write and close) and use
    the other methods; none of them is thread-safe beyond what paho's own are."""

    # -- socket hooks: paho calls the private name, which calls the public one --------------

    def _sock_recv(self, bufsize: int) -> bytes:  # paho 2.2.0: every data read
        return self.sock_recv(bufsize)

    def _sock_send(self, buf: bytes | bytearray) -> int:  # paho 2.2.0: every data write
        return self.sock_send(buf)

    def _sock_close(self) -> None:  # paho 2.2.0: every close (DISCONNECT, error, EOF)
        self.sock_close()

    def sock_recv(self, bufsize: int) -> bytes:
        """Read up to ``bufsize`` bytes for paho's parser (default: from the socket).
        Raise :class:`BlockingIOError` for "no data yet"; ``b""`` means the peer closed."""
        return super()._sock_recv(bufsize)

    def sock_send(self, buf: bytes | bytearray) -> int:
        """Write bytes paho built (default: to the socket); returns how many were taken."""
        return super()._sock_send(buf)

    def sock_close(self) -> None:
        """Close paho's socket (default: close it and call ``on_socket_close``)."""
        super()._sock_close()

    # -- the parser -------------------------------------------------------------------------

    def parsing_packet(self) -> bool:
        """Whether paho holds part of a packet (so the next bytes are its continuation)."""
        return bool(self._in_packet["command"])  # paho 2.2.0: 0 until a first byte is read

    def read_one_packet(self) -> MQTTErrorCode:
        """Let paho read and handle (callbacks included) at most one packet."""
        return self._packet_read()  # paho 2.2.0

    def handle_read_error(self, rc: MQTTErrorCode) -> None:
        """After a failed :meth:`read_one_packet`: close and report the disconnect."""
        self._loop_rc_handle(rc)  # paho 2.2.0

    def note_bytes_received(self, now: float) -> None:
        """Tell paho's keepalive that bytes arrived at ``now`` (``time.monotonic()``)."""
        with self._msgtime_mutex:  # paho 2.2.0
            self._last_bytes_received = now  # paho 2.2.0 (2.1: _last_msg_in)

    def send_puback(self, mid: int) -> MQTTErrorCode:
        """Queue a PUBACK for ``mid``, as paho does after delivering a QoS 1 PUBLISH."""
        return self._send_puback(mid)  # paho 2.2.0

    def publish_acked(self, mid: int) -> MQTTErrorCode:
        """What paho does on a PUBACK for ``mid`` when no ``on_publish`` callback is set
        (paho 2.2.0 ``_handle_pubackcomp`` and ``_do_on_publish``), without decoding the
        packet into a reason code and properties objects: forget the message, mark its
        info published, free its in-flight slot and let a queued publish out. A mid paho
        does not know is ignored, as paho does."""
        with self._out_message_mutex:  # paho 2.2.0
            message = self._out_messages.pop(mid, None)  # paho 2.2.0
            if message is None:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            message.info._set_as_published()  # paho 2.2.0
            if message.qos > 0:
                self._inflight_messages -= 1  # paho 2.2.0
                if self._max_inflight_messages > 0:
                    return self._update_inflight()  # paho 2.2.0
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def limit_inflight(self, limit: int) -> None:
        """paho's in-flight limit (0: none), set at CONNACK time (paho's own setter refuses
        once the socket is open). Call it before anything is published on the connection."""
        self._max_inflight_messages = limit  # paho 2.2.0: read per publish and per ack

    def has_queued_packets(self) -> bool:
        """Whether paho holds packets it has not written yet (its write queue)."""
        return bool(self._out_packet)  # paho 2.2.0: a deque of packets being written

    # -- closing ----------------------------------------------------------------------------

    def close_socket(self) -> None:
        """Close the socket now, without DISCONNECT (``on_socket_close`` is called)."""
        self._sock_close()


def close_all(client: Client) -> None:
    """Close every socket ``client`` holds: the connection and the socket pair paho keeps
    for waking its network thread (otherwise closed only when the client is collected,
    which surfaces as a ResourceWarning wherever that happens)."""
    client._reset_sockets()  # paho 2.2.0; what Client.__del__ calls


def attach_socket(client: Client, sock: SocketLike) -> None:
    """Give ``client`` a connected socket without connecting (tests of the parser)."""
    client._sock = sock  # paho 2.2.0
