"""Benchmark subprocesses: spawn workers, read their ``READY``/``RESULT`` lines with
timeouts, and make sure every one of them is gone when the benchmark ends, however it ends.

Workers run in their own session (a Ctrl-C in the terminal reaches only the orchestrator,
which then stops them in order) and ask the kernel to kill them if the orchestrator dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from _bench_wire import Json, monotonic_ns

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
WORKER = SCRIPTS / "_bench_worker.py"
_KILL_GRACE_S = 2.0


class BenchError(RuntimeError):
    """A worker failed, exited early or did not answer in time (the message has its log)."""


class Worker:
    """One worker subprocess. Not thread-safe."""

    def __init__(
        self,
        role: str,
        cfg: Json,
        log_path: Path,
        env: dict[str, str],
        prefix: tuple[str, ...] = (),
    ) -> None:
        """``prefix``: a command the worker runs under (``valgrind ...``, ``strace ...``)."""
        self.role = role
        self.log_path = log_path
        self._buffer = b""
        self._lines: list[str] = []
        cfg = {**cfg, "parent_pid": os.getpid()}
        with log_path.open("wb") as log:
            cfg["launch_ns"] = monotonic_ns()
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                [*prefix, sys.executable, str(WORKER), role, json.dumps(cfg)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=REPO,
                env=env,
                start_new_session=True,
            )

    def expect(self, kind: str, timeout: float) -> Json:
        """The data of the next ``<kind> <json>`` line (other lines are skipped). Raises
        BenchError if the worker exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            while self._lines:
                line = self._lines.pop(0)
                head, _, body = line.partition(" ")
                if head == kind:
                    data: Json = json.loads(body)
                    return data
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.role}: no {kind} within {timeout:.0f} s{self._tail()}")
            if not self._read(left):
                self.process.wait(timeout=_KILL_GRACE_S)
                raise BenchError(
                    f"{self.role} exited with {self.process.returncode} before {kind}{self._tail()}"
                )

    def result(self, timeout: float) -> Json:
        """The worker's RESULT; then waits for it to exit."""
        data = self.expect("RESULT", timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.stop()
        return data

    def command(self, text: str) -> None:
        stdin = self.process.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.write(text.encode() + b"\n")
                stdin.flush()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; idempotent."""
        process = self.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=_KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=_KILL_GRACE_S)
        for stream in (process.stdin, process.stdout):
            _close(stream)

    def _read(self, timeout: float) -> bool:
        """Read what stdout has (up to ``timeout``); False at EOF."""
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], min(timeout, 1.0))
        if not ready:
            return self.process.poll() is None or self._drain_stdout(stdout)
        chunk = os.read(stdout.fileno(), 65536)
        if not chunk:
            return False
        self._split(chunk)
        return True

    def _drain_stdout(self, stdout: IO[bytes]) -> bool:
        chunk = os.read(stdout.fileno(), 65536)
        self._split(chunk)
        return bool(chunk)

    def _split(self, chunk: bytes) -> None:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        self._lines += [line.decode(errors="replace") for line in lines]

    def _tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        tail = "\n".join(text.splitlines()[-lines:])
        return f"\n--- {self.log_path.name} ---\n{tail}" if tail else ""


class Workers:
    """Spawns workers and stops all of them (in reverse order) on exit.

    Every worker gets its own ``state_dir`` under ``state_root`` (a gateway's store and
    logs go there, never to the user's XDG state directory); the caller removes it."""

    def __init__(self, log_dir: Path, state_root: Path) -> None:
        self.log_dir = log_dir
        self.state_root = state_root
        self._workers: list[Worker] = []
        self._count = 0
        self._env = dict(os.environ)
        path = [str(SCRIPTS), str(REPO)]
        if self._env.get("PYTHONPATH"):
            path.append(self._env["PYTHONPATH"])
        self._env["PYTHONPATH"] = os.pathsep.join(path)

    def spawn(self, role: str, cfg: Json, prefix: tuple[str, ...] = ()) -> Worker:
        self._count += 1
        name = f"{self._count:04d}-{role}"
        state_dir = self.state_root / name
        state_dir.mkdir(parents=True, mode=0o700)
        cfg = {**cfg, "state_dir": str(state_dir)}
        worker = Worker(role, cfg, self.log_dir / f"{name}.log", self._env, prefix)
        self._workers.append(worker)
        return worker

    def stop_all(self) -> None:
        while self._workers:
            self._workers.pop().stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        with contextlib.suppress(OSError):
            stream.close()
