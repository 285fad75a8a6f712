"""The aiohttp side of :class:`~gwproactor.web._manager.WebManager`, imported only when a
server starts (aiohttp costs start-up time and memory a gateway without HTTP need not pay)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware

from gwproactor.actor.communicator import HTTPHandler
from gwproactor.errors import WebServerError
from gwproactor.web._auth import guarded
from gwproactor.web._config import RouteConfig, ServerConfig, is_loopback

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest
    from aiohttp.web_response import StreamResponse

    from gwproactor.web._view import GatewayView


class ServedBy(Protocol):
    """What a server needs of its manager (the manager imports this module lazily)."""

    @property
    def gateway(self) -> GatewayView: ...

    @property
    def log(self) -> logging.Logger: ...

    @property
    def routes(self) -> list[RouteConfig]: ...

    def base_url(self, name: str) -> str: ...

    def track_runner(self, name: str, runner: web.AppRunner) -> None: ...


__all__ = ("start_server",)


class AccessLogger(AbstractAccessLogger):
    """One DEBUG line per request: the status page polls every few seconds, and INFO lines
    for that would fill the rotating log file. Path only, never the query or headers."""

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.debug(
            "%s %s %s -> %d (%.1f ms)",
            request.remote,
            request.method,
            request.path,
            response.status,
            time * 1000,
        )


async def start_server(manager: ServedBy, config: ServerConfig) -> web.AppRunner:
    """Build the application for ``config`` and start listening. Raises WebServerError."""
    proactor = manager.gateway
    log = manager.log
    app = web.Application(middlewares=[_errors_middleware(manager)], **config.app_kwargs)
    token = proactor.settings.web.token
    for route in manager.routes:
        if route.server == config.name:
            handler = guarded(route.handler, token) if route.mutating else route.handler
            app.router.add_route(route.method, route.path, handler, **route.kwargs)
    runner = web.AppRunner(
        app,
        handle_signals=False,  # the proactor owns SIGTERM/SIGINT
        access_log_class=AccessLogger,
        access_log=proactor.logger.child("web.access"),
        shutdown_timeout=proactor.settings.stop_timeout_seconds,
    )
    await runner.setup()
    manager.track_runner(config.name, runner)  # base_url works, and stop cleans up
    site = web.TCPSite(runner, config.host, config.port, **config.site_kwargs)
    try:
        await site.start()
    except OSError as e:
        raise WebServerError(
            f"web server {config.name!r} cannot listen on {config.host}:{config.port}: {e}"
        ) from e
    log.info("web server %s listening on %s", config.name, manager.base_url(config.name))
    if not is_loopback(config.host):
        # Read-only routes are open by design; the operator should know they are exposed.
        log.warning(
            "web server %s listens on %s, beyond loopback: status, metrics and events "
            "are readable by anyone who can reach it",
            config.name,
            config.host,
        )
    return runner


def _errors_middleware(manager: ServedBy) -> Middleware:
    """A handler's bug becomes a 500 with a one-line error log and a (rate-limited)
    problem report, instead of aiohttp's traceback at ERROR."""
    log = manager.log
    proactor = manager.gateway

    @web.middleware
    async def middleware(request: web.Request, handler: HTTPHandler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as e:
            route = request.match_info.route.resource
            where = route.canonical if route is not None else "(unmatched)"  # bounded key
            log.error(  # noqa: TRY400  (one line at ERROR, the traceback at DEBUG: STYLE 14)
                "web: %s %s failed: %s: %s", request.method, where, type(e).__name__, e
            )
            log.debug("traceback", exc_info=e)
            proactor.report_problem(
                f"web: {request.method} {where} failed",
                f"{type(e).__name__}: {e}",
                key=f"web:{request.method}:{where}",
            )
            return web.json_response(
                {"error": "internal", "message": f"{type(e).__name__} in {where}"}, status=500
            )

    return middleware
