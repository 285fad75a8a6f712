"""The built-in routes of the ``gateway`` web server.

Every handler runs on the proactor's loop (aiohttp is served there), so each reads the
gateway's loop-owned state directly, in one go, without locks. None of them puts a secret
in its answer: they render :meth:`Proactor.status`, which holds no settings values.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from result import Err

from gwproactor.actor.communicator import HTTPHandler
from gwproactor.errors import ConfigError, StateError, StoreError
from gwproactor.web._events_query import event_json, parse_event_query
from gwproactor.web._metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gwproactor.web._metrics import render_metrics
from gwproactor.web._page import CSP, FRAGMENT_PARAM, render_fragment, render_page

if TYPE_CHECKING:
    from gwproactor.web._view import GatewayView

__all__ = ("BuiltinRoute", "GatewayRoutes")

logger = logging.getLogger("gwproactor.web")  # public name: the module is private

_NO_STORE = {"Cache-Control": "no-store"}
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class BuiltinRoute:
    method: str
    path: str
    handler: HTTPHandler
    mutating: bool
    summary: str


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers=_NO_STORE, dumps=_dumps)


def _dumps(data: Any) -> str:
    # allow_nan=False: a NaN would make the body invalid JSON for strict clients.
    return json.dumps(data, allow_nan=False, separators=(",", ":"))


def _error(status: int, error: str, message: str) -> web.Response:
    return _json({"error": error, "message": message}, status)


class GatewayRoutes:
    """The handlers, bound to one gateway. Cheap to construct; loop-only like aiohttp."""

    def __init__(self, gateway: GatewayView) -> None:
        self._gateway = gateway

    def routes(self) -> list[BuiltinRoute]:
        """Every built-in route, in the order they are documented and registered."""
        return [
            BuiltinRoute("GET", "/", self.page, False, "HTML status page (self-refreshing)"),
            BuiltinRoute("GET", "/livez", self.livez, False, "200 unless a part is stalled"),
            BuiltinRoute("GET", "/readyz", self.readyz, False, "200 when every link is active"),
            BuiltinRoute("GET", "/status", self.status, False, "JSON status snapshot"),
            BuiltinRoute("GET", "/metrics", self.metrics, False, "Prometheus text format"),
            BuiltinRoute("GET", "/events", self.events, False, "query the event store"),
            BuiltinRoute(
                "POST",
                "/actions/reconnect/{link}",
                self.reconnect,
                True,
                "drop and re-open one link's broker connection",
            ),
            BuiltinRoute(
                "POST",
                "/actions/log-level/{category}/{level}",
                self.log_level,
                True,
                "set one log category's level (general, message_summary, lifecycle, comm_event)",
            ),
            BuiltinRoute(
                "POST",
                "/actions/restart-actor/{actor}",
                self.restart_actor,
                True,
                "stop, reload and start an actor from the configuration",
            ),
        ]

    async def livez(self, request: web.Request) -> web.Response:
        """200 while the loop answers and the internal watchdog is satisfied; else 503
        naming the stalled parts (systemd or a supervisor should restart the gateway)."""
        stalled = list(self._gateway.watchdog.stalled_names)
        if stalled:
            return _json({"alive": False, "stalled": stalled}, 503)
        return _json({"alive": True})

    async def readyz(self, request: web.Request) -> web.Response:
        """200 when the gateway is running and every link is active; else 503 listing the
        links that are not active, with their states."""
        gateway = self._gateway
        if gateway.ready:
            return _json({"ready": True})
        not_active = {n: link.state.value for n, link in gateway.links.items() if not link.active}
        return _json({"ready": False, "state": gateway.state, "links_not_active": not_active}, 503)

    async def status(self, request: web.Request) -> web.Response:
        """The JSON snapshot of :meth:`Proactor.status`."""
        return _json(self._gateway.status())

    async def metrics(self, request: web.Request) -> web.Response:
        """The snapshot in Prometheus text exposition format 0.0.4."""
        body = render_metrics(self._gateway.status()).encode()
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE, **_NO_STORE})

    async def page(self, request: web.Request) -> web.Response:
        """The status page, or (``?part=main``) the fragment its script swaps in."""
        refresh = self._gateway.settings.web.status_refresh_seconds
        status = self._gateway.status()
        if request.query.get(FRAGMENT_PARAM) == "main":
            text = render_fragment(status, refresh)
        else:
            text = render_page(status, refresh)
        return web.Response(
            text=text,
            content_type="text/html",
            headers={
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
                **_NO_STORE,
            },
        )

    async def events(self, request: web.Request) -> web.Response:
        """Stored events as a JSON list, oldest first. Query parameters: ``pattern``
        (``gw.?.state``, ``gw.*``), ``start_ns``/``end_ns`` (wall clock, ns, end
        exclusive), ``limit`` (1..store.max_query_limit, default 100), ``pending``
        (true/false), ``newest`` (true: the last ``limit`` matches, still oldest
        first). 400 with a message for bad parameters, 503 if the store cannot answer."""
        max_limit = self._gateway.settings.store.max_query_limit
        keys = [key for key, _ in request.query.items()]  # keys() folds repeats
        parsed = parse_event_query(request.query, keys, max_limit)
        if isinstance(parsed, Err):
            return _error(400, "bad_request", parsed.err_value)
        query = parsed.ok_value
        try:
            events = await self._gateway.query_events(
                query.pattern,
                query.start_ns,
                query.end_ns,
                query.limit,
                query.pending,
                latest=query.newest,
            )
        except ValueError as e:  # a bound the parser does not know about
            return _error(400, "bad_request", str(e))
        except (StateError, StoreError) as e:
            return _error(503, "store_unavailable", str(e))
        return _json([event_json(event) for event in events])

    async def reconnect(self, request: web.Request) -> web.Response:
        """Ask one link's transport to drop its broker connection and connect again (it
        reconnects by itself; the answer does not wait for that). 202 when asked, 404 for
        an unknown link. Token required."""
        name = request.match_info["link"]
        link = self._gateway.links.get(name)
        if link is None:
            return _error(404, "not_found", f"no link named {name!r}")
        logger.info("web: reconnect of link %s requested from %s", name, request.remote)
        link.transport.request_reconnect()
        return _json({"link": name, "reconnect": "requested", "state": link.state.value}, 202)

    async def log_level(self, request: web.Request) -> web.Response:
        """Set one log category's level at run time (not saved). 200 with every
        category's level, 400 for an unknown category or level. Token required."""
        category = request.match_info["category"]
        level = request.match_info["level"].upper()
        if level not in _LEVELS:
            return _error(400, "bad_request", f"level must be one of {', '.join(_LEVELS)}")
        logger_ = self._gateway.logger
        try:
            logger_.set_category_level(category, level)
        except ConfigError as e:
            return _error(400, "bad_request", f"{e}; categories: {', '.join(logger_.levels())}")
        logger.info("web: log level of %s set to %s from %s", category, level, request.remote)
        return _json({"category": category, "level": level, "levels": logger_.levels()})

    async def restart_actor(self, request: web.Request) -> web.Response:
        """Restart an actor loaded from the configuration; answers when it is running
        again (200), 404 for no such configured actor, 409 if it did not come back (its
        error in the message). Token required."""
        name = request.match_info["actor"]
        if name not in self._gateway.settings.actors:
            return _error(404, "not_found", f"no configured actor named {name[:64]!r}")
        logger.info("web: restart of actor %s requested from %s", name, request.remote)
        result = await self._gateway.restart_actor(name)
        if isinstance(result, Err):
            error = result.err_value
            return _error(409, "restart_failed", f"{type(error).__name__}: {error}")
        return _json({"actor": name, "restarted": True})
