"""Recent history for the status page: link transitions and the store backlog over the
last hour, in bounded ring buffers (memory is fixed whatever happens).

Loop-only. Times are wall clock (what the page shows); ages are computed against the
``now`` the reader passes, so a snapshot is consistent.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gwproactor.observe._records import FrozenRecord

__all__ = ("GatewayHistory", "LinkHistory", "Transition")

WINDOW_SECONDS = 3600.0
"""How far back the page looks."""


class Transition(FrozenRecord):
    __match_args__ = ("time", "old", "new")
    __slots__ = ("new", "old", "time")
    time: float  # wall clock
    old: str
    new: str

    def __init__(self, time: float, old: str, new: str) -> None:
        _set(self, "time", time)
        _set(self, "old", old)
        _set(self, "new", new)


_set = object.__setattr__


class LinkHistory:
    """One link's state changes (the last ``max_transitions``) and when it entered its
    current state."""

    def __init__(self, state: str, max_transitions: int, now: float) -> None:
        self.state = state
        self.since = now
        self.created = now  # the timeline starts here (nothing to draw before)
        self.transitions: deque[Transition] = deque(maxlen=max_transitions)
        self.flaps_total = 0  # times the link left "active", since start

    def record(self, old: str, new: str, now: float) -> None:
        self.transitions.append(Transition(now, old, new))
        self.state, self.since = new, now
        if old == "active":
            self.flaps_total += 1

    def recent(self, now: float, window: float = WINDOW_SECONDS) -> list[Transition]:
        return [t for t in self.transitions if now - t.time <= window]

    def flaps(self, now: float, window: float = WINDOW_SECONDS) -> int:
        """Times the link left ``active`` within ``window``."""
        return sum(1 for t in self.recent(now, window) if t.old == "active")


class GatewayHistory:
    """Link histories and a backlog series sampled every ``sample_seconds`` (the last
    ``WINDOW_SECONDS`` of samples are kept). ``sample`` is called by a loop timer started
    with :meth:`start`; it reads ``backlog()`` (pending events in the store)."""

    def __init__(
        self,
        *,
        sample_seconds: float = 10.0,
        max_transitions: int = 200,
        backlog: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sample_seconds = sample_seconds
        self._max_transitions = max_transitions
        self._backlog = backlog
        self._clock = clock
        self.links: dict[str, LinkHistory] = {}
        points = max(2, int(WINDOW_SECONDS / sample_seconds) + 1)
        self.backlog: deque[tuple[float, int]] = deque(maxlen=points)
        self._timer: object = None

    def link(self, name: str, state: str = "not_started") -> LinkHistory:
        history = self.links.get(name)
        if history is None:
            history = self.links[name] = LinkHistory(state, self._max_transitions, self._clock())
        return history

    def link_state(self, name: str, old: str, new: str) -> None:
        """A link changed state (called once per transition)."""
        self.link(name, old).record(old, new, self._clock())

    def sample(self) -> None:
        if self._backlog is not None:
            self.backlog.append((self._clock(), self._backlog()))

    # -- the sampling timer (loop) -----------------------------------------------------------

    def start(self, call_later: Callable[[float, Callable[[], None]], object]) -> None:
        """Sample now and every ``sample_seconds`` through ``call_later`` (the loop's)."""
        self._call_later = call_later
        self._tick()

    def stop(self) -> None:
        timer, self._timer = self._timer, None
        cancel = getattr(timer, "cancel", None)
        if cancel is not None:
            cancel()

    def _tick(self) -> None:
        self.sample()
        self._timer = self._call_later(self.sample_seconds, self._tick)

    # -- snapshot ----------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """JSON-ready: per link its state, since when, the transitions and flaps of the
        last hour; the backlog samples of the last hour."""
        now = self._clock() if now is None else now
        return {
            "window_seconds": WINDOW_SECONDS,
            "links": {
                name: {
                    "state": h.state,
                    "since": h.since,
                    "created": h.created,
                    "flaps_last_hour": h.flaps(now),
                    "flaps_total": h.flaps_total,
                    "transitions": [
                        {"time": t.time, "old": t.old, "new": t.new} for t in h.recent(now)
                    ],
                }
                for name, h in self.links.items()
            },
            "backlog": [[t, n] for t, n in self.backlog if now - t <= WINDOW_SECONDS],
        }
