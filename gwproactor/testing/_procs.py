"""Process plumbing shared by the broker managers (:mod:`.mosquitto`, :mod:`.nats`,
:mod:`.rabbitmq`): owner-only files, log tails, spawning and reaping, and finding processes
by an environment tag.

Every process is spawned the same way: in a session of its own (a Ctrl-C in the terminal
does not reach it before teardown does), stdin from ``/dev/null``, stdout and stderr
appended to the manager's log, and, where util-linux ``setpriv`` exists, with
``PR_SET_PDEATHSIG`` so that the kernel sends it ``SIGKILL`` if the *thread* that spawned it
dies. Package-private: nothing here is re-exported.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = (
    "KILL_WAIT_S",
    "kill_quietly",
    "kill_tagged",
    "log_tail",
    "reap",
    "spawn",
    "tagged_pids",
    "write_private",
)

KILL_WAIT_S = 10.0
"""How long to wait for a process to go after ``SIGKILL``."""

_LOG_TAIL_BYTES = 256 * 1024
_ZOMBIE_POLL_S = 0.05


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.chmod(path, 0o600)


def log_tail(path: Path, lines: int) -> str:
    """Return the last ``lines`` lines of the log at ``path`` (``""`` if there is none).

    Reads at most the last 256 KiB, so a long log costs no more than a short one.
    """
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
            data = log.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def spawn(
    argv: list[str],
    *,
    log_path: Path,
    cwd: Path,
    marker: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as described in the module docstring, its output appended to
    ``log_path``; with ``marker``, first append the line ``==== test harness: <marker> ====``
    there. ``env`` replaces the inherited environment when given. Does not wait."""
    setpriv = shutil.which("setpriv")
    if setpriv is not None and os.uname().sysname == "Linux":
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    with log_path.open("ab") as log:
        if marker is not None:
            log.write(f"==== test harness: {marker} ====\n".encode())
            log.flush()
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )


def reap(process: subprocess.Popen[bytes], sig: signal.Signals, grace: float) -> None:
    """Send ``sig`` unless exited, wait ``grace``, then SIGKILL and wait (bounded)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=KILL_WAIT_S)


def kill_quietly(process: subprocess.Popen[bytes]) -> None:
    """Finalizer: kill a process whose owner was dropped or is exiting, without raising."""
    if process.poll() is None:
        with contextlib.suppress(OSError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=KILL_WAIT_S)


def kill_tagged(
    marker: bytes,
    leader: subprocess.Popen[bytes] | None,
    *children: subprocess.Popen[bytes] | None,
) -> None:
    """SIGKILL ``leader``'s process group (it runs in a session of its own), every live
    process whose environment holds ``marker`` (a ``NAME=value`` entry) and ``children``;
    reap ``leader`` and ``children``. Gives up after :data:`KILL_WAIT_S`. Also used as a
    finalizer: never raises."""
    if leader is not None and leader.poll() is None:
        with contextlib.suppress(OSError):
            os.killpg(leader.pid, signal.SIGKILL)  # its own session: pgid == pid
    deadline = time.monotonic() + KILL_WAIT_S
    while True:
        for pid in tagged_pids(marker):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for process in (leader, *children):
            if process is not None:
                with contextlib.suppress(OSError):
                    process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
        if not any(True for _ in tagged_pids(marker)) or time.monotonic() >= deadline:
            return
        time.sleep(_ZOMBIE_POLL_S)  # killed processes take a moment to become zombies


def tagged_pids(marker: bytes) -> Iterator[int]:
    """Pids of live (non-zombie) processes whose environment contains ``marker`` (Linux
    ``/proc``; nothing elsewhere). Never this process."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            stat = (entry / "stat").read_bytes()
            if stat.rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                continue
            environ = (entry / "environ").read_bytes()
        except (OSError, IndexError):
            continue
        if marker in environ.split(b"\0"):
            yield int(entry.name)
