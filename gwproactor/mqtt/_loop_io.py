"""The event loop's side of one paho client's socket.

:class:`LoopIO` registers the socket with the loop (``add_reader``; ``add_writer`` only
while bytes wait), does one large ``recv`` per readable event and lets the
:class:`~gwproactor.mqtt._buffered.BufferedClient` parse what it read, a batch of packets
at a time; flushes the client's write buffer once per loop iteration; and runs paho's
keepalive bookkeeping (``loop_misc``) on a timer. It knows nothing about subscriptions,
reconnects or brokers: :class:`~gwproactor.mqtt._client.MQTTClientWrapper` owns those and
gives it the current client. Loop-only.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

from gwproactor.config import BrokerSettings
from gwproactor.mqtt._buffered import BufferedClient

__all__ = ("LoopIO",)

_TCP_QUICKACK: int = getattr(socket, "TCP_QUICKACK", 0)  # Linux only


class LoopIO:
    """Socket plumbing for the wrapper's current client (``client``, replaced by the
    wrapper on a broker switch). ``on_read_done`` is called after each read batch."""

    def __init__(self, settings: BrokerSettings, on_read_done: Callable[[], None]) -> None:
        self._settings = settings
        # Read per wake-up: plain attributes (a pydantic model's attribute goes through
        # its __getattr__ hook, a few hundred instructions each time).
        self._read_bytes = settings.read_buffer_bytes
        self._read_batch = settings.read_batch_packets
        self.client: BufferedClient | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.reading_paused = False
        self._on_read_done = on_read_done
        self._reader_fd: int | None = None
        self._writer_fd: int | None = None
        self._misc_handle: asyncio.TimerHandle | None = None
        self._quickack = False
        self._tls = False

    def attach(self, client: BufferedClient, settings: BrokerSettings) -> None:
        """A new connection's socket (connected in the executor): watch it from the loop."""
        self.settings = settings
        sock = client.socket()
        self._reader_fd = None
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._quickack = (
            settings.tcp_quickack and _TCP_QUICKACK != 0 and isinstance(sock, socket.socket)
        )
        client.reset_buffer()
        client.buffer_writes(self.schedule_flush)
        if not self.reading_paused:
            self.add_reader()
        if client.want_write():
            self.want_write()
        self.schedule_misc()

    @property
    def settings(self) -> BrokerSettings:
        """The current connection's broker settings."""
        return self._settings

    @settings.setter
    def settings(self, settings: BrokerSettings) -> None:
        self._settings = settings
        self._read_bytes = settings.read_buffer_bytes
        self._read_batch = settings.read_batch_packets

    def pause_reading(self) -> None:
        self.reading_paused = True
        self.remove_reader()

    def resume_reading(self) -> None:
        """Watch the socket again and parse what was read before the pause."""
        self.reading_paused = False
        self.add_reader()
        if self.client is not None and self.client.buffered and self.loop is not None:
            self.loop.call_soon(self.drain)

    def is_paused(self) -> bool:
        return self.reading_paused

    # -- reading ------------------------------------------------------------------------------

    def on_readable(self) -> None:
        """One large read per wake-up; paho then parses every whole packet in it."""
        client = self.client
        if client is None:
            return
        sock = client.socket()
        if sock is None:
            return
        quickack = False
        try:
            data = sock.recv(self._read_bytes)
            if not data:
                client.feed_eof()
            else:
                client.feed(data)
                quickack = self._quickack
                # TLS: decrypted bytes may wait in the SSL object with the fd quiet.
                while self._tls and sock.pending():  # type: ignore[attr-defined]
                    client.feed(sock.recv(sock.pending()))  # type: ignore[attr-defined]
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError as e:  # reset, TLS failure: paho reports it as a lost connection
            client.feed_error(e)
        self.drain()
        if quickack and isinstance(sock, socket.socket):
            # Linux clears quick-ACK mode on its own: set it again after each read. After
            # the messages are handed over, so that this syscall is not in their latency,
            # and after their PUBACKs went out, which carried the ACK (set before, it would
            # send a bare ACK first: one more packet per QoS 1 message).
            # Not contextlib.suppress: an object and three calls per read.
            try:  # noqa: SIM105
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            except OSError:  # the read may have ended the connection
                pass

    def drain(self) -> None:
        """Let paho parse what is buffered, up to ``read_batch_packets`` packets, and
        dispatch what it delivered; then send what that wrote (PUBACKs, the actors'
        answers) at once: after the dispatch, so that no write is in the messages' latency,
        and in the same loop iteration. Yield to the loop between batches; stop while
        reading is paused (backpressure)."""
        client = self.client
        if client is None:
            return
        alive = client.socket() is not None
        client.begin_batch()
        try:
            if alive and not self.reading_paused and (client.buffered or client.at_end):
                alive = client.read_packets(self._read_batch, self.is_paused)
            self._on_read_done()
        finally:
            if client.end_batch() and not client.flush() and client is self.client:
                self.want_write()  # the socket is full: the rest goes when it is writable
        if alive and client.want_write():
            self.want_write()
        # Only a live connection's bytes can be parsed: re-scheduling for a dead one's would
        # spin the loop at full speed with zero lag (issue 17, item 7).
        if alive and client.buffered and not self.reading_paused and self.loop is not None:
            self.loop.call_soon(self.drain)

    # -- writing ------------------------------------------------------------------------------

    def schedule_flush(self) -> None:
        if self.loop is not None:
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        client = self.client
        if client is not None and not client.flush():
            self.want_write()  # the socket is full: the rest goes when it is writable

    def _on_writable(self) -> None:
        client = self.client
        if client is None:
            return
        if client.want_write():
            client.loop_write()  # paho's own queue (packets it could not hand over)
        if client.flush() and not client.want_write():
            self.remove_writer()

    def after_io(self) -> None:
        """After a paho call that may have queued bytes: watch for writability if so."""
        if self.client is not None and self.client.want_write():
            self.want_write()

    def want_write(self) -> None:
        if self._writer_fd is not None or self.client is None or self.loop is None:
            return
        sock = self.client.socket()
        if sock is None:
            return
        fd = sock.fileno()
        self.loop.add_writer(fd, self._on_writable)
        self._writer_fd = fd

    # -- registration ---------------------------------------------------------------------

    def add_reader(self) -> None:
        if self._reader_fd is not None or self.client is None or self.loop is None:
            return
        sock = self.client.socket()
        if sock is None:
            return
        fd = sock.fileno()
        self.loop.add_reader(fd, self.on_readable)
        self._reader_fd = fd

    def remove_reader(self) -> None:
        if self._reader_fd is not None and self.loop is not None:
            self.loop.remove_reader(self._reader_fd)
        self._reader_fd = None

    def remove_writer(self) -> None:
        if self._writer_fd is not None and self.loop is not None:
            self.loop.remove_writer(self._writer_fd)
        self._writer_fd = None

    def forget_fds(self) -> None:
        self.remove_reader()
        self.remove_writer()

    def detach(self) -> None:
        """The connection is gone: stop watching its socket and its keepalive, and forget
        the bytes it left unparsed (nothing can parse them now)."""
        self.cancel_misc()
        self.forget_fds()
        if self.client is not None:
            self.client.reset_buffer()

    def close(self) -> None:
        """Close whatever socket paho holds without waiting for the broker."""
        self.detach()
        client = self.client
        if client is not None and client.socket() is not None:
            client.close_socket()

    # -- keepalive ----------------------------------------------------------------------------

    def schedule_misc(self) -> None:
        assert self.loop is not None
        self._misc_handle = self.loop.call_later(self.settings.misc_interval_seconds, self._on_misc)

    def cancel_misc(self) -> None:
        if self._misc_handle is not None:
            self._misc_handle.cancel()
            self._misc_handle = None

    def _on_misc(self) -> None:
        self._misc_handle = None
        client = self.client
        if client is None or client.socket() is None:
            return
        client.loop_misc()
        self.after_io()
        if client.socket() is not None:
            self.schedule_misc()
