"""SdNotifier against a test-owned datagram socket, and the WatchdogPatter built on it.

A unix datagram ``sendto`` puts the datagram in the receiver's queue before it returns, so
after a send the test can read it at once (blocking with a bound), and after "no send" a
non-blocking read proves nothing arrived.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gwproactor import MonitoredName
from gwproactor.errors import StateError
from gwproactor.watchdog import (
    STATUS_MAX_CHARS,
    InternalWatchdog,
    PatOutcome,
    SdNotifier,
    WatchdogPatter,
    one_line,
)
from tests.watchdog import FakeClock

TIMEOUT = 5.0
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="abstract namespace is Linux")


def _bound_socket(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(TIMEOUT)
    return sock


@pytest.fixture
def path_receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound socket and its NOTIFY_SOCKET value (a filesystem path)."""
    path = str(tmp_path / "notify.sock")
    short_dir = None
    if len(path.encode()) > 100:  # sun_path holds 108 bytes; a deep basetemp may not fit
        short_dir = tempfile.TemporaryDirectory(prefix="sdn")
        path = os.path.join(short_dir.name, "notify.sock")
    sock = _bound_socket(path)
    yield sock, path
    sock.close()
    if short_dir is not None:
        short_dir.cleanup()


@pytest.fixture
def abstract_receiver() -> Iterator[tuple[socket.socket, str]]:
    """A socket bound in the abstract namespace and its ``@name`` NOTIFY_SOCKET value."""
    name = f"gwproactor-test-{uuid.uuid4().hex}"
    sock = _bound_socket("\0" + name)
    yield sock, "@" + name
    sock.close()


def received(sock: socket.socket, count: int) -> list[bytes]:
    return [sock.recv(4096) for _ in range(count)]


def socket_of(notifier: SdNotifier) -> socket.socket | None:
    # A call, not an attribute, so that mypy does not keep a narrowed type across open().
    return notifier._sock


def withholding(patter: WatchdogPatter) -> bool:
    return patter.withholding


