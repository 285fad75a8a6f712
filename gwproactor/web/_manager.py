"""Named aiohttp servers and routes, run on the proactor's loop (no second loop thread).

The ``gateway`` server is configured from ``settings.web`` when ``web.enabled`` and carries
the built-in routes (:mod:`gwproactor.web._routes`); actors may add their own servers and
routes. Every route that changes state sits behind the bearer token (:mod:`._auth`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from gwproactor.actor.communicator import HTTPHandler
from gwproactor.errors import ConfigError, StateError, WebServerError

if TYPE_CHECKING:
    from aiohttp import web

    from gwproactor.web._view import GatewayView

__all__ = ("GATEWAY_SERVER", "RouteConfig", "ServerConfig", "WebManager", "WebServerError")

GATEWAY_SERVER = "gateway"
"""The name of the built-in server configured from ``settings.web``."""

from gwproactor.web._config import (  # noqa: E402
    _APP_KWARGS,
    _SITE_KWARGS,
    RouteConfig,
    ServerConfig,
    is_mutating,
)


class WebManager:
    """Loop-only. ``add_server``/``add_route`` before ``start``; ``start`` after actors,
    ``stop`` first at shutdown (so no request sees a half-stopped gateway).

    ``start`` may follow ``stop`` (each start builds fresh applications from the configs).
    """

    def __init__(self, gateway: GatewayView) -> None:
        # Cheap, no I/O: configs only. Sockets are bound in start().
        self._gateway = gateway
        self._log = gateway.logger.child("web")
        self.servers: dict[str, ServerConfig] = {}
        self.routes: list[RouteConfig] = []
        self._runners: dict[str, web.AppRunner] = {}
        settings = gateway.settings.web
        if settings.enabled:
            # aiohttp is imported only by gateways that serve HTTP (start-up time, memory).
            from gwproactor.web._routes import GatewayRoutes

            self.add_server(GATEWAY_SERVER, settings.host, settings.port)
            for route in GatewayRoutes(gateway).routes():
                self.add_route(
                    GATEWAY_SERVER, route.method, route.path, route.handler, mutating=route.mutating
                )

    @property
    def gateway(self) -> GatewayView:
        """The gateway this manager serves."""
        return self._gateway

    @property
    def log(self) -> logging.Logger:
        return self._log

    # -- configuration ----------------------------------------------------------------------

    def add_server(self, name: str, host: str, port: int, **kwargs: Any) -> None:
        """Configure server ``name`` on ``host:port`` (port 0: any free port). ``kwargs``:
        ``enabled`` (default True), ``client_max_size`` (the aiohttp application's), and
        TCPSite's ``ssl_context``, ``backlog``, ``reuse_address``, ``reuse_port``.

        Raises ConfigError (a ValueError) for a name already configured, TypeError for
        another keyword, StateError while running. Loop-only, not thread-safe.
        """
        self._require_stopped("add_server")
        if name in self.servers:
            raise ConfigError(f"web server {name!r} is already configured")
        enabled = bool(kwargs.pop("enabled", True))
        unknown = set(kwargs) - _SITE_KWARGS - _APP_KWARGS
        if unknown:
            raise TypeError(f"add_server: unexpected keyword(s) {sorted(unknown)}")
        self.servers[name] = ServerConfig(
            name,
            host,
            port,
            enabled,
            site_kwargs={k: v for k, v in kwargs.items() if k in _SITE_KWARGS},
            app_kwargs={k: v for k, v in kwargs.items() if k in _APP_KWARGS},
        )

    def add_route(
        self, server_name: str, method: str, path: str, handler: HTTPHandler, **kwargs: Any
    ) -> None:
        """Serve ``handler`` for ``method path`` on server ``server_name``. A route for a
        server that is not configured when ``start`` runs is ignored (logged at DEBUG), as
        in the seed API, so actors can offer routes that a site may not serve.

        ``mutating=True`` puts the route behind the bearer token (``settings.web.token``,
        on every server; with no token configured such routes answer 403); by default every method
        other than GET/HEAD/OPTIONS is mutating. Other ``kwargs`` go to aiohttp's
        ``add_route`` (``name``, ``expect_handler``). Raises ConfigError for a route already
        added, StateError while running. Loop-only, not thread-safe.
        """
        self._require_stopped("add_route")
        method = method.upper()
        mutating = is_mutating(method, kwargs.pop("mutating", None))
        if any((r.server, r.method, r.path) == (server_name, method, path) for r in self.routes):
            raise ConfigError(f"route {method} {path} on {server_name!r} is already added")
        self.routes.append(RouteConfig(server_name, method, path, handler, mutating, kwargs))

    def route_strings(self) -> dict[str, list[str]]:
        """``{server: ["GET /livez", "POST /actions/reconnect/{link} (token)", ...]}`` for
        every configured server (the seed's ``get_web_server_route_strings``)."""
        return {name: [str(r) for r in self.routes if r.server == name] for name in self.servers}

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._runners)

    async def start(self) -> None:
        """Bind and serve every enabled server. Returns when all are listening.

        Raises WebServerError (the OSError chained) if one cannot bind; the servers already
        started are stopped first, so a failed start leaves nothing listening. StateError if
        already running. Cancellation stops what was started.
        """
        self._require_stopped("start")
        for route in self.routes:
            config = self.servers.get(route.server)
            if config is None or not config.enabled:
                self._log.debug("web: %s for unconfigured server %r ignored", route, route.server)
        if not any(config.enabled for config in self.servers.values()):
            return  # no HTTP here: do not pay for importing aiohttp
        from gwproactor.web._server import start_server

        try:
            for config in self.servers.values():
                if config.enabled:
                    self._runners[config.name] = await start_server(self, config)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every server, in reverse start order: stop listening, let requests in
        progress finish for up to ``stop_timeout_seconds``, then cancel them. Bounded,
        idempotent, never raises for one server's failure (logged; the others still
        stop). Shielded: a cancelled caller does not leave a server half-closed."""
        await asyncio.shield(self._stop_all())

    async def _stop_all(self) -> None:
        timeout = self._gateway.settings.stop_timeout_seconds
        while self._runners:
            name, runner = self._runners.popitem()
            try:
                # aiohttp bounds in-flight requests by shutdown_timeout; this bound is a
                # last resort against a handler that ignores cancellation.
                await asyncio.wait_for(runner.cleanup(), timeout * 2 + 1)
            except (TimeoutError, OSError, RuntimeError) as e:
                self._log.error("web server %s did not stop cleanly: %s", name, e)
            else:
                self._log.debug("web server %s stopped", name)

    # -- discovery --------------------------------------------------------------------------

    def bound_port(self, name: str = GATEWAY_SERVER) -> int:
        """The port server ``name`` listens on (the chosen one when configured with 0).
        Raises StateError unless it is running."""
        return int(self._address(name)[1])

    def track_runner(self, name: str, runner: web.AppRunner) -> None:
        """Record a server's runner as soon as it is set up (called by the server module),
        so ``stop`` cleans it up even if binding its socket then fails."""
        self._runners[name] = runner

    def base_url(self, name: str = GATEWAY_SERVER) -> str:
        """``http://<bound host>:<port>`` of a running server. Raises StateError."""
        host, port = self._address(name)[:2]
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.servers[name].site_kwargs.get("ssl_context") else "http"
        return f"{scheme}://{host}:{port}"

    def _address(self, name: str) -> tuple[Any, ...]:
        runner = self._runners.get(name)
        addresses = runner.addresses if runner is not None else []
        if not addresses:
            raise StateError(f"web server {name!r} is not running")
        return tuple(addresses[0])

    def _require_stopped(self, what: str) -> None:
        if self._runners:
            raise StateError(f"web: {what} while servers are running")
