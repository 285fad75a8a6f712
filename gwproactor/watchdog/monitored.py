"""Names that the internal watchdog monitors."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("MonitoredName",)


@dataclass(frozen=True, slots=True)
class MonitoredName:
    """A part of the gateway (the loop, a thread, an actor) that promises to pat the
    internal watchdog at least every ``timeout_seconds`` (monotonic time)."""

    name: str
    timeout_seconds: float
