"""The daemon under a (simulated) systemd: sd_notify on a datagram socket the test owns."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from gwproactor.testing.mosquitto import Mosquitto

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 15.0


class NotifySocket:
    """The service manager's end of NOTIFY_SOCKET: records (monotonic time, datagram)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.received: list[tuple[float, str]] = []

    async def next(self, timeout: float = TIMEOUT) -> str:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), timeout)
        text = data.decode()
        self.received.append((time.monotonic(), text))
        return text

    async def until(self, prefix: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = await self.next(max(0.0, deadline - time.monotonic()))
            if any(line.startswith(prefix) for line in text.splitlines()):
                return text

    def close(self) -> None:
        self.sock.close()


def _config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "daemon.toml"
    path.write_text(
        f"""
name = "field1"
stop_timeout_seconds = 3.0

[paths]
state_dir = "{tmp_path / "state"}"

[links.cloud]
peer = "cloud"
role = "upstream"
broker.port = {port}
broker.reconnect_min_seconds = 0.05
broker.reconnect_max_seconds = 0.3

[actors.meter]
class = "tests.daemon.stallable:StallableActor"
options = {{ stall_file = "{tmp_path / "stall"}", pat_timeout_seconds = 0.6 }}

[watchdog]
check_interval_seconds = 0.1
"""
    )
    return path


async def test_ready_status_watchdog_stopping_in_order(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    env = dict(os.environ)
    env.update(
        NOTIFY_SOCKET=str(notify.path),
        WATCHDOG_USEC="400000",  # pats expected every 0.2 s
        PYTHONPATH=str(ROOT),
    )
    env.pop("WATCHDOG_PID", None)
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gwproactor",
        "run",
        str(_config(tmp_path, mosquitto.port)),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        ready = await notify.until("READY=1")
        assert time.monotonic() - started < TIMEOUT
        assert "STATUS=field1 running" in ready
        # STATUS follows the link as it changes state.
        status = await notify.until("STATUS=")
        assert "cloud" in status
        # WATCHDOG=1 keeps coming at about half WATCHDOG_USEC.
        pats: list[float] = []
        while len(pats) < 5:
            text = await notify.next()
            if "WATCHDOG=1" in text:
                pats.append(time.monotonic())
        gaps = [b - a for a, b in itertools.pairwise(pats)]
        assert max(gaps) < 1.0, gaps
        # A stalled thread actor stops the pats.
        (tmp_path / "stall").touch()
        stalled_at = time.monotonic()
        await notify.until("STATUS=")  # the status line names the stalled part
        quiet_from = time.monotonic()
        last_pat = 0.0
        while time.monotonic() - quiet_from < 1.5:
            try:
                text = await notify.next(timeout=1.5 - (time.monotonic() - quiet_from))
            except TimeoutError:
                break
            if "WATCHDOG=1" in text:
                last_pat = time.monotonic()
        assert last_pat < quiet_from, "still patting while a thread is stalled"
        assert quiet_from - stalled_at < 3.0
        # Unstalled: pats resume.
        (tmp_path / "stall").unlink()
        await notify.until("WATCHDOG=1")
        process.send_signal(signal.SIGTERM)
        await notify.until("STOPPING=1")
        assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        notify.close()
    kinds = [next(line.split("=")[0] for line in text.splitlines()) for _, text in notify.received]
    assert kinds[0] == "READY"
    assert kinds[-1] == "STOPPING"
