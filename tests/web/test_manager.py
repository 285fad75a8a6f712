"""WebManager: named servers and user routes, errors, bind failures, bounded stop/start."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import aiohttp
import pytest
from aiohttp import web

from gwproactor import StateError
from gwproactor.mqtt import MemoryBroker
from gwproactor.web import WebServerError
from gwproactor.web._config import is_loopback
from tests.helpers import TIMEOUT, running
from tests.web._support import get_json, memory_gateway, web_settings


async def _hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": request.match_info.get("who", "world")})


async def test_user_server_and_routes(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gwproactor.web")
    child = memory_gateway(web_settings(), MemoryBroker())
    child.add_web_server_config("extra", "127.0.0.1", 0)
    child.add_web_route("extra", "GET", "/hello/{who}", _hello)
    child.add_web_route("gateway", "GET", "/hello", _hello)
    child.add_web_route("not-configured", "GET", "/ignored", _hello)
    async with running(child):
        extra = child.web.base_url("extra")
        assert child.web.bound_port("extra") != child.web.bound_port()
        async with http.get(extra + "/hello/tech") as response:
            assert (response.status, await response.json()) == (200, {"hello": "tech"})
        async with http.get(extra + "/status") as response:
            assert response.status == 404  # built-ins live on the gateway server only
        assert await get_json(http, child, "/hello") == (200, {"hello": "world"})
        with pytest.raises(StateError):
            child.add_web_route("gateway", "GET", "/late", _hello)
    assert "GET /ignored for unconfigured server 'not-configured' ignored" in caplog.text
    assert child.web.route_strings()["extra"] == ["GET /hello/{who}"]
    assert "not-configured" not in child.web.route_strings()


async def test_disabled_server_is_not_started() -> None:
    child = memory_gateway(web_settings(), MemoryBroker())
    child.add_web_server_config("spare", "127.0.0.1", 0, enabled=False)
    async with running(child):
        with pytest.raises(StateError, match="not running"):
            child.web.bound_port("spare")


def test_configuration_errors() -> None:
    child = memory_gateway(web_settings(), MemoryBroker())
    with pytest.raises(ValueError, match="already configured"):
        child.add_web_server_config("gateway", "127.0.0.1", 0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        child.add_web_server_config("other", "127.0.0.1", 0, colour="blue")
    with pytest.raises(ValueError, match="already added"):
        child.add_web_route("gateway", "get", "/status", _hello)
    with pytest.raises(StateError, match="not running"):
        child.web.bound_port()


async def test_handler_error_is_500_and_a_problem(http: aiohttp.ClientSession) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("sensor table missing")

    child = memory_gateway(web_settings(), MemoryBroker())
    child.add_web_route("gateway", "GET", "/broken", broken)
    async with running(child):
        status, body = await get_json(http, child, "/broken")
        assert status == 500
        assert body == {"error": "internal", "message": "RuntimeError in /broken"}
        problems = child.status()["recent_problems"]
    assert [p["summary"] for p in problems] == ["web: GET /broken failed"]
    assert problems[0]["details"] == "RuntimeError: sensor table missing"


async def test_port_in_use_fails_start_cleanly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        child = memory_gateway(web_settings(web={"port": port}), MemoryBroker())
        child.add_web_server_config("first", "127.0.0.1", 0)
        with pytest.raises(WebServerError, match=f"cannot listen on 127.0.0.1:{port}"):
            await child.start()
    assert child.state == "stopped"
    assert not child.web.running


async def test_stop_is_bounded_with_a_hung_request_and_start_works_again(
    http: aiohttp.ClientSession,
) -> None:
    entered = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        entered.set()
        await asyncio.Event().wait()  # a handler that never answers
        raise AssertionError("unreachable")

    stop_timeout = 0.3
    child = memory_gateway(web_settings(stop_timeout_seconds=stop_timeout), MemoryBroker())
    child.add_web_route("gateway", "GET", "/hang", hang)
    async with running(child):
        url = child.web.base_url()
        request = asyncio.ensure_future(http.get(url + "/hang"))
        await asyncio.wait_for(entered.wait(), TIMEOUT)
        began = time.monotonic()
        await child.web.stop()
        elapsed = time.monotonic() - began
        assert elapsed < stop_timeout * 2 + 1
        assert not child.web.running
        await child.web.stop()  # idempotent
        with pytest.raises(aiohttp.ClientError):  # the hung request was cut off
            await request
        await child.web.start()  # fresh applications from the same configuration
        assert await get_json(http, child, "/livez") == (200, {"alive": True})
        with pytest.raises(StateError, match="while servers are running"):
            await child.web.start()
    assert not child.web.running


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("192.168.1.20", False),
        ("gateway.local", False),
    ],
)
def test_which_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    # A server on a host that is not loopback logs a warning at start (status is open).
    assert is_loopback(host) is loopback
