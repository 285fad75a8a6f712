"""Free TCP ports on the loopback interface for brokers started by tests.

Two flavours:

* :func:`free_port` asks the kernel for an ephemeral port (bind to port 0, read it, close).
  Good for a listener that is started right away and never stopped.
* :func:`free_listen_port` picks a random free port *below* the kernel's ephemeral range.
  Use it for a listener that a test stops and restarts on the same port (brokers). While
  such a listener is down, a client that keeps reconnecting to it gets ephemeral source
  ports from the kernel; if the listening port lies inside that range, the kernel may hand
  the client that very port as its source, and Linux then completes a TCP "simultaneous
  open" of the socket with itself: the client believes it reached the broker. Ports outside
  the ephemeral range can never be chosen as source ports, so that flake cannot happen, and
  no outgoing connection can squat on the port between a broker's stop and its restart.

Both functions only probe: the port is free when they return, nothing reserves it. A caller
that binds later must handle ``EADDRINUSE`` (another process may have taken it meanwhile).
All functions are thread-safe.
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

__all__ = ("LOOPBACK", "ephemeral_port_range", "free_listen_port", "free_port", "port_is_free")

LOOPBACK = "127.0.0.1"

_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DEFAULT_EPHEMERAL_RANGE = (32768, 60999)
# Ports below this are often registered services; stay above them.
_LOWEST_LISTEN_PORT = 10000
_LISTEN_PORT_ATTEMPTS = 200


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that the kernel reports free (bind to port 0).

    The port comes from the ephemeral range. Raises ``OSError`` if ``host`` cannot be bound.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Return whether a listening socket could be bound to ``host:port`` right now.

    ``SO_REUSEADDR`` is set while probing, as mosquitto does, so a port whose only users
    are connections in ``TIME_WAIT`` counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def ephemeral_port_range() -> tuple[int, int]:
    """Return the kernel's ephemeral (outgoing source) port range, inclusive.

    Reads ``/proc/sys/net/ipv4/ip_local_port_range``; falls back to Linux's default
    ``(32768, 60999)`` where that file does not exist or cannot be parsed.
    """
    with contextlib.suppress(OSError, ValueError):
        low, high = (int(part) for part in _EPHEMERAL_RANGE_FILE.read_text().split())
        return low, high
    return _DEFAULT_EPHEMERAL_RANGE


def free_listen_port(host: str = LOOPBACK, *, exclude: frozenset[int] = frozenset()) -> int:
    """Return a free TCP port on ``host`` outside the kernel's ephemeral range.

    See the module docstring for why a listener that is restarted should not live in the
    ephemeral range. Ports in ``exclude`` are never returned (useful to give one broker two
    distinct listeners). Falls back to :func:`free_port` when no port below the ephemeral
    range is free after a bounded number of random probes (or that range is empty).
    """
    low, _ = ephemeral_port_range()
    if low - 1 > _LOWEST_LISTEN_PORT:
        rng = random.SystemRandom()
        for _ in range(_LISTEN_PORT_ATTEMPTS):
            port = rng.randint(_LOWEST_LISTEN_PORT, low - 1)
            if port not in exclude and port_is_free(port, host):
                return port
    while True:
        port = free_port(host)
        if port not in exclude:
            return port
