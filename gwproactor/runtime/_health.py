"""The gateway's health: the internal watchdog, the service manager's watchdog (sd_notify or
a custom pat command) patted only while the internal one is satisfied, and STATUS=."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gwproactor.watchdog import (
    ExternalWatchdogCommandBuilder,
    InternalWatchdog,
    SdNotifier,
    WatchdogPatter,
)

if TYPE_CHECKING:
    from gwproactor.runtime.proactor import Proactor

__all__ = ("GatewayHealth",)


class GatewayHealth:
    """Loop-only. A stalled part is reported (problem, comm event, STATUS=) and the service
    manager is no longer patted, so systemd restarts the unit."""

    def __init__(self, proactor: Proactor) -> None:
        self._p = proactor
        settings = proactor.settings.watchdog
        self.watchdog = InternalWatchdog.from_settings(
            settings, on_stall=self.on_stall, on_recover=self.on_recover
        )
        self.patter = WatchdogPatter(
            self.watchdog,
            SdNotifier() if settings.systemd_notify else None,
            external_command=ExternalWatchdogCommandBuilder.pat_args(
                proactor.name, args=settings.external_command or None
            ),
            external_interval_seconds=settings.external_interval_seconds,
            external_timeout_seconds=settings.external_timeout_seconds,
            on_withheld=self.on_withheld,
        )

    def on_stall(self, name: str, silent_seconds: float) -> None:
        self.patter.set_status(self.status_line())
        if self._p.hub:
            self._p.hub.emit("watchdog.stalled", name, {"silent_seconds": silent_seconds})
        self._p.report_problem(
            f"watchdog: {name} silent", f"no pat for {silent_seconds:.1f} s", key=f"stall:{name}"
        )

    def on_recover(self, name: str) -> None:
        self.patter.set_status(self.status_line())
        if self._p.hub:
            self._p.hub.emit("watchdog.recovered", name, {})
        self._p.logger.lifecycle.info("watchdog: %s alive again", name)

    def on_withheld(self, stalled: list[str]) -> None:
        self._p.logger.lifecycle.error(
            "not patting the service watchdog: %s silent", ", ".join(stalled)
        )

    def status_line(self) -> str:
        """One line for systemd's STATUS= and the CLI: the state of every link."""
        links = ", ".join(f"{n} {link.state.value}" for n, link in self._p.links.items())
        stalled = self.watchdog.stalled_names
        tail = f"; stalled: {', '.join(stalled)}" if stalled else ""
        return f"{self._p.name} {self._p.state}: {links or 'no links'}{tail}"
