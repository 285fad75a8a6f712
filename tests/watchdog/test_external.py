"""The seed's ExternalWatchdogCommandBuilder, and running a pat command off the loop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from result import Err, Ok

from gwproactor.watchdog import (
    ExternalWatchdogCommandBuilder,
    SystemDWatchdogCommandBuilder,
    run_pat_command,
)

TIMEOUT = 5.0
VARIABLE = "GWPROACTOR_RUNNING_AS_SERVICE"


# -- command builder ----------------------------------------------------------------------------


def test_service_variable_name() -> None:
    assert ExternalWatchdogCommandBuilder.service_variable_name() == VARIABLE
    assert ExternalWatchdogCommandBuilder.service_variable_name("scada") == (
        "SCADA_RUNNING_AS_SERVICE"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("True", True), ("0", False), ("", False), ("yes", False)],
)
def test_running_as_service(value: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, value)
    assert ExternalWatchdogCommandBuilder.running_as_service() is expected


def test_not_a_service_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    assert ExternalWatchdogCommandBuilder.running_as_service() is False
    assert SystemDWatchdogCommandBuilder.pat_args(args=["true"]) == []
    assert SystemDWatchdogCommandBuilder.pat_args() == []


def test_pat_args_as_a_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "1")
    assert ExternalWatchdogCommandBuilder.pat_args() == []  # the base has no command
    assert ExternalWatchdogCommandBuilder.pat_args(args=("my-pat", "-q")) == ["my-pat", "-q"]
    assert SystemDWatchdogCommandBuilder.pat_args(pid=42) == [
        "systemd-notify",
        "--pid=42",
        "WATCHDOG=1",
    ]
    assert SystemDWatchdogCommandBuilder.pat_args()[1] == f"--pid={os.getpid()}"


def test_subclass_customises(monkeypatch: pytest.MonkeyPatch) -> None:
    class Custom(ExternalWatchdogCommandBuilder):
        @classmethod
        def service_variable_name(cls, service_name: str = "gwproactor") -> str:
            return "MY_FLAG"

        @classmethod
        def default_pat_args(cls, pid: int | None = None) -> list[str]:
            return ["hwdog", "pat", str(pid)]

    monkeypatch.setenv("MY_FLAG", "true")
    assert Custom.pat_args("anything", pid=7) == ["hwdog", "pat", "7"]


# -- run_pat_command ----------------------------------------------------------------------------


async def test_success() -> None:
    assert await run_pat_command(["true"], TIMEOUT) == Ok(None)


async def test_failure_status() -> None:
    assert await run_pat_command(["false"], TIMEOUT) == Err("'false' exited with status 1")


async def test_failure_carries_stderr() -> None:
    result = await run_pat_command(["sh", "-c", "echo x >&2; echo second line >&2; exit 3"], 5)
    assert result == Err("'sh' exited with status 3: x second line")


async def test_missing_program() -> None:
    match await run_pat_command(["/nonexistent/pat-command"], TIMEOUT):
        case Err(reason):
            assert reason.startswith("cannot run '/nonexistent/pat-command'")
        case Ok():
            pytest.fail("a missing program cannot succeed")


async def test_timeout_kills_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    # The shell writes its pid and then becomes the sleep, so the pid is the child's.
    script = f"echo $$ > {pid_file}; exec sleep 30"
    assert await run_pat_command(["sh", "-c", script], 0.5) == Err("'sh' timed out after 0.5 s")
    if pid_file.exists():  # sh normally starts well within 0.5 s
        assert_gone(int(pid_file.read_text()))


async def test_cancellation_kills_the_child(tmp_path: Path) -> None:
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    # The child reports its pid through a FIFO, so the test knows it runs without polling.
    script = f"echo $$ > {fifo}; exec sleep 30"
    # Opened non-blocking before the child exists, so no thread ever blocks on open().
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(fd, on_readable)
    task = asyncio.create_task(run_pat_command(["sh", "-c", script], 30))
    try:
        async with asyncio.timeout(TIMEOUT):
            await readable
        pid = int(os.read(fd, 64))
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_gone(pid)


async def test_programming_errors() -> None:
    with pytest.raises(ValueError, match="command"):
        await run_pat_command([], TIMEOUT)
    with pytest.raises(ValueError, match="timeout"):
        await run_pat_command(["true"], 0)


def assert_gone(pid: int) -> None:
    """The process was killed and reaped: signalling it finds no such process."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
