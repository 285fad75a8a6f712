"""The gateway's health: the internal watchdog, the service manager's watchdog (sd_notify or
a custom pat command) patted only while the internal one is satisfied, and STATUS=."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from gwproactor.config import WatchdogSettings
from gwproactor.links import Link
from gwproactor.observe.listeners import ListenerHub
from gwproactor.watchdog import (
    SPIN_NAME,
    InternalWatchdog,
    SdNotifier,
    WatchdogPatter,
)

__all__ = ("GatewayHealth",)


class GatewayHealth:
    """Loop-only. A stalled part is reported (problem, comm event, STATUS=) and the service
    manager is no longer patted, so systemd restarts the unit.

    ``state`` returns the proactor's lifecycle state for the status line; ``links`` is the
    gateway's live link table.
    """

    def __init__(
        self,
        name: str,
        settings: WatchdogSettings,
        *,
        links: Mapping[str, Link],
        state: Callable[[], str],
        hub: ListenerHub,
        report_problem: Callable[..., None],
        lifecycle_log: logging.Logger,
    ) -> None:
        self._name = name
        self._links = links
        self._state = state
        self._hub = hub
        self._report_problem = report_problem
        self._log = lifecycle_log
        self.watchdog = InternalWatchdog.from_settings(
            settings, on_stall=self.on_stall, on_recover=self.on_recover
        )
        self.patter = WatchdogPatter(
            self.watchdog,
            SdNotifier() if settings.systemd_notify else None,
            # Configured means run: no environment gate (the builder's service variable is
            # for code that drives the reference API's builder itself).
            external_command=settings.external_command,
            external_interval_seconds=settings.external_interval_seconds,
            external_timeout_seconds=settings.external_timeout_seconds,
            on_withheld=self.on_withheld,
        )

    def on_stall(self, name: str, silent_seconds: float) -> None:
        self.patter.set_status(self.status_line())
        if self._hub:
            self._hub.emit("watchdog.stalled", name, {"silent_seconds": silent_seconds})
        if name == SPIN_NAME:
            rate = self.watchdog.idle_polls_per_second
            summary, details = (
                "watchdog: the event loop is spinning",
                f"{rate:.0f} idle polls/s for {silent_seconds:.1f} s (lag stays low)",
            )
        else:
            summary, details = f"watchdog: {name} silent", f"no pat for {silent_seconds:.1f} s"
        self._report_problem(summary, details, key=f"stall:{name}")

    def on_recover(self, name: str) -> None:
        self.patter.set_status(self.status_line())
        if self._hub:
            self._hub.emit("watchdog.recovered", name, {})
        self._log.info("watchdog: %s alive again", name)

    def on_withheld(self, stalled: list[str]) -> None:
        self._log.error("not patting the service watchdog: %s silent", ", ".join(stalled))

    def status_line(self) -> str:
        """One line for systemd's STATUS= and the CLI: the state of every link."""
        links = ", ".join(
            f"{n} {link.state.value}"
            + (f" ({link.acks_unanswered} unacked)" if link.acks_overdue else "")
            for n, link in self._links.items()
        )
        stalled = self.watchdog.stalled_names
        tail = f"; stalled: {', '.join(stalled)}" if stalled else ""
        return f"{self._name} {self._state()}: {links or 'no links'}{tail}"
