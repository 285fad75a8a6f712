"""One instance per gateway: an exclusive lock on the state directory.

Two processes running the same gateway would open the same store and connect with the
same client id, so that the broker throws each out whenever the other connects (issue 17,
item 6). The first to start holds ``flock(LOCK_EX)`` on ``<state_dir>/gwproactor.lock``
(holding its pid, for the message) until it stops; a second one fails at once. The
kernel drops the lock when the holder dies, however it dies, so a SIGKILLed gateway never
leaves a stale lock behind. ``flock`` locks belong to an open file, so a second gateway in
the same process is refused too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from gwproactor.errors import StateError

__all__ = ("LOCK_FILE", "InstanceLock")

LOCK_FILE = "gwproactor.lock"


class InstanceLock:
    """The state directory's lock. Not thread-safe; cheap to construct (no I/O)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock and write our pid into the file. Raises StateError ("already
        running (pid N)") if another gateway holds it, OSError if the file cannot be
        opened. Idempotent while held."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StateError(
                f"already running (pid {holder or 'unknown'}): {self.path} is locked by "
                "another process of this gateway"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays: unlinking it would race a starting gateway).
        Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
