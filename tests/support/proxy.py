"""An asyncio TCP proxy that injects network faults into MQTT links, for tests.

A :class:`FaultProxy` listens on 127.0.0.1 and forwards every accepted connection to one
upstream ``host:port`` (usually a :class:`~.mosquitto.Mosquitto` broker), through its own
upstream connection. Between the two sockets it can, while traffic flows:

* :meth:`~FaultProxy.cut` every connection with a TCP reset, and :meth:`~FaultProxy.refuse`
  new ones;
* :meth:`~FaultProxy.stall` a direction: nothing is forwarded and nothing is closed, as on a
  dead link that TCP has not noticed yet;
* :meth:`~FaultProxy.delay` and :meth:`~FaultProxy.throttle` the traffic;
* hold back whole MQTT packets of chosen types from the broker (:meth:`~FaultProxy.hold_packets`)
  and release them later (:meth:`~FaultProxy.release_held`), to reorder e.g. a SUBACK after
  a PUBLISH.

Terms: *up* is client -> upstream, *down* is upstream -> client. Everything here is loop-only
(call it on the event loop that started the proxy); nothing is thread-safe.

The pytest fixture ``fault_proxy_factory`` lives here too; load this module as a plugin
(``pytest_plugins``). Its docstring opts out of assertion rewriting (PYTEST_DONT_REWRITE: it
has no asserts) so that a test module may import it before registering it as a plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import struct
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self, TypedDict, Unpack

import pytest

from gwproactor.testing.ports import LOOPBACK

__all__ = (
    "FaultProxy",
    "FaultProxyOptions",
    "ProxyState",
    "ProxyStats",
    "TrafficStats",
    "Direction",
    "FaultProxyError",
    "ProxyStateError",
    "MqttFrameError",
    "PacketType",
    "Piece",
    "MqttFrameParser",
    "FaultProxyFactory",
    "fault_proxy_factory",
)

logger = logging.getLogger(__name__)

Direction = Literal["up", "down"]
_DIRECTIONS: tuple[Direction, ...] = ("up", "down")
_READ_HIGH_WATER = 256 * 1024  # queued bytes per direction before the source is paused
_READ_LOW_WATER = 64 * 1024
_THROTTLE_SLICE_S = 0.01  # throttled data leaves in slices worth this much time
_MAX_LENGTH_BYTES = 4  # MQTT's remaining length is a varint of at most 4 bytes


class FaultProxyError(RuntimeError):
    """Root of the errors raised by this module."""


class ProxyStateError(FaultProxyError):
    """The proxy is not in a state that allows the call (e.g. :meth:`FaultProxy.start` twice)."""


class MqttFrameError(FaultProxyError):
    """The byte stream is not MQTT: packet type 0, or a remaining length over 4 bytes."""


class PacketType(enum.IntEnum):
    """MQTT control packet types (the high nibble of a packet's first byte)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


# -- MQTT framing -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    """A slice of the stream that belongs to exactly one MQTT packet.

    ``first``: it starts with the packet's first byte; ``last``: it ends the packet.
    A packet split across reads comes as several pieces; a whole one as ``first and last``.
    """

    packet_type: int
    data: bytes
    first: bool
    last: bool


class MqttFrameParser:
    """Incremental splitter of one direction of an MQTT byte stream into packets.

    Only the fixed header is decoded: the type (high nibble of byte 0) and the remaining
    length (a little-endian base-128 varint of 1 to 4 bytes); the rest is counted, not read.
    Feed the bytes in order, in chunks of any size. Once :meth:`feed` has raised
    :class:`MqttFrameError` the stream has no packet boundaries left to find, and every
    later call raises the same error.
    """

    def __init__(self) -> None:
        self._type: int | None = None  # type of the packet being read; None between packets
        self._length = 0  # remaining length decoded so far
        self._length_bytes = 0
        self._left: int | None = None  # body bytes still to come; None while in the varint
        self._error: MqttFrameError | None = None

    def feed(self, data: bytes) -> list[Piece]:
        """Return ``data`` cut into :class:`Piece` objects, in order; their ``data`` joined
        is ``data``. Raises :class:`MqttFrameError` (see the class docstring)."""
        if self._error is not None:
            raise self._error
        pieces: list[Piece] = []
        start = 0  # where the current piece began in data
        first = False
        pos = 0
        while pos < len(data):
            if self._type is None:
                packet_type = data[pos] >> 4
                if packet_type == 0:
                    self._fail(f"packet type 0 (first byte {data[pos]:#04x})")
                self._type, self._length, self._length_bytes, self._left = packet_type, 0, 0, None
                start, first = pos, True
                pos += 1
                continue
            if self._left is None:
                byte = data[pos]
                pos += 1
                self._length |= (byte & 0x7F) << (7 * self._length_bytes)
                self._length_bytes += 1
                if byte & 0x80:
                    if self._length_bytes == _MAX_LENGTH_BYTES:
                        self._fail("remaining length longer than 4 bytes")
                    continue
                self._left = self._length
            take = min(self._left, len(data) - pos)
            pos += take
            self._left -= take
            if self._left == 0:
                pieces.append(Piece(self._type, data[start:pos], first, last=True))
                self._type, start, first = None, pos, False
        if start < len(data) and self._type is not None:
            pieces.append(Piece(self._type, data[start:], first, last=False))
        return pieces

    def _fail(self, what: str) -> None:
        self._error = MqttFrameError(f"not an MQTT stream: {what}")
        raise self._error


# -- statistics -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrafficStats:
    """One direction: bytes read from its source, bytes written to its sink, and complete
    MQTT packets read, by type (held packets included; empty when parsing is off)."""

    received_bytes: int
    forwarded_bytes: int
    packets: Mapping[int, int]


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """A snapshot of a proxy's counters since it was created."""

    accepted: int
    refused: int
    up: TrafficStats
    down: TrafficStats


@dataclass(slots=True)
class _Traffic:
    received_bytes: int = 0
    forwarded_bytes: int = 0
    packets: Counter[int] = field(default_factory=Counter)

    def snapshot(self) -> TrafficStats:
        return TrafficStats(self.received_bytes, self.forwarded_bytes, dict(self.packets))


# -- one connection ---------------------------------------------------------------------------


class _ConnectionClosedError(Exception):
    """Internal: the pump's sink is gone; the connection is being closed."""


@dataclass(frozen=True, slots=True)
class _Item:
    arrival: float  # loop time at which the bytes were read
    data: bytes
    piece: Piece | None  # None: unparsed bytes
    eof: bool = False


@dataclass(frozen=True, slots=True)
class _Held:
    pump: _Pump
    packet_type: int
    data: bytes


class _Endpoint(asyncio.Protocol):
    """One socket of a proxied connection; what it reads feeds the pump of ``feeds``."""

    def __init__(self, conn: _Connection, feeds: Direction) -> None:
        self.conn = conn
        self.feeds = feeds
        self.transport: asyncio.Transport | None = None
        self._writable = asyncio.Event()
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.feeds == "up":
            self.conn.client_connected()

    def data_received(self, data: bytes) -> None:
        self.conn.pumps[self.feeds].push(data)

    def eof_received(self) -> bool:
        self.conn.pumps[self.feeds].push_eof()
        return True  # keep the socket open for writing: the EOF is forwarded in turn

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()  # wake a pump waiting to drain; it then sees the close
        self.conn.endpoint_lost(self, exc)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def drained(self) -> None:
        await self._writable.wait()

    def close(self, *, reset: bool) -> None:
        """Close the socket; with ``reset`` at once with an RST (SO_LINGER 0), unflushed data
        dropped, else after flushing what was written."""
        transport = self.transport
        if transport is None:
            return
        if not reset:
            transport.close()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


class _Pump:
    """One direction of one connection: read bytes queue here, the task :meth:`run` applies
    the proxy's faults and writes them to the other socket.

    Reading goes on while the pump is stalled or delayed, up to a bound where the source
    socket is paused, so the sender is slowed by TCP itself rather than by lost data.
    """

    def __init__(self, conn: _Connection, direction: Direction, *, parse: bool) -> None:
        self.conn = conn
        self.proxy = conn.proxy
        self.direction = direction
        self.wake = asyncio.Event()  # set by new data and by every control change
        self._parser = MqttFrameParser() if parse else None
        self._traffic = self.proxy._traffic[direction]
        self._queue: deque[_Item] = deque()
        self._queued_bytes = 0
        self._paused = False  # the source's reading, paused above _READ_HIGH_WATER queued
        self._released: deque[bytes] = deque()
        # Released packets go out only at packet boundaries, never inside another packet.
        self._mid_packet = False
        self._holding: tuple[int, bytearray] | None = None
        self._next_send = 0.0  # throttle pacing, loop time

    @property
    def source(self) -> _Endpoint:
        return self.conn.client if self.direction == "up" else self.conn.upstream

    @property
    def sink(self) -> _Endpoint:
        return self.conn.upstream if self.direction == "up" else self.conn.client

    # -- called from the source's protocol callbacks

    def push(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        self._traffic.received_bytes += len(data)
        items: list[_Item] = [_Item(now, data, None)]
        if self._parser is not None:
            try:
                pieces = self._parser.feed(data)
            except MqttFrameError as exc:
                logger.warning("%s: %s; forwarding it unparsed", self.name, exc)
                self._parser = None
            else:
                items = [_Item(now, p.data, p) for p in pieces]
                self._traffic.packets.update(p.packet_type for p in pieces if p.last)
        self._queue.extend(items)
        self._queued_bytes += len(data)
        transport = self.source.transport
        if self._queued_bytes > _READ_HIGH_WATER and not self._paused and transport is not None:
            transport.pause_reading()
            self._paused = True
        self.wake.set()
        self.proxy._notify()

    def push_eof(self) -> None:
        self._queue.append(_Item(asyncio.get_running_loop().time(), b"", None, eof=True))
        self.wake.set()

    def release(self, data: bytes) -> None:
        self._released.append(data)
        self.wake.set()

    @property
    def name(self) -> str:
        return f"{self.conn.name}.{self.direction}"

    # -- the task

    async def run(self) -> None:
        """Forward until the source's EOF has been forwarded; cancelled when the connection
        closes. Raises :class:`_ConnectionClosedError` when the sink closed under it."""
        loop = asyncio.get_running_loop()
        while True:
            if self._released and not self._mid_packet:
                await self._send(self._released.popleft())
                continue
            if not self._queue:
                await self._nap(None)
                continue
            item = self._queue[0]
            wait = item.arrival + self.proxy._delay - loop.time()
            if wait > 0:
                await self._nap(wait)
                continue
            self._queue.popleft()
            self._dequeued(len(item.data))
            if item.eof:
                await self._forward_eof()
                return
            await self._forward(item)

    async def _nap(self, seconds: float | None) -> None:
        """Wait ``seconds`` (forever if None) or until woken by data or a control change.

        Callers re-check their conditions after every nap, so clearing here loses nothing:
        no await separates that check from this clear.
        """
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wake.wait()

    def _dequeued(self, size: int) -> None:
        self._queued_bytes -= size
        transport = self.source.transport
        if self._paused and self._queued_bytes <= _READ_LOW_WATER and transport is not None:
            transport.resume_reading()
            self._paused = False

    async def _forward(self, item: _Item) -> None:
        piece = item.piece
        if piece is None:  # unparsed: holding no longer applies
            if self._holding is not None:
                held, self._holding = bytes(self._holding[1]), None
                await self._send(held)
            self._mid_packet = False
            await self._send(item.data)
            return
        if piece.first and self.direction == "down" and piece.packet_type in self.proxy._hold_types:
            self._holding = (piece.packet_type, bytearray())
        if self._holding is not None:
            packet_type, buffer = self._holding
            buffer += piece.data
            if piece.last:
                self._holding = None
                self.proxy._add_held(_Held(self, packet_type, bytes(buffer)))
            return
        self._mid_packet = not piece.last
        await self._send(piece.data)

    async def _send(self, data: bytes) -> None:
        """Write ``data`` once not stalled, paced by the throttle, and wait for the sink to
        drain (TCP backpressure reaches the proxy instead of piling up in memory)."""
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            if self.direction in self.proxy._stalled:
                await self._nap(None)
                continue
            size = len(view)
            rate = self.proxy._rate
            if rate is not None:
                now = loop.time()
                if self._next_send > now:
                    await self._nap(self._next_send - now)
                    continue
                size = min(size, max(1, int(rate * _THROTTLE_SLICE_S)))
                self._next_send = now + size / rate
            transport = self.sink.transport
            if transport is None or transport.is_closing():
                raise _ConnectionClosedError
            transport.write(bytes(view[:size]))
            view = view[size:]
            self._traffic.forwarded_bytes += size
            self.proxy._notify()
            await self.sink.drained()

    async def _forward_eof(self) -> None:
        self.proxy._drop_held(self)  # nothing may follow the EOF
        transport = self.sink.transport
        if transport is None or transport.is_closing():
            raise _ConnectionClosedError
        if transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError as e:  # ENOTCONN: the other side is already gone
                raise _ConnectionClosedError from e
        self.conn.direction_done(self.direction)


class _Connection:
    """A client socket, its upstream socket and the two pumps between them.

    Failure policy (isolate and report): a pump that crashes closes this connection with a
    reset and its exception is kept by the proxy, which raises it from :meth:`FaultProxy.stop`;
    other connections go on.
    """

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.id = 0  # assigned when accepted
        self.client = _Endpoint(self, "up")
        self.upstream = _Endpoint(self, "down")
        self.pumps = {d: _Pump(self, d, parse=proxy.mqtt) for d in _DIRECTIONS}
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False
        self._done: set[Direction] = set()

    @property
    def name(self) -> str:
        return f"{self.proxy.name}.{self.id}"

    def client_connected(self) -> None:
        if not self.proxy._admit(self):
            self.closed = True
            self.client.close(reset=True)
            return
        for direction in _DIRECTIONS:
            task = asyncio.get_running_loop().create_task(
                self._guard(direction), name=f"{self.name}.{direction}"
            )
            self.tasks.append(task)
            self.proxy._tasks.add(task)
            task.add_done_callback(self.proxy._tasks.discard)

    async def _guard(self, direction: Direction) -> None:
        try:
            if direction == "up" and not await self._connect_upstream():
                return
            await self.pumps[direction].run()
        except _ConnectionClosedError:
            self.close(reset=True)
        except Exception as exc:  # isolate and report, see the class docstring
            logger.error("%s.%s crashed: %r", self.name, direction, exc)
            logger.debug("%s.%s traceback", self.name, direction, exc_info=True)
            self.proxy._errors.append(exc)
            self.close(reset=True)

    async def _connect_upstream(self) -> bool:
        """Open the upstream socket; on failure reset the client (it sees a reset rather
        than a refusal: the proxy did accept it) and return False."""
        host, port = self.proxy.upstream
        try:
            async with asyncio.timeout(self.proxy.connect_timeout):
                await asyncio.get_running_loop().create_connection(
                    lambda: self.upstream, host, port
                )
        except (OSError, TimeoutError) as exc:
            logger.info("%s: upstream %s:%d unreachable: %r", self.name, host, port, exc)
            self.close(reset=True)
            return False
        return True

    def endpoint_lost(self, endpoint: _Endpoint, exc: Exception | None) -> None:
        if not self.closed:
            # One side vanished without the EOF handshake: pass the fault on to the other.
            logger.debug("%s: %s socket lost: %r", self.name, endpoint.feeds, exc)
            self.close(reset=True)

    def direction_done(self, direction: Direction) -> None:
        self._done.add(direction)
        if len(self._done) == len(_DIRECTIONS):
            self.close(reset=False)

    def close(self, *, reset: bool) -> None:
        """Close both sockets (``reset``: with RSTs), cancel the pumps but the calling one,
        drop this connection's held packets. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.client.close(reset=reset)
        self.upstream.close(reset=reset)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        self.proxy._forget(self)


# -- the proxy --------------------------------------------------------------------------------


class ProxyState(enum.Enum):
    """Lifecycle of a :class:`FaultProxy`: CREATED -> LISTENING -> STOPPING -> STOPPED."""

    CREATED = "created"
    LISTENING = "listening"
    STOPPING = "stopping"
    STOPPED = "stopped"


class FaultProxyOptions(TypedDict, total=False):
    """Keyword options of :class:`FaultProxy` (see its docstring), for factories."""

    host: str
    port: int
    mqtt: bool
    connect_timeout: float
    stop_timeout: float


class FaultProxy:
    """A TCP proxy in front of ``upstream_host:upstream_port`` with fault controls.

    The constructor does no I/O; :meth:`start` listens on ``host:port`` (port 0: one the
    kernel picks, see :attr:`port`). Each accepted connection gets its own upstream
    connection (opened within ``connect_timeout``, else the client is reset) and two tasks,
    ``proxy[<port>].<conn>.up`` and ``proxy[<port>].<conn>.down``, that move the bytes.
    End of stream is passed on as a half-close; a socket that fails is passed on as a reset.

    ``mqtt`` (default True) parses both directions as MQTT to count packets and to allow
    :meth:`hold_packets`; turn it off for non-MQTT or TLS traffic. A stream that turns out
    not to be MQTT is logged and forwarded unparsed.

    Controls apply at once to every connection, current and future, including bytes
    already read but not yet forwarded. All methods are loop-only.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        mqtt: bool = True,
        connect_timeout: float = 5.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.mqtt = mqtt
        self.connect_timeout = connect_timeout
        self.stop_timeout = stop_timeout
        self._requested_port = port
        self._port: int | None = None
        self._state = ProxyState.CREATED
        self._server: asyncio.Server | None = None
        self._connections: dict[int, _Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._errors: list[Exception] = []
        self._changed = asyncio.Event()
        self._next_id = 1
        self._accepted = 0
        self._refused = 0
        self._traffic = {d: _Traffic() for d in _DIRECTIONS}
        # fault settings
        self._refusing = False
        self._stalled: set[Direction] = set()
        self._delay = 0.0
        self._rate: float | None = None
        self._hold_types: frozenset[int] = frozenset()
        self._held: deque[_Held] = deque()

    # -- lifecycle

    @property
    def state(self) -> ProxyState:
        """The current :class:`ProxyState`."""
        return self._state

    @property
    def port(self) -> int:
        """The listening port. Raises :class:`ProxyStateError` before :meth:`start`."""
        if self._port is None:
            raise ProxyStateError(f"{self!r} has no port before start()")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` for clients to connect to; needs :meth:`start` like :attr:`port`."""
        return self.host, self.port

    @property
    def name(self) -> str:
        """``proxy[<port>]``, the prefix of this proxy's task names."""
        return f"proxy[{self._port if self._port is not None else '?'}]"

    async def start(self) -> Self:
        """Listen; returns once connections are accepted (the kernel queues them from then on).

        Needs state CREATED, else raises :class:`ProxyStateError`; raises ``OSError`` if the
        address cannot be bound, leaving the state CREATED.
        """
        if self._state is not ProxyState.CREATED:
            raise ProxyStateError(f"{self!r} cannot start in state {self._state.value}")
        self._server = await asyncio.get_running_loop().create_server(
            self._new_connection, self.host, self._requested_port
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._set_state(ProxyState.LISTENING)
        return self

    async def stop(self) -> None:
        """Stop listening and reset every connection; waits at most ``stop_timeout``.

        A no-op unless LISTENING or CREATED; leaves the state STOPPED, even when cancelled.
        Raises ``ExceptionGroup`` of the pumps' crashes (see :class:`_Connection`) and of
        a timeout (:class:`FaultProxyError`) after stopping everything.
        """
        if self._state in (ProxyState.STOPPING, ProxyState.STOPPED):
            return
        self._set_state(ProxyState.STOPPING)
        errors = self._errors
        try:
            if self._server is not None:
                self._server.close()
            self.cut()
            tasks = set(self._tasks)
            try:
                async with asyncio.timeout(self.stop_timeout):
                    await asyncio.gather(*tasks, return_exceptions=True)
                    if self._server is not None:
                        await self._server.wait_closed()
            except TimeoutError:
                errors.append(FaultProxyError(f"{self!r} did not stop within {self.stop_timeout}s"))
        finally:
            self._set_state(ProxyState.STOPPED)
        if errors:
            raise ExceptionGroup(f"{self!r} failed", errors)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- faults

    def cut(self) -> None:
        """Reset (RST, SO_LINGER 0) every current connection on both sides, dropping the
        bytes and held packets in flight; keep listening, so clients can reconnect."""
        for conn in list(self._connections.values()):
            conn.close(reset=True)

    def refuse(self, on: bool = True) -> None:
        """While on, reset each new connection as soon as it is accepted (the client's
        connect succeeds, then its first read fails). Current connections are untouched."""
        self._refusing = on

    def stall(self, on: bool = True, *, direction: Literal["up", "down", "both"] = "both") -> None:
        """Stop (``on``) or resume forwarding in ``direction``; nothing is closed or dropped.

        While stalled the proxy keeps reading (then the source's TCP window fills), so
        neither end notices anything: a dead link before keepalives catch it. Resuming
        sends what was held, in order.
        """
        directions: tuple[Direction, ...] = _DIRECTIONS if direction == "both" else (direction,)
        if on:
            self._stalled.update(directions)
        else:
            self._stalled.difference_update(directions)
        self._wake_pumps()

    def delay(self, seconds: float) -> None:
        """Forward each chunk ``seconds`` after it was read (latency, not a rate limit:
        chunks in flight overlap). Order is kept; 0 turns it off. Raises ``ValueError``
        when negative."""
        if seconds < 0:
            raise ValueError(f"delay must be >= 0, not {seconds}")
        self._delay = seconds
        self._wake_pumps()

    def throttle(self, bytes_per_second: float | None) -> None:
        """Limit each direction of each connection to ``bytes_per_second`` (None: no limit).
        Raises ``ValueError`` unless positive."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError(f"throttle must be > 0 bytes/s, not {bytes_per_second}")
        self._rate = bytes_per_second
        self._wake_pumps()

    def hold_packets(self, types: Iterable[int]) -> None:
        """From now on hold back whole down (broker -> client) packets of ``types`` (replaces
        the previous set; empty: hold no more). Other packets keep flowing in their order.

        A packet is held if its first byte was not forwarded yet. Held packets wait for
        :meth:`release_held` and are dropped with their connection. Raises ``ValueError``
        for a type outside 1..15 and :class:`ProxyStateError` when ``mqtt`` is off.
        """
        if not self.mqtt:
            raise ProxyStateError(f"{self!r} does not parse MQTT (mqtt=False)")
        wanted = frozenset(int(t) for t in types)
        if bad := sorted(t for t in wanted if not 1 <= t <= 15):
            raise ValueError(f"not MQTT packet types: {bad}")
        self._hold_types = wanted
        self._notify()

    def release_held(self, count: int | None = None) -> int:
        """Forward the ``count`` oldest held packets (all if None), in the order they were
        held, each at the next packet boundary of its connection. Returns how many."""
        n = len(self._held) if count is None else min(count, len(self._held))
        for _ in range(n):
            held = self._held.popleft()
            held.pump.release(held.data)
        if n:
            self._notify()
        return n

    @property
    def held_count(self) -> int:
        """How many whole packets are held now (partly received ones do not count)."""
        return len(self._held)

    @property
    def held_types(self) -> tuple[int, ...]:
        """The types of the held packets, oldest first."""
        return tuple(h.packet_type for h in self._held)

    # -- observation

    @property
    def connection_count(self) -> int:
        """Connections accepted and not yet closed."""
        return len(self._connections)

    def stats(self) -> ProxyStats:
        """A snapshot of the counters."""
        return ProxyStats(
            self._accepted,
            self._refused,
            self._traffic["up"].snapshot(),
            self._traffic["down"].snapshot(),
        )

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``predicate()`` is true; it is re-evaluated whenever the proxy accepts,
        reads, forwards, holds or closes something. Raises ``TimeoutError`` (with the
        counters) after ``timeout`` seconds; cancelling it has no side effect."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError as exc:
            raise TimeoutError(
                f"{self!r}: condition not met within {timeout}s; {self.stats()}"
            ) from exc

    def __repr__(self) -> str:
        host, port = self.upstream
        return f"<FaultProxy {self.name} -> {host}:{port} {self._state.value}>"

    # -- internals, for the connections

    def _set_state(self, state: ProxyState) -> None:
        logger.debug("%s: %s -> %s", self.name, self._state.value, state.value)
        self._state = state
        self._notify()

    def _notify(self) -> None:
        # Wake every wait_until() by setting the event they wait on; later ones use a new one.
        self._changed.set()
        self._changed = asyncio.Event()

    def _wake_pumps(self) -> None:
        for conn in self._connections.values():
            for pump in conn.pumps.values():
                pump.wake.set()
        self._notify()

    def _new_connection(self) -> _Endpoint:
        return _Connection(self).client

    def _admit(self, conn: _Connection) -> bool:
        if self._refusing or self._state is not ProxyState.LISTENING:
            self._refused += 1
            self._notify()
            return False
        conn.id, self._next_id = self._next_id, self._next_id + 1
        self._accepted += 1
        self._connections[conn.id] = conn
        logger.debug("%s: accepted", conn.name)
        self._notify()
        return True

    def _forget(self, conn: _Connection) -> None:
        self._connections.pop(conn.id, None)
        self._drop_held_if(lambda held: held.pump.conn is conn)
        self._notify()

    def _add_held(self, held: _Held) -> None:
        self._held.append(held)
        self._notify()

    def _drop_held(self, pump: _Pump) -> None:
        self._drop_held_if(lambda held: held.pump is pump)

    def _drop_held_if(self, predicate: Callable[[_Held], bool]) -> None:
        kept = deque(held for held in self._held if not predicate(held))
        if len(kept) != len(self._held):
            self._held = kept
            self._notify()


# -- pytest fixture ---------------------------------------------------------------------------


class FaultProxyFactory:
    """Creates :class:`FaultProxy` objects and stops them all in :meth:`aclose`. Loop-only."""

    def __init__(self) -> None:
        self._proxies: list[FaultProxy] = []

    @property
    def proxies(self) -> tuple[FaultProxy, ...]:
        """Every proxy created so far, in creation order."""
        return tuple(self._proxies)

    def create(self, upstream: tuple[str, int], **options: Unpack[FaultProxyOptions]) -> FaultProxy:
        """Return a new, *not started*, tracked proxy in front of ``upstream`` (host, port)."""
        proxy = FaultProxy(*upstream, **options)
        self._proxies.append(proxy)
        return proxy

    async def __call__(
        self, upstream: tuple[str, int], **options: Unpack[FaultProxyOptions]
    ) -> FaultProxy:
        """:meth:`create` a proxy and :meth:`FaultProxy.start` it; raises like ``start``."""
        return await self.create(upstream, **options).start()

    async def aclose(self) -> None:
        """Stop every proxy, newest first; raises an ``ExceptionGroup`` of the errors met,
        after trying them all."""
        errors: list[Exception] = []
        for proxy in reversed(self._proxies):
            try:
                await proxy.stop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ExceptionGroup("stopping fault proxies failed", errors)


@pytest.fixture
async def fault_proxy_factory() -> AsyncIterator[FaultProxyFactory]:
    """A :class:`FaultProxyFactory` on the test's event loop; stops its proxies at teardown
    (which fails the test if a proxy task crashed)."""
    factory = FaultProxyFactory()
    try:
        yield factory
    finally:
        await factory.aclose()
