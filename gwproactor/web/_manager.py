"""Named aiohttp servers and routes, run on the proactor's loop (no second loop thread).

(Interface in place; the built-in routes and the server are filled in by the web work.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gwproactor.communicator import HTTPHandler

if TYPE_CHECKING:
    from gwproactor.proactor import Proactor

__all__ = ("WebManager",)


class WebManager:
    """Loop-only. ``add_server``/``add_route`` before ``start``; ``start`` after actors,
    ``stop`` first at shutdown (so no request sees a half-stopped gateway)."""

    def __init__(self, proactor: Proactor) -> None:
        self._proactor = proactor
        self.servers: dict[str, dict[str, Any]] = {}
        self.routes: list[tuple[str, str, str, HTTPHandler, dict[str, Any]]] = []

    def add_server(self, name: str, host: str, port: int, **kwargs: Any) -> None:
        self.servers[name] = {"host": host, "port": port, **kwargs}

    def add_route(
        self, server_name: str, method: str, path: str, handler: HTTPHandler, **kwargs: Any
    ) -> None:
        self.routes.append((server_name, method, path, handler, kwargs))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
