"""Tests of gwproactor.watchdog, and the fake clock they share."""

from __future__ import annotations


class FakeClock:
    """A monotonic clock that moves only when a test says so. Reading it from a thread is
    fine: it returns a float attribute."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
