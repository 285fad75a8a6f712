"""The gateway's HTTP side: aiohttp servers on the proactor's own loop.

Built-in routes of the ``gateway`` server (when ``settings.web.enabled``): ``/``,
``/livez``, ``/readyz``, ``/status``, ``/metrics``, ``/events`` and
``POST /actions/reconnect/{link}`` (bearer token). See :class:`WebManager`.

The metrics renderer loads on first use (a gateway without HTTP does not pay for it).
"""

from typing import TYPE_CHECKING, Any

from gwproactor.web._manager import (
    GATEWAY_SERVER,
    RouteConfig,
    ServerConfig,
    WebManager,
    WebServerError,
)

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name in ("METRIC_NAMES", "render_metrics"):
        from gwproactor.web import _metrics

        return getattr(_metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