def drain(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting now, without waiting for more."""
    datagrams: list[bytes] = []
    timeout = sock.gettimeout()
    sock.setblocking(False)  # a socket with a timeout would wait out MSG_DONTWAIT's EAGAIN
    try:
        while True:
            datagrams.append(sock.recv(4096))
    except BlockingIOError:
        return datagrams
    finally:
        sock.settimeout(timeout)


# -- SdNotifier ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "receiver",
    ["path_receiver", pytest.param("abstract_receiver", marks=linux_only)],
)
def test_messages_arrive_in_order(receiver: str, request: pytest.FixtureRequest) -> None:
    sock, notify_socket = request.getfixturevalue(receiver)
    notifier = SdNotifier({"NOTIFY_SOCKET": notify_socket})
    assert notifier.enabled
    try:
        assert notifier.ready()
        assert notifier.status("two\nlines\r\n")
        assert notifier.watchdog()
        assert notifier.stopping()
        assert received(sock, 4) == [
            b"READY=1",
            b"STATUS=two lines",
            b"WATCHDOG=1",
            b"STOPPING=1",
        ]
        assert (notifier.sent_count, notifier.dropped_count, notifier.error_count) == (4, 0, 0)
    finally:
        notifier.close()


def test_ready_with_status_and_custom_fields_are_one_datagram(
    path_receiver: tuple[socket.socket, str],
) -> None:
    sock, notify_socket = path_receiver
    notifier = SdNotifier({"NOTIFY_SOCKET": notify_socket})
    try:
        notifier.ready("up\nand running")
        notifier.notify(STATUS="x", ERRNO=5)
        assert received(sock, 2) == [b"READY=1\nSTATUS=up and running", b"STATUS=x\nERRNO=5"]
    finally:
        notifier.close()


def test_reloading_carries_monotonic_usec(path_receiver: tuple[socket.socket, str]) -> None:
    sock, notify_socket = path_receiver
    notifier = SdNotifier({"NOTIFY_SOCKET": notify_socket})
    try:
        assert notifier.reloading()
        lines = sock.recv(4096).decode().split("\n")
        assert lines[0] == "RELOADING=1"
        key, value = lines[1].split("=")
        assert key == "MONOTONIC_USEC" and int(value) > 0
    finally:
        notifier.close()


def test_socket_is_nonblocking_and_close_on_exec(path_receiver: tuple[socket.socket, str]) -> None:
    _, notify_socket = path_receiver
    notifier = SdNotifier({"NOTIFY_SOCKET": notify_socket})
    try:
        assert socket_of(notifier) is None  # the constructor does no I/O
        notifier.open()
        sock = socket_of(notifier)
        assert sock is not None
        assert not sock.getblocking()
        assert not os.get_inheritable(sock.fileno())
    finally:
        notifier.close()
    assert socket_of(notifier) is None


def test_disabled_without_notify_socket(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gwproactor.watchdog")
    notifier = SdNotifier({})
    assert not notifier.enabled
    assert not notifier.ready("x")
    assert not notifier.watchdog()
    assert not notifier.stopping()
    notifier.open()
    assert socket_of(notifier) is None
    assert (notifier.sent_count, notifier.dropped_count, notifier.error_count) == (0, 0, 0)
    assert caplog.records == []


@pytest.mark.parametrize("value", ["relative/path", "vsock:2:1234"])
def test_unusable_address_disables(value: str, caplog: pytest.LogCaptureFixture) -> None:
    notifier = SdNotifier({"NOTIFY_SOCKET": value})
    assert not notifier.enabled
    assert not notifier.watchdog()
    assert not notifier.watchdog()
    notifier.open()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_default_environ_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "@abc")
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = SdNotifier()
    assert notifier.enabled and notifier.notify_socket == "@abc"
    assert notifier.watchdog_interval() == 1.5


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "4242"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "4243"}, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "me"}, None),
        ({"WATCHDOG_PID": "4242"}, None),
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert SdNotifier(env, pid=4242).watchdog_interval() == expected


def test_watchdog_pid_defaults_to_our_pid() -> None:
    env = {"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}
    assert SdNotifier(env).watchdog_interval() == 0.25
    env["WATCHDOG_PID"] = str(os.getpid() + 1)
    assert SdNotifier(env).watchdog_interval() is None


def test_full_queue_drops_and_never_blocks(path_receiver: tuple[socket.socket, str]) -> None:
    sock, notify_socket = path_receiver
    notifier = SdNotifier({"NOTIFY_SOCKET": notify_socket})
    try:
        # Nobody reads: the receiver's queue fills (max_dgram_qlen) and sends must drop.
        for _ in range(10_000):
            if not notifier.watchdog():
                break
        assert notifier.dropped_count == 1
        assert notifier.error_count == 0
        assert notifier.sent_count > 0
        # Reading makes room again.
        sock.recv(4096)
        assert notifier.watchdog()
    finally:
        notifier.close()


def test_send_errors_are_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    try:
        assert notifier.enabled
        assert not notifier.watchdog()
        assert not notifier.watchdog()
        assert not notifier.status("x")
        assert notifier.error_count == 3
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "nobody-listens" in warnings[0].getMessage()
    finally:
        notifier.close()


def test_bad_keys_are_programming_errors() -> None:
    notifier = SdNotifier({})
    with pytest.raises(ValueError, match="upper case"):
        notifier.notify(ready="1")
    with pytest.raises(ValueError, match="at least one"):
        notifier.notify()


def test_one_line() -> None:
    assert one_line("a\nb\r\nc\u2028d") == "a b c d"
    assert one_line("  padded  \n\n  ") == "padded"
    assert len(one_line("x" * (STATUS_MAX_CHARS + 10))) == STATUS_MAX_CHARS


# -- WatchdogPatter -----------------------------------------------------------------------------


def _patter_parts(
    notify_socket: str, watchdog_usec: int = 2_000_000
) -> tuple[FakeClock, InternalWatchdog, SdNotifier]:
    clock = FakeClock()
    watchdog = InternalWatchdog(clock=clock)
    watchdog.register(MonitoredName("worker", 5.0))
    notifier = SdNotifier(
        {"NOTIFY_SOCKET": notify_socket, "WATCHDOG_USEC": str(watchdog_usec)}, pid=os.getpid()
    )
    return clock, watchdog, notifier


async def test_pat_once_withholds_while_stalled(path_receiver: tuple[socket.socket, str]) -> None:
    sock, notify_socket = path_receiver
    clock, watchdog, notifier = _patter_parts(notify_socket)
    withheld: list[list[str]] = []
    patter = WatchdogPatter(watchdog, notifier, on_withheld=withheld.append)
    try:
        assert patter.interval_seconds == 1.0
        assert await patter.pat_once() is PatOutcome.sent
        assert sock.recv(4096) == b"WATCHDOG=1"

        clock.advance(6.0)
        assert await patter.pat_once() is PatOutcome.withheld
        assert await patter.pat_once() is PatOutcome.withheld
        assert drain(sock) == []
        assert withholding(patter)
        assert withheld == [["worker"]]  # reported once per episode

        watchdog.pat("worker")
        assert await patter.pat_once() is PatOutcome.sent
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert not withholding(patter)
        assert (patter.sent_count, patter.withheld_count, patter.failed_count) == (2, 2, 0)
    finally:
        notifier.close()


async def test_periodic_patting_stops_while_stalled_and_resumes(
    path_receiver: tuple[socket.socket, str],
) -> None:
    sock, notify_socket = path_receiver
    loop = asyncio.get_running_loop()
    clock, watchdog, notifier = _patter_parts(notify_socket, watchdog_usec=20_000)  # 10 ms
    outcomes: list[PatOutcome] = []
    three_withheld: asyncio.Future[None] = loop.create_future()
    sent_after_recovery: asyncio.Future[None] = loop.create_future()

    def on_pat(outcome: PatOutcome) -> None:
        outcomes.append(outcome)
        if outcomes.count(PatOutcome.withheld) == 3 and not three_withheld.done():
            three_withheld.set_result(None)
        recovered = three_withheld.done() and outcome is PatOutcome.sent
        if recovered and not sent_after_recovery.done():
            sent_after_recovery.set_result(None)

    patter = WatchdogPatter(watchdog, notifier, on_pat=on_pat)
    clock.advance(6.0)  # "worker" is silent before the first pat
    patter.start()
    try:
        async with asyncio.timeout(TIMEOUT):
            await three_withheld
            watchdog.pat("worker")
            await sent_after_recovery
    finally:
        await patter.stop()
        notifier.close()
    assert not patter.running
    first_sent = outcomes.index(PatOutcome.sent)
    assert first_sent >= 3
    assert set(outcomes[:first_sent]) == {PatOutcome.withheld}
    assert set(outcomes[first_sent:]) == {PatOutcome.sent}
    assert drain(sock) == [b"WATCHDOG=1"] * outcomes.count(PatOutcome.sent)


def test_status_is_sent_only_when_it_changes(path_receiver: tuple[socket.socket, str]) -> None:
    sock, notify_socket = path_receiver
    _, watchdog, notifier = _patter_parts(notify_socket)
    patter = WatchdogPatter(watchdog, notifier)
    try:
        assert patter.ready("starting")
        assert not patter.set_status("starting")
        assert patter.set_status("linked")
        assert not patter.set_status("linked")
        assert not patter.set_status("linked\n")
        assert patter.set_status("degraded")
        assert patter.stopping()
        assert received(sock, 4) == [
            b"READY=1\nSTATUS=starting",
            b"STATUS=linked",
            b"STATUS=degraded",
            b"STOPPING=1",
        ]
        assert drain(sock) == []
    finally:
        notifier.close()


async def test_no_target_starts_nothing() -> None:
    watchdog = InternalWatchdog(clock=FakeClock())
    patter = WatchdogPatter(watchdog, SdNotifier({"NOTIFY_SOCKET": "@x"}))
    assert patter.interval_seconds is None
    assert await patter.pat_once() is PatOutcome.no_target
    patter.start()
    assert not patter.running
    await patter.stop()


async def test_external_command_pats_and_failures_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    watchdog = InternalWatchdog(clock=clock)
    failing = WatchdogPatter(
        watchdog,
        external_command=["sh", "-c", "echo broken >&2; exit 3"],
        external_interval_seconds=2.0,
    )
    assert failing.interval_seconds == 2.0
    assert await failing.pat_once() is PatOutcome.failed
    assert await failing.pat_once() is PatOutcome.failed
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "broken" in warnings[0] and "status 3" in warnings[0]

    working = WatchdogPatter(watchdog, external_command=["true"], interval_seconds=0.5)
    assert working.interval_seconds == 0.5
    assert await working.pat_once() is PatOutcome.sent


def test_interval_is_the_shortest_target() -> None:
    watchdog = InternalWatchdog(clock=FakeClock())
    notifier = SdNotifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "2000000"}, pid=1)
    both = WatchdogPatter(
        watchdog, notifier, external_command=["true"], external_interval_seconds=0.5
    )
    assert both.interval_seconds == 0.5
    assert WatchdogPatter(watchdog, notifier).interval_seconds == 1.0
    nobody = SdNotifier({"WATCHDOG_USEC": "2000000"}, pid=1)  # no NOTIFY_SOCKET
    assert WatchdogPatter(watchdog, nobody).interval_seconds is None
    with pytest.raises(ValueError, match="external_interval_seconds"):
        WatchdogPatter(watchdog, external_command=["true"])


async def test_start_twice_raises() -> None:
    watchdog = InternalWatchdog(clock=FakeClock())
    patter = WatchdogPatter(watchdog, external_command=["true"], external_interval_seconds=60)
    patter.start()
    try:
        assert patter.running
        with pytest.raises(StateError):
            patter.start()
    finally:
        await patter.stop()
        await patter.stop()
    assert not patter.running
