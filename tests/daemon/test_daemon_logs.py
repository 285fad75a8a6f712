"""What an operator reads in the journal: two gateways under a fake systemd (NOTIFY_SOCKET and
JOURNAL_STREAM set, stdout a pipe), the child generating 20 events/s upstream."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from gwproactor.testing.mosquitto import Mosquitto
from gwproactor.testing.ports import free_port
from tests.daemon.test_systemd import NotifySocket

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0
WINDOW_SECONDS = 5.0  # the measurement window (a duration measured, not a synchronisation)
RECORD = re.compile(r"^<[2-7]>(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.\-\[\]]+: \S")


class Daemon:
    """One ``gwproactor run`` process whose stdout lines are collected as they come."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read(), name=f"test[{name}].stdout")

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode().rstrip("\n"))
            self.changed.set()

    async def until_line(self, needle: str) -> None:
        while not any(needle in line for line in self.lines):
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), TIMEOUT)

    async def stop(self) -> tuple[int, str]:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.wait_for(self.process.wait(), TIMEOUT)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        await self.reader
        assert self.process.stderr is not None
        return rc, (await self.process.stderr.read()).decode()


async def _start(tmp_path: Path, name: str, config: str) -> tuple[Daemon, NotifySocket]:
    path = tmp_path / f"{name}.toml"
    path.write_text(config)
    notify = NotifySocket(tmp_path / f"{name}.notify")
    read_end, write_end = os.pipe()  # stdout: a pipe whose inode JOURNAL_STREAM names
    st = os.fstat(write_end)
    env = dict(os.environ)
    env.update(
        NOTIFY_SOCKET=str(notify.path),
        JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}",
        INVOCATION_ID="0" * 32,
        PYTHONPATH=str(ROOT),
    )
    env.pop("WATCHDOG_USEC", None)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gwproactor",
            "run",
            str(path),
            cwd=tmp_path,
            env=env,
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_end, "rb")
    )
    process.stdout = reader
    return Daemon(name, process), notify


async def test_a_steady_gateway_writes_few_one_line_journal_records(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    web_port = free_port()
    common = f"broker.port = {mosquitto.port}\n"
    parent, parent_notify = await _start(
        tmp_path,
        "parent",
        f"""name = "parent"
[paths]
state_dir = "{tmp_path / "parent"}"
[links.child]
peer = "child"
role = "downstream"
{common}""",
    )
    child, child_notify = await _start(
        tmp_path,
        "child",
        f"""name = "child"
[paths]
state_dir = "{tmp_path / "child"}"
[links.parent]
peer = "parent"
role = "upstream"
{common}
[actors.thermo1]
class = "gwproactor_actors.thermometer:ThermometerActor"
options = {{ period_seconds = 0.05 }}
[web]
enabled = true
port = {web_port}
""",
    )
    try:
        await parent_notify.until("READY=1")
        await child_notify.until("READY=1")
        await child.until_line("-> active")
        await parent.until_line("-> active")
        status_url = f"http://127.0.0.1:{web_port}/status"
        async with aiohttp.ClientSession() as http:

            async def acked() -> int:
                async with http.get(status_url) as response:
                    return int((await response.json())["uploader"]["acked"])

            lines_before = len(child.lines) + len(parent.lines)
            acked_before = await acked()
            await asyncio.sleep(WINDOW_SECONDS)
            events = await acked() - acked_before
            lines = len(child.lines) + len(parent.lines) - lines_before
        assert events >= 20, f"only {events} events in {WINDOW_SECONDS} s"
        assert lines / events < 0.05, (lines, events, (child.lines + parent.lines)[-lines:])
    finally:
        results = [await daemon.stop() for daemon in (child, parent)]
        parent_notify.close()
        child_notify.close()
    for rc, stderr in results:
        assert rc == 0
        assert "Traceback" not in stderr, stderr
    for daemon in (child, parent):
        assert daemon.lines, daemon.name
        bad = [line for line in daemon.lines if not RECORD.match(line)]
        assert not bad, bad
        # Each link change once (not also by the link itself), with the priority prefix.
        active = [line for line in daemon.lines if "-> active" in line]
        assert len(active) == 1, active
    # Under systemd the journal keeps the lines: no file log by default.
    assert not list((tmp_path / "child").rglob("*.log"))
