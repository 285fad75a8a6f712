"""The Proactor's own lifecycle: one enum, one setter, guards that raise clear errors."""

from __future__ import annotations

import enum
import logging

from gwproactor.errors import StateError

__all__ = ("Lifecycle", "ProactorState")


class ProactorState(enum.StrEnum):
    """Where a :class:`~gwproactor.Proactor` is in its life. A ``str`` enum, so it compares
    equal to its value (``proactor.state == "running"``) and prints as it."""

    constructed = "constructed"
    starting = "starting"
    running = "running"
    stopping = "stopping"
    stopped = "stopped"


_ALLOWED: dict[ProactorState, frozenset[ProactorState]] = {
    ProactorState.constructed: frozenset({ProactorState.starting, ProactorState.stopped}),
    ProactorState.starting: frozenset({ProactorState.running, ProactorState.stopping}),
    ProactorState.running: frozenset({ProactorState.stopping}),
    ProactorState.stopping: frozenset({ProactorState.stopped}),
    ProactorState.stopped: frozenset(),
}


class Lifecycle:
    """Holds a proactor's :class:`ProactorState`. Every change goes through :meth:`set`, which
    refuses a transition the table does not allow (a programming error: StateError) and logs
    the new state at DEBUG. Loop-only."""

    __slots__ = ("_log", "_name", "state")

    def __init__(self, name: str, log: logging.Logger) -> None:
        self._name = name
        self._log = log
        self.state = ProactorState.constructed

    def set(self, new: ProactorState) -> None:
        """Move to ``new``. Raises StateError if the table does not allow it."""
        if new not in _ALLOWED[self.state]:
            raise StateError(f"{self._name}: cannot go from {self.state} to {new}")
        self._log.debug("%s: lifecycle %s -> %s", self._name, self.state, new)
        self.state = new

    def require(self, action: str, *states: ProactorState) -> None:
        """Raise StateError naming ``action`` unless the state is one of ``states``."""
        if self.state not in states:
            allowed = " or ".join(str(s) for s in states)
            raise StateError(
                f"{self._name}: {action} needs the proactor {allowed}; it is {self.state}"
            )
