"""Routes that change state need the bearer token: refused without one, accepted with it."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from gwproactor.mqtt import MemoryBroker
from tests.helpers import TIMEOUT, is_state, running, wait_active
from tests.web._support import TOKEN, memory_pair

RECONNECT = "/actions/reconnect/parent"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_without_a_configured_token_mutating_routes_are_closed(
    http: aiohttp.ClientSession,
) -> None:
    broker = MemoryBroker()
    parent, child = memory_pair(broker)  # no web.token
    async with running(parent, child):
        await wait_active(child, "parent")
        for headers in ({}, _bearer(""), _bearer("anything")):
            async with http.post(child.web.base_url() + RECONNECT, headers=headers) as response:
                assert response.status == 403
                body = await response.json()
                assert "no web.token is configured" in body["message"]
        assert child.stats.link("parent").reconnects == 0
        assert child.link("parent").active


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
    ],
)
async def test_missing_or_wrong_token_is_401(
    http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    broker = MemoryBroker()
    parent, child = memory_pair(broker, token=TOKEN)
    async with running(parent, child):
        await wait_active(child, "parent")
        async with http.post(child.web.base_url() + RECONNECT, headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            body = await response.json()
        assert TOKEN not in str(body)
        assert child.stats.link("parent").reconnects == 0


async def test_right_token_reconnects_the_link(http: aiohttp.ClientSession) -> None:
    broker = MemoryBroker()
    parent, child = memory_pair(broker, token=TOKEN)
    async with running(parent, child):
        await wait_active(child, "parent")
        with child.listener("link.state") as states:
            async with http.post(
                child.web.base_url() + RECONNECT, headers=_bearer(TOKEN)
            ) as response:
                assert response.status == 202
                assert await response.json() == {
                    "link": "parent",
                    "reconnect": "requested",
                    "state": "connecting",
                }
            await states.wait_for(is_state("active", "parent"), TIMEOUT)
            assert [e.data["new"] for e in states.history if e.source == "parent"][:1] == [
                "connecting"
            ]
        assert child.stats.link("parent").reconnects == 1
        async with http.post(
            child.web.base_url() + "/actions/reconnect/nowhere", headers=_bearer(TOKEN)
        ) as response:
            assert response.status == 404


async def test_user_routes_are_guarded_by_method_or_flag(http: aiohttp.ClientSession) -> None:
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(f"{request.method} {request.path}")
        return web.json_response({"ok": True})

    _, child = memory_pair(MemoryBroker(), token=TOKEN)
    child.add_web_route("gateway", "POST", "/relay/on", handler)  # not GET: mutating
    child.add_web_route("gateway", "GET", "/relay/toggle", handler, mutating=True)
    child.add_web_route("gateway", "GET", "/relay", handler)  # read-only
    child.add_web_route("gateway", "PUT", "/relay/label", handler, mutating=False)
    base_url = ""
    async with running(child):
        base_url = child.web.base_url()
        for method, path in (("POST", "/relay/on"), ("GET", "/relay/toggle")):
            async with http.request(method, base_url + path) as response:
                assert response.status == 401
            async with http.request(method, base_url + path, headers=_bearer(TOKEN)) as response:
                assert response.status == 200
        for method, path in (("GET", "/relay"), ("PUT", "/relay/label")):
            async with http.request(method, base_url + path) as response:
                assert response.status == 200
    assert calls == ["POST /relay/on", "GET /relay/toggle", "GET /relay", "PUT /relay/label"]
    assert child.web.route_strings()["gateway"][-4:] == [
        "POST /relay/on (token)",
        "GET /relay/toggle (token)",
        "GET /relay",
        "PUT /relay/label",
    ]
