"""Web configuration records: named servers and routes, and the rules for the token."""

from __future__ import annotations

import ipaddress
from typing import Any

from gwproactor.actor.communicator import HTTPHandler
from gwproactor.observe._records import Record

__all__ = ("RouteConfig", "ServerConfig", "is_loopback", "is_mutating")

_SITE_KWARGS = frozenset({"ssl_context", "backlog", "reuse_address", "reuse_port"})
_APP_KWARGS = frozenset({"client_max_size"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost, or "" (every interface)


_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_mutating(method: str, flag: bool | None) -> bool:
    """Whether a route needs the token: ``flag`` when given, else any method that is not
    GET, HEAD or OPTIONS (a safe default for handlers added by actors)."""
    if flag is not None:
        return flag
    return method.upper() not in _READ_ONLY_METHODS


class ServerConfig(Record):
    """One named server. ``port`` 0 picks a free port (see :meth:`WebManager.bound_port`)."""

    __match_args__ = ("name", "host", "port", "enabled", "site_kwargs", "app_kwargs")
    __slots__ = ("app_kwargs", "enabled", "host", "name", "port", "site_kwargs")
    name: str
    host: str
    port: int
    enabled: bool
    site_kwargs: dict[str, Any]
    app_kwargs: dict[str, Any]

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        enabled: bool = True,
        site_kwargs: dict[str, Any] | None = None,
        app_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.enabled = enabled
        self.site_kwargs = {} if site_kwargs is None else site_kwargs
        self.app_kwargs = {} if app_kwargs is None else app_kwargs


class RouteConfig(Record):
    """One route; ``kwargs`` go to aiohttp's ``router.add_route``."""

    __match_args__ = ("server", "method", "path", "handler", "mutating", "kwargs")
    __slots__ = ("handler", "kwargs", "method", "mutating", "path", "server")
    server: str
    method: str
    path: str
    handler: HTTPHandler
    mutating: bool
    kwargs: dict[str, Any]

    def __init__(
        self,
        server: str,
        method: str,
        path: str,
        handler: HTTPHandler,
        mutating: bool,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.server = server
        self.method = method
        self.path = path
        self.handler = handler
        self.mutating = mutating
        self.kwargs = {} if kwargs is None else kwargs

    def __str__(self) -> str:
        return f"{self.method} {self.path}" + (" (token)" if self.mutating else "")
