"""Web configuration records: named servers and routes, and the rules for the token."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from gwproactor.actor.communicator import HTTPHandler

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


@dataclass(slots=True)
class ServerConfig:
    """One named server. ``port`` 0 picks a free port (see :meth:`WebManager.bound_port`)."""

    name: str
    host: str
    port: int
    enabled: bool = True
    site_kwargs: dict[str, Any] = field(default_factory=dict)
    app_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RouteConfig:
    """One route; ``kwargs`` go to aiohttp's ``router.add_route``."""

    server: str
    method: str
    path: str
    handler: HTTPHandler
    mutating: bool
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path}" + (" (token)" if self.mutating else "")
