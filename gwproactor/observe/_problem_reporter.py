"""Reporting problems: log, count, emit, store as an event; rate-limited per key."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gwproactor.observe._records import FrozenRecord
from gwproactor.observe.listeners import ListenerHub
from gwproactor.observe.problems import ProblemEvent
from gwproactor.observe.stats import OTHER, ProactorStats

__all__ = ("ProblemReporter", "RecentProblem")


class RecentProblem(FrozenRecord):
    __match_args__ = ("time", "summary", "details", "error", "suppressed", "count", "key")
    __slots__ = ("count", "details", "error", "key", "summary", "suppressed", "time")
    time: float  # wall clock, for display
    summary: str
    details: str
    error: bool
    suppressed: int
    count: int  # reports with this key up to this one (rate-limited ones included)
    key: str

    def __init__(
        self,
        time: float,
        summary: str,
        details: str,
        error: bool,
        suppressed: int,
        count: int = 1,
        key: str = "",
    ) -> None:
        _set = object.__setattr__
        _set(self, "time", time)
        _set(self, "summary", summary)
        _set(self, "details", details)
        _set(self, "error", error)
        _set(self, "suppressed", suppressed)
        _set(self, "count", count)
        _set(self, "key", key)


MAX_KEYS = 1000
"""Rate-limit keys remembered at once. Keys name kinds of problems (``unroutable:no_route``,
``<link>:decode.json``), never what a peer sent, so this is never reached in practice; if
some caller does put peer-chosen text in a key, the keys past this bound share one bucket
(:data:`OVERFLOW_KEY`) instead of growing memory and the problem rate without limit."""

OVERFLOW_KEY = "overflow"

MAX_KINDS = 64
"""Distinct ``kind`` labels counted in ``ProactorStats.problems_by_kind``."""

MAX_TEXT = 1000
"""Characters of a summary or details kept: the text often quotes what a peer sent (a
header, a topic), which may be as long as the largest payload."""


class ProblemReporter:
    """Loop-only. Reports with the same key are rate-limited to one per ``interval``; the
    ones held back are counted and their number goes with the next report. A reported
    problem is also stored as a :class:`ProblemEvent` through ``generate_event``, unless
    reporting a problem is itself what fails (then it is only logged). At most
    :data:`MAX_KEYS` keys are tracked (see there)."""

    def __init__(
        self,
        interval_seconds: float,
        *,
        stats: ProactorStats,
        hub: ListenerHub,
        logger: logging.Logger,
        generate_event: Callable[[ProblemEvent], Any],
        can_store: Callable[[], bool],
        keep: int = 50,
    ) -> None:
        self.interval_seconds = interval_seconds
        self._stats = stats
        self._hub = hub
        self._log = logger
        self._generate_event = generate_event
        self._can_store = can_store
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._counts: dict[str, int] = {}  # same keys as _last (bounded with them)
        self._reporting = False
        self._last_sweep = -float("inf")
        self.recent: deque[RecentProblem] = deque(maxlen=keep)

    def report(
        self,
        summary: str,
        details: str = "",
        *,
        error: bool = True,
        key: str | None = None,
        store: bool = True,
        kind: str | None = None,
    ) -> None:
        """``store=False``: log, count and emit, but do not store it as an event (for
        problems of the store itself, which would otherwise feed on themselves: a full
        store's "event dropped" would be stored, dropping another event, and so on).

        ``kind`` labels the ``problems_total`` counter (``unroutable``, ``handler``,
        ``store``...); by default the part of ``key`` before its first ``:``. At most
        :data:`MAX_KINDS` kinds are counted apart, the rest as ``other``."""
        summary, details = _bounded(summary), _bounded(details)
        key = key or summary
        self._stats.problems_reported += 1
        self._count_kind(kind if kind is not None else key.split(":", 1)[0])
        now = time.monotonic()
        last = self._last.get(key)
        if last is None and len(self._last) >= MAX_KEYS:
            self._forget_expired(now)
            if len(self._last) >= MAX_KEYS:
                key = OVERFLOW_KEY
                last = self._last.get(key)
        if last is not None and now - last < self.interval_seconds:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        held = self._suppressed.pop(key, 0)
        count = self._counts[key] = self._counts.get(key, 0) + held + 1
        suffix = f" (+{held} similar since last report)" if held else ""
        self._log.log(
            logging.ERROR if error else logging.WARNING, "%s: %s%s", summary, details, suffix
        )
        self.recent.append(RecentProblem(time.time(), summary, details, error, held, count, key))
        if self._hub:
            self._hub.emit(
                "problem", summary, {"details": details, "error": error, "suppressed": held}
            )
        if not store or self._reporting or not self._can_store():
            return
        self._reporting = True
        try:
            self._generate_event(
                ProblemEvent(
                    problem_type="error" if error else "warning",
                    summary=summary,
                    details=details + suffix,
                )
            )
        finally:
            self._reporting = False

    def count(self, key: str) -> int:
        """Reports with ``key`` so far, held-back ones included (0 once forgotten)."""
        return self._counts.get(key, 0) + self._suppressed.get(key, 0)

    def _forget_expired(self, now: float) -> None:
        """Drop keys whose interval is over and that hold nothing back (at most once per
        interval: under a flood of new keys this is not a scan per report)."""
        if now - self._last_sweep < self.interval_seconds:
            return
        self._last_sweep = now
        expired = [
            k
            for k, t in self._last.items()
            if now - t >= self.interval_seconds and k not in self._suppressed
        ]
        for k in expired:
            del self._last[k]
            self._counts.pop(k, None)

    def _count_kind(self, kind: str) -> None:
        by_kind = self._stats.problems_by_kind
        if kind not in by_kind and len(by_kind) >= MAX_KINDS:
            kind = OTHER
        by_kind[kind] += 1


def _bounded(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}... ({len(text) - MAX_TEXT} more characters)"
