"""A receiving (parent) gateway run as a real ``gwproactor run`` process, for crash tests.

:func:`write_receiver_config` writes a TOML config: gateway ``parent`` with a downstream
link to ``child`` on the broker at 127.0.0.1:port, its store in ``state_dir``, and the
:class:`~tests.procs.recorder.DeliveryRecorder` actor routed every ``Counted`` event.
:class:`ReceiverProcess` starts ``python -m gwproactor run`` on it, SIGKILLs or SIGTERMs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.procs import REPO_ROOT

__all__ = ("Deliveries", "ReceiverProcess", "read_deliveries", "write_receiver_config")


def write_receiver_config(
    path: Path, *, port: int, state_dir: Path, record: Path, work_seconds: float = 0.0
) -> Path:
    path.write_text(
        f"""name = "parent"
paths.state_dir = "{state_dir}"
logging.level = "INFO"

[links.child]
peer = "child"
role = "downstream"
broker.host = "127.0.0.1"
broker.port = {port}
broker.reconnect_min_seconds = 0.05
broker.reconnect_max_seconds = 0.5

[actors.recorder]
class = "tests.procs.recorder:DeliveryRecorder"
handles = ["test.counted"]
options = {{ path = "{record}", work_seconds = {work_seconds} }}

[web]
enabled = false
"""
    )
    return path


@dataclass
class Deliveries:
    """A record file, parsed (see :mod:`tests.procs.recorder`)."""

    got: list[tuple[int, bool]] = field(default_factory=list)  # (n, is_redelivery) in order
    effects: Counter[int] = field(default_factory=Counter)

    @property
    def first_seen(self) -> list[int]:
        """Each n at its first hand-over, in hand-over order."""
        seen: set[int] = set()
        order = []
        for n, _ in self.got:
            if n not in seen:
                seen.add(n)
                order.append(n)
        return order

    @property
    def duplicates(self) -> int:
        """Hand-overs of an event the actor had been given before."""
        return len(self.got) - len(self.first_seen)

    @property
    def unflagged_duplicates(self) -> int:
        """Hand-overs of an event given before, without ``is_redelivery`` saying so."""
        seen: set[int] = set()
        count = 0
        for n, again in self.got:
            if n in seen and not again:
                count += 1
            seen.add(n)
        return count


def read_deliveries(path: Path) -> Deliveries:
    out = Deliveries()
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        word, *rest = line.split()
        if word == "got":
            out.got.append((int(rest[0]), rest[2] == "1"))
        elif word == "effect":
            out.effects[int(rest[0])] += 1
    return out


class ReceiverProcess:
    """One ``gwproactor run`` of a receiver config; its output goes to ``log_path``."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> ReceiverProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gwproactor",
                "run",
                str(self.config),
                "--env-file",
                os.devnull,
                cwd=REPO_ROOT,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        return self

    async def kill(self) -> None:
        """SIGKILL and reap; a no-op once it has exited."""
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
            await process.wait()

    async def terminate(self, timeout: float) -> int:
        """SIGTERM (a clean stop) and wait; its return code."""
        process = self._process
        assert process is not None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            return await process.wait()
