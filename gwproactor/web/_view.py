"""What the web side reads of a gateway: a narrow, read-mostly view, so that the web code
never imports the runtime. The Proactor satisfies it structurally."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from result import Result

from gwproactor.config import ProactorSettings
from gwproactor.links import Link
from gwproactor.observe.logger import ProactorLogger
from gwproactor.store import StoredEvent
from gwproactor.watchdog import InternalWatchdog

__all__ = ("GatewayView",)


class GatewayView(Protocol):
    """Loop-only, like every aiohttp handler that reads it."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> ProactorSettings: ...

    @property
    def logger(self) -> ProactorLogger: ...

    @property
    def state(self) -> str: ...

    @property
    def ready(self) -> bool: ...

    @property
    def links(self) -> Mapping[str, Link]: ...

    @property
    def watchdog(self) -> InternalWatchdog: ...

    def status(self) -> dict[str, Any]:
        """The JSON-ready snapshot (no secrets)."""
        ...

    async def query_events(
        self,
        pattern: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 100,
        pending: bool | None = None,
        *,
        latest: bool = False,
    ) -> list[StoredEvent]: ...

    async def restart_actor(self, name: str) -> Result[None, Exception]:
        """Stop, reload and start an actor configured in the settings."""
        ...

    def report_problem(
        self, summary: str, details: str = "", *, error: bool = True, key: str | None = None
    ) -> None: ...
