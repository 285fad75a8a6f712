"""paho's Client, reading from a buffer the event loop fills.

paho parses a packet with a ``recv`` for the first byte, one per byte of the remaining
length, and one for the rest: about four system calls per small message, and one event-loop
wake-up per packet. Here the loop does one large ``recv`` per readable event and paho parses
every whole packet in it, so a burst of messages costs one wake-up and one system call.
Only ``_sock_recv`` is replaced, the one place paho 2.x reads its socket (``_packet_read``).
"""

from __future__ import annotations

from typing import Any

from paho.mqtt.client import Client

__all__ = ("BufferedClient",)


class BufferedClient(Client):
    """A paho Client whose reads are served from :meth:`feed`. Loop-only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gw_buffer = b""
        self._gw_offset = 0
        self._gw_eof = False
        self._gw_error: OSError | None = None

    def reset_buffer(self) -> None:
        """Forget buffered bytes (a new connection starts from nothing)."""
        self._gw_buffer = b""
        self._gw_offset = 0
        self._gw_eof = False
        self._gw_error = None

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

    def feed_error(self, error: OSError) -> None:
        """The socket failed: paho sees the error once the buffer is consumed."""
        self._gw_error = error

    @property
    def buffered(self) -> int:
        """Bytes not yet taken by paho."""
        return len(self._gw_buffer) - self._gw_offset

    @property
    def at_end(self) -> bool:
        """Whether an EOF or an error waits behind the buffered bytes."""
        return self._gw_eof or self._gw_error is not None

    def _sock_recv(self, bufsize: int) -> bytes:
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
