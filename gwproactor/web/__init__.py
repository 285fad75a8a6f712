"""The gateway's HTTP side: aiohttp servers on the proactor's own loop.

Built-in routes of the ``gateway`` server (when ``settings.web.enabled``): ``/``,
``/livez``, ``/readyz``, ``/status``, ``/metrics``, ``/events`` and
``POST /actions/reconnect/{link}`` (bearer token). See :class:`WebManager`.
"""

from gwproactor.web._manager import (
    GATEWAY_SERVER,
    RouteConfig,
    ServerConfig,
    WebManager,
    WebServerError,
)
from gwproactor.web._metrics import METRIC_NAMES, render_metrics

__all__ = (
    "GATEWAY_SERVER",
    "METRIC_NAMES",
    "RouteConfig",
    "ServerConfig",
    "WebManager",
    "WebServerError",
    "render_metrics",
)
