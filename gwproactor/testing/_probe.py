"""MQTT readiness probing shared by the broker managers (:mod:`.mosquitto`, :mod:`.nats`,
:mod:`.rabbitmq`).

A bare TCP accept does not prove a broker is ready (the kernel accepts as soon as the socket
listens); an MQTT CONNECT answered by a CONNACK does. :func:`answers_connect` makes one such
exchange, :func:`wait_for_connack` repeats it until a deadline while watching the broker
process. Package-private: nothing here is re-exported.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable

__all__ = ("answers_connect", "wait_for_connack")

_PROBE_CLIENT_ID = b"gwproactor-test-readiness-probe"
_READ_SLICE_S = 0.05  # how long one read waits for the CONNACK between alive() checks


def answers_connect(
    host: str, port: int, timeout: float, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Return whether an MQTT 3.1.1 CONNECT to ``host:port`` gets a CONNACK within ``timeout``.

    Any CONNACK counts, "not authorised" included: it proves the broker runs its main loop.
    A clean session and a DISCONNECT leave nothing behind on the broker. Gives up early once
    ``alive()`` is false (checked between short reads).
    """
    variable_header = b"\x00\x04MQTT\x04\x02\x00\x3c"  # MQTT 3.1.1, clean session, 60 s
    payload = len(_PROBE_CLIENT_ID).to_bytes(2, "big") + _PROBE_CLIENT_ID
    remaining = len(variable_header) + len(payload)  # < 128: a one-byte remaining length
    connect = bytes((0x10, remaining)) + variable_header + payload
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(connect)
            sock.settimeout(_READ_SLICE_S)
            connack = b""
            while len(connack) < 4:
                try:
                    chunk = sock.recv(4 - len(connack))
                except TimeoutError:
                    if time.monotonic() >= deadline or not alive():
                        return False
                    continue
                if not chunk:
                    return False
                connack += chunk
            if connack[:2] != b"\x20\x02":
                return False
            with contextlib.suppress(OSError):
                sock.sendall(b"\xe0\x00")  # DISCONNECT
            return True
    except OSError:
        return False


def wait_for_connack(
    process: subprocess.Popen[bytes],
    host: str,
    port: int,
    deadline: float,
    *,
    start_timeout: float,
    probe_timeout: float,
    poll_interval: float,
    exited_before: str,
    error: Callable[[str], Exception],
    check: Callable[[], str | None] = lambda: None,
) -> None:
    """Block until the broker ``process`` answers an MQTT CONNECT on ``host:port``.

    Before each probe: if ``process`` has exited, raises ``error("exited with code <code>
    <exited_before>")``; if ``check()`` names a problem, raises ``error(problem)``; once
    ``deadline`` (a :func:`time.monotonic` value) has passed, raises ``error("did not answer
    an MQTT CONNECT on port <port> within <start_timeout>s")``. Each probe is bounded by
    ``probe_timeout`` and gives up early if ``process`` exits; between probes this waits on
    ``process`` for up to ``poll_interval`` (not sleeping: it returns at once if the process
    exits meanwhile).
    """
    while True:
        if (code := process.poll()) is not None:
            raise error(f"exited with code {code} {exited_before}")
        if (problem := check()) is not None:
            raise error(problem)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise error(f"did not answer an MQTT CONNECT on port {port} within {start_timeout:g}s")
        if answers_connect(
            host, port, min(probe_timeout, remaining), lambda: process.poll() is None
        ):
            return
        # Waiting on the process (not sleeping) returns at once if it exits meanwhile.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=min(poll_interval, max(0.0, deadline - time.monotonic())))
