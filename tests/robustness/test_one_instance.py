"""One instance per gateway (issue 17, item 6): two real ``gwproactor run`` processes of
the same config. The second exits within seconds, non-zero, saying "already running (pid N)"
with the first one's pid; the store is never opened twice. A SIGKILLed holder leaves no
stale lock: the next start succeeds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gwproactor import Proactor, ProactorSettings, StateError
from gwproactor.testing.ports import free_port
from tests.helpers import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0

CONFIG = """
name = "child"
[paths]
state_dir = "{state}"
[links.up]
peer = "parent"
role = "upstream"
broker.port = {port}
"""


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "child.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state", port=free_port()))
    return config


async def _spawn(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gwproactor",
        "run",
        "--log-format",
        "plain",
        str(config),
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _running(process: asyncio.subprocess.Process) -> None:
    """Read the gateway's log until it says it is running."""
    assert process.stdout is not None
    async with asyncio.timeout(START_TIMEOUT):
        while line := await process.stdout.readline():
            if b"child running" in line:
                return
    raise AssertionError(f"exited with {await process.wait()} before running")


@contextlib.asynccontextmanager
async def _gateway(config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await _spawn(config)
    try:
        await _running(process)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_a_second_run_of_the_same_gateway_exits_saying_who_runs_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    async with _gateway(config) as first:
        started = time.monotonic()
        second = await _spawn(config)
        async with asyncio.timeout(START_TIMEOUT):
            output, _ = await second.communicate()
        took = time.monotonic() - started
        text = output.decode()
        assert second.returncode == 2, text
        assert f"already running (pid {first.pid})" in text, text
        # One clear line: nothing that reads as if the running gateway started or stopped.
        assert len(text.strip().splitlines()) == 1, text
        assert first.returncode is None  # the first one is untouched
        print(f"second instance refused in {took:.2f} s: {text.strip().splitlines()[-1]}")
        first.send_signal(signal.SIGKILL)
        await first.wait()
    # The kernel dropped the dead holder's lock: a new instance starts (and is killed).
    async with _gateway(config) as third:
        assert third.returncode is None


async def test_two_gateways_of_one_state_dir_in_one_process(tmp_path: Path) -> None:
    """flock belongs to the open file: a second Proactor in the same process is refused."""
    settings = ProactorSettings.model_validate(
        {"name": "solo", "paths": {"state_dir": str(tmp_path / "state")}}
    )
    first = Proactor(settings, REGISTRY)
    await first.start()
    try:
        second = Proactor(settings, REGISTRY)
        with pytest.raises(StateError, match=rf"already running \(pid {os.getpid()}\)"):
            await second.start()
        assert second.state == "stopped"
    finally:
        await first.stop_and_join()
    again = Proactor(settings, REGISTRY)
    await again.start()
    await again.stop_and_join()
