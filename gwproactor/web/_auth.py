"""Bearer-token guard for routes that change state.

Read-only routes are open (on loopback by default); any route that changes state requires
``Authorization: Bearer <web.token>``. Refusals say why without echoing what was sent, and
the token itself is never logged, rendered or returned.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from pydantic import SecretStr

from gwproactor.actor.communicator import HTTPHandler

__all__ = ("guarded", "token_refusal")

logger = logging.getLogger("gwproactor.web")  # public name: the module is private

_SCHEME = "bearer"


def token_refusal(request: web.Request, token: SecretStr | None) -> web.Response | None:
    """``None`` when ``request`` carries the configured bearer token; otherwise the response
    to send: 403 when no token is configured (mutating routes are then closed, not open),
    401 when the header is missing, malformed or wrong. Constant-time comparison."""
    if token is None or not token.get_secret_value():
        return _refuse(
            403, "forbidden", "state-changing routes are disabled: no web.token is configured"
        )
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != _SCHEME or not presented.strip():
        return _refuse(401, "unauthorized", "send 'Authorization: Bearer <token>'")
    expected = token.get_secret_value().encode()
    if not hmac.compare_digest(presented.strip().encode(), expected):
        # The peer address helps an operator spot a misconfigured client; never the token.
        logger.warning(
            "web: wrong token for %s %s from %s", request.method, request.path, request.remote
        )
        return _refuse(401, "unauthorized", "wrong token")
    return None


def guarded(handler: HTTPHandler, token: SecretStr | None) -> HTTPHandler:
    """``handler`` behind :func:`token_refusal`. Runs on the loop like any aiohttp handler."""

    async def guard(request: web.Request) -> web.StreamResponse:
        refusal = token_refusal(request, token)
        if refusal is not None:
            return refusal
        return await handler(request)

    guard.__name__ = getattr(handler, "__name__", "handler")
    guard.__doc__ = handler.__doc__
    return guard


def _refuse(status: int, error: str, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="gwproactor"'} if status == 401 else None
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)
