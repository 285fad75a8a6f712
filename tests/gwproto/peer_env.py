"""The gridworks-proactor 4.1.13 peer: its virtual environment and its processes.

4.1.13 and this project both import as ``gwproactor``, so the 4.x peer runs as a separate
process with its own interpreter. :func:`peer_python` creates that environment once (from
PyPI, with the ordinary ``pip``) and caches it outside the repository, under
``$GWPROACTOR_TEST_CACHE`` or ``~/.cache/gwproactor-tests/``, in a folder named after the
pins, so that a change of pins makes a new one. A file lock serialises concurrent test
workers; a half-made or broken environment (no completion stamp, or its imports fail) is
removed and made again.

:class:`Gw4Peer` runs ``peer/gw4_peer.py`` with that interpreter and reads its JSON-line
reports (see that file) into a list that tests await on.

Run ``python -m tests.gwproto.peer_env`` to create the environment ahead of the tests
(``scripts/test`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ("PINS", "Gw4Peer", "PeerReport", "peer_python")

PINS = ("gridworks-proactor==4.1.13", "gridworks-protocol==1.3.3", "typer")
"""4.1.13 imports ``typer`` without declaring it, so it is installed as well."""

PEER_PROGRAM = Path(__file__).with_name("peer") / "gw4_peer.py"
_CHECK = (
    "import importlib.metadata as m, gwproactor.app, gwproto, typer; "
    "assert m.version('gridworks-proactor') == '4.1.13', m.version('gridworks-proactor'); "
    "assert m.version('gridworks-protocol') == '1.3.3', m.version('gridworks-protocol')"
)
_STAMP = ".gwproactor-tests-complete"
_INSTALL_TIMEOUT_SECONDS = 600


def cache_root() -> Path:
    root = os.environ.get("GWPROACTOR_TEST_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "gwproactor-tests"


def env_dir() -> Path:
    key = hashlib.sha256("\n".join((*PINS, sys.version.split()[0])).encode()).hexdigest()[:12]
    return cache_root() / f"gw4-peer-{key}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _healthy(directory: Path) -> bool:
    python = directory / "bin" / "python"
    if not (directory / _STAMP).exists() or not python.exists():
        return False
    check = subprocess.run(
        [str(python), "-I", "-c", _CHECK], capture_output=True, timeout=120, check=False
    )
    return check.returncode == 0


def peer_python(log: Callable[[str], None] = lambda _: None) -> Path:
    """The interpreter of the 4.1.13 environment, created (or re-created) if needed.

    Blocks while another process creates it. Raises RuntimeError, with pip's output, if
    it cannot be installed."""
    directory = env_dir()
    python = directory / "bin" / "python"
    if _healthy(directory):
        return python  # the usual path: one import check (about a second) per session
    with _locked(directory.with_suffix(".lock")):
        if _healthy(directory):
            return python
        if directory.exists():
            log(f"removing the incomplete or broken peer environment {directory}")
            shutil.rmtree(directory)
        log(f"creating the 4.1.13 peer environment {directory} ({' '.join(PINS)}) from PyPI")
        venv.EnvBuilder(with_pip=True, clear=True).create(directory)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINS],
            capture_output=True,
            text=True,
            timeout=_INSTALL_TIMEOUT_SECONDS,
            check=False,
        )
        if install.returncode != 0:
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(
                f"pip install {' '.join(PINS)} failed ({install.returncode}):\n"
                f"{install.stdout[-2000:]}\n{install.stderr[-2000:]}"
            )
        (directory / _STAMP).write_text(" ".join(PINS) + "\n")
        if not _healthy(directory):
            raise RuntimeError(f"the peer environment {directory} does not import 4.1.13")
    return python


@dataclass
class PeerReport:
    kind: str
    t: float
    fields: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


class Gw4Peer:
    """One 4.1.13 gateway process. Start with :meth:`start`; always :meth:`close`.

    ``reports`` grows as the process reports; :meth:`wait_for` awaits a condition on it.
    """

    def __init__(
        self,
        python: Path,
        *,
        role: str,
        port: int,
        long_name: str,
        short_name: str,
        peer_long_name: str,
        peer_short_name: str,
        data_dir: Path,
        ping_seconds: float = 60.0,
        ack_timeout: float = 5.0,
    ) -> None:
        self.argv = [
            str(python), "-I", str(PEER_PROGRAM), "--role", role, "--port", str(port),
            "--long-name", long_name, "--short-name", short_name,
            "--peer-long-name", peer_long_name, "--peer-short-name", peer_short_name,
            "--data-dir", str(data_dir), "--ping-seconds", str(ping_seconds),
            "--ack-timeout", str(ack_timeout),
        ]  # fmt: skip
        self.long_name = long_name
        self.data_dir = data_dir
        self.reports: list[PeerReport] = []
        self.stderr_path = data_dir / "stderr.log"
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> Gw4Peer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("wb") as err:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.wait_for(lambda r: r.kind == "ready", timeout=60)
        return self

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            kind = data.pop("kind")
            t = data.pop("t")
            self.reports.append(PeerReport(kind, t, data))
            self._changed.set()
        self.reports.append(PeerReport("eof", time.monotonic()))
        self._changed.set()

    def send(self, **command: Any) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write((json.dumps(command) + "\n").encode())

    def of_kind(self, kind: str) -> list[PeerReport]:
        return [r for r in self.reports if r.kind == kind]

    @property
    def state(self) -> str | None:
        states = self.of_kind("state")
        return states[-1]["state"] if states else None

    @property
    def pending(self) -> int:
        states = self.of_kind("state")
        if not states:
            return 0
        last = states[-1]
        return int(last["pending"]) + int(last["in_flight"])

    def received(self, type_name: str) -> list[PeerReport]:
        return [r for r in self.of_kind("received") if r["type"] == type_name]

    def decode_problems(self) -> list[PeerReport]:
        """ProblemEvents it generated because it could not decode something of ours."""
        return [
            r
            for r in self.of_kind("generated")
            if r["type"] == "gridworks.event.problem" and "ecod" in str(r.get("summary"))
        ]

    async def wait_for(
        self, condition: Callable[[PeerReport], bool] | Callable[[], bool], timeout: float = 30
    ) -> None:
        """Until ``condition(report)`` holds for some report (one argument) or
        ``condition()`` holds (no argument). Raises TimeoutError with the stderr tail."""
        deadline = asyncio.get_running_loop().time() + timeout
        takes_report = condition.__code__.co_argcount == 1
        while True:
            if takes_report:
                if any(condition(r) for r in self.reports):  # type: ignore[call-arg]
                    return
            elif condition():  # type: ignore[call-arg]
                return
            if self.reports and self.reports[-1].kind == "eof":
                raise RuntimeError(f"4.1.13 peer exited:\n{self.stderr_tail()}")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"4.1.13 peer: condition not met\n{self.stderr_tail()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def stderr_tail(self, chars: int = 3000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def close(self) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(Exception):
                self.send(cmd="stop")
                assert process.stdin is not None
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 8)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


if __name__ == "__main__":
    print(peer_python(log=lambda m: print(m, file=sys.stderr)))
