"""Gateways run as subprocesses by the integration tests, and the test side that drives them.

:mod:`tests.procs.child_gateway` is the program (``python -m tests.procs.child_gateway``);
:class:`ChildProcess` starts it, reads the lines it prints and kills it. Its output is one
line per fact, so that a test can SIGKILL it at a chosen moment:

* ``ready`` once its proactor is started;
* ``committed <n> <event_id>`` for each ``Counted(n)`` that ``generate_event`` committed
  (in generation order);
* ``refused <n> <error>`` for one that it did not accept;
* ``generated <count>`` once every event it was asked for is committed (or refused);
* ``acked <event_id>`` for each event the parent acked (and the store has cleared);
* ``reupload <acked> <pending>`` for each re-upload progress report;
* ``drained`` once no event is pending, its upstream link having been active (with
  ``--exit-when-drained``);
* ``frozen`` just before it SIGSTOPs itself (``--freeze-after-committed``/``-acked``);
* ``stopped`` after a clean stop (end of work, or SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ("ChildOutput", "ChildProcess")

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ChildOutput:
    """What one run of the child printed, parsed."""

    committed: dict[int, str] = field(default_factory=dict)  # n -> event_id
    refused: list[int] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    reupload: list[tuple[int, int]] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)  # ready, generated, drained, frozen, stopped

    def add(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "committed":
            n, event_id = rest.split()
            self.committed[int(n)] = event_id
        elif word == "refused":
            self.refused.append(int(rest.split()[0]))
        elif word == "acked":
            self.acked.append(rest)
        elif word == "reupload":
            acked, pending = rest.split()
            self.reupload.append((int(acked), int(pending)))
        else:
            self.markers.append(word)


class ChildProcess:
    """One run of :mod:`tests.procs.child_gateway`, driven from the test's event loop.

    ``await start()`` spawns it and returns once it printed ``ready``. A reader task keeps
    draining its stdout into :attr:`output` (a child blocked on a full pipe would stall
    the test's scenario); :meth:`until` waits for a condition on it; :meth:`kill` sends
    SIGKILL and reaps it. Its stderr (the gateway's log) goes to ``log_path``. Loop-only.
    """

    def __init__(
        self,
        *,
        port: int,
        state_dir: Path,
        start: int,
        count: int,
        log_path: Path,
        exit_when_drained: bool = False,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.args = [
            "--port",
            str(port),
            "--state-dir",
            str(state_dir),
            "--start",
            str(start),
            "--count",
            str(count),
            *(("--exit-when-drained",) if exit_when_drained else ()),
            *extra_args,
        ]
        self.log_path = log_path
        self.output = ChildOutput()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._eof = False

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    async def start(self, timeout: float) -> ChildProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.procs.child_gateway",
                *self.args,
                cwd=REPO_ROOT,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        self._reader = asyncio.get_running_loop().create_task(
            self._read(), name=f"child[{self._process.pid}].stdout"
        )
        await self.until(lambda out: "ready" in out.markers, timeout)
        return self

    async def _read(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        try:
            while line := await process.stdout.readline():
                self.output.add(line.decode().strip())
                self._changed.set()
        finally:
            self._eof = True
            self._changed.set()

    async def until(self, condition: Callable[[ChildOutput], bool], timeout: float) -> None:
        """Return once ``condition(self.output)`` holds, re-checked on every line. Raises
        TimeoutError after ``timeout`` seconds, EOFError if the child's output ends first
        (both with the tail of its log)."""
        try:
            async with asyncio.timeout(timeout):
                while not condition(self.output):
                    if self._eof:
                        raise EOFError(f"child output ended; {self.log_tail()}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"child: condition not reached; {self.log_tail()}") from None

    async def wait(self, timeout: float) -> int:
        """Wait for the child to exit (its output read to the end); its return code."""
        process = self._process
        assert process is not None and self._reader is not None
        async with asyncio.timeout(timeout):
            await self._reader
            return await process.wait()

    async def terminate(self, timeout: float) -> int:
        """SIGTERM the child (a clean stop) and wait for it to exit; its return code."""
        process = self._process
        assert process is not None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    async def kill(self) -> None:
        """SIGKILL the child (it flushes nothing) and reap it; its output is read to the end.
        A no-op once it has exited."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
            await process.wait()
        if self._reader is not None:
            await self._reader

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "log tail:\n" + "\n".join(text.splitlines()[-lines:])
