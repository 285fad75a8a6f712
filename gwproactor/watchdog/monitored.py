"""Names that the internal watchdog monitors."""

from __future__ import annotations

from gwproactor.observe._records import FrozenRecord

__all__ = ("MonitoredName",)


class MonitoredName(FrozenRecord):
    """A part of the gateway (the loop, a thread, an actor) that promises to pat the
    internal watchdog at least every ``timeout_seconds`` (monotonic time). Immutable (a
    frozen record, see :mod:`gwproactor.observe._records`)."""

    __match_args__ = ("name", "timeout_seconds")
    __slots__ = ("name", "timeout_seconds")
    name: str
    timeout_seconds: float

    def __init__(self, name: str, timeout_seconds: float) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "timeout_seconds", timeout_seconds)
