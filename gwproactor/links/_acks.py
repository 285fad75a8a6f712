"""Ack deadlines for ack-required messages, with a single timer.

All messages on a link share one timeout, so deadlines are reached in send order: an
insertion-ordered dict is a queue of deadlines, and one timer for the oldest is enough.
Starting and clearing a deadline are O(1) dict operations (no timer per message).

A deadline that passes leaves the link *overdue* until the peer answers anything of ours
(:meth:`AckTracker.answered`: any ack proves that our publishes reach the peer). A one-way
path (the peer's messages arriving, ours dropped) stays overdue however much the peer says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ("AckTracker",)


_MAX_LATE = 65_536  # ids remembered as overdue (pings add one per timeout while unanswered)


class AckTracker:
    """Loop-only. ``on_timeout(message_ids)`` is called with every id whose deadline passed."""

    def __init__(
        self,
        timeout_seconds: float,
        on_timeout: Callable[[list[str]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self._on_timeout = on_timeout
        self._clock = clock
        self._deadlines: dict[str, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._late: dict[str, None] = {}  # ids overdue since the last answer, oldest first
        self._unanswered_since: float | None = None

    @property
    def overdue(self) -> bool:
        """A deadline passed and the peer has not answered anything since."""
        return self._unanswered_since is not None

    def unanswered_seconds(self) -> float:
        """Since the first overdue message was sent (0 when not overdue)."""
        if self._unanswered_since is None:
            return 0.0
        return self._clock() - self._unanswered_since

    @property
    def unanswered(self) -> int:
        """Messages without an ack: overdue ones and those still within their deadline
        (a re-sent overdue message counts once)."""
        if not self._late:
            return len(self._deadlines)
        return len(self._deadlines.keys() | self._late.keys())

    def answered(self) -> None:
        """The peer acked something: our publishes reach it, nothing is overdue now."""
        self._late.clear()
        self._unanswered_since = None

    def __len__(self) -> int:
        return len(self._deadlines)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._deadlines

    def start(self, message_id: str) -> None:
        # Re-sending an id restarts its deadline at the back of the queue.
        self._deadlines.pop(message_id, None)
        self._deadlines[message_id] = self._clock() + self.timeout_seconds
        if self._timer is None:
            self._arm()

    def clear(self, message_id: str) -> bool:
        """Forget the deadline of an acked message. True if it was waiting."""
        return self._deadlines.pop(message_id, None) is not None

    def cancel_all(self) -> list[str]:
        """Forget every deadline and what was overdue (on disconnect or stop: a new
        connection starts in good standing); returns the ids that were waiting."""
        waiting = list(self._deadlines)
        self._deadlines.clear()
        self.answered()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return waiting

    def _arm(self) -> None:
        if not self._deadlines:
            self._timer = None
            return
        first = next(iter(self._deadlines.values()))
        delay = max(0.0, first - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        now = self._clock()
        expired: list[str] = []
        for message_id, deadline in self._deadlines.items():
            if deadline > now:
                break
            expired.append(message_id)
        for message_id in expired:
            deadline = self._deadlines.pop(message_id)
            if self._unanswered_since is None:
                self._unanswered_since = deadline - self.timeout_seconds  # when it was sent
            self._late[message_id] = None
        while len(self._late) > _MAX_LATE:
            del self._late[next(iter(self._late))]
        self._arm()
        if expired:
            self._on_timeout(expired)
