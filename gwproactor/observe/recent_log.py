"""The last WARNING-and-worse log records, for the status page and ``/status``.

A :class:`logging.Handler` the runtime attaches to its base logger while it runs (so every
part's logger reaches it), keeping a bounded ring of short entries: memory is fixed, however
much is logged. The messages are the gateway's own (no secrets are logged); each is cut to
:data:`MAX_MESSAGE` characters. Records from any thread; :meth:`RecentLog.snapshot` from
any thread too (both under the handler's lock).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

__all__ = ("MAX_MESSAGE", "RecentLog")

MAX_MESSAGE = 500
"""Characters of one entry's message (an exception's type and text included)."""


class RecentLog(logging.Handler):
    """Keeps the last ``capacity`` records at ``level`` or worse."""

    def __init__(self, capacity: int = 50, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.capacity = capacity
        self._entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.seen = 0  # records kept since start (the ring holds the last ``capacity``)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                message = f"{message}: {type(error).__name__}: {error}"
        except Exception:  # noqa: BLE001 - a bad format string must not lose the entry
            message = str(record.msg)
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "…"
        self._entries.append(
            {
                "time": record.created,
                "level": record.levelname,
                "logger": record.name,
                "message": message,
            }
        )
        self.seen += 1

    def snapshot(self) -> list[dict[str, Any]]:
        """The entries, oldest first (copies)."""
        lock = self.lock  # the lock handle() holds around emit (created by Handler)
        if lock is None:
            return [dict(entry) for entry in self._entries]
        with lock:
            return [dict(entry) for entry in self._entries]
