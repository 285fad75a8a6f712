"""Gateways with the web server on 127.0.0.1 port 0, and small HTTP helpers for tests/web."""

from __future__ import annotations

from typing import Any

import aiohttp

from gwproactor import (
    BrokerSettings,
    LinkSettings,
    MessageRegistry,
    Proactor,
    ProactorSettings,
)
from gwproactor.mqtt import MemoryBroker
from tests.helpers import REGISTRY, memory_factory

TOKEN = "test-token-3f9a"
"""A token for gateways whose mutating routes are open to tests."""


def web_settings(
    name: str = "child",
    *,
    upstream: str | None = "parent",
    downstream: str | None = None,
    token: str | None = None,
    broker: BrokerSettings | None = None,
    **overrides: Any,
) -> ProactorSettings:
    """A gateway with the built-in web server enabled on port 0 and the given links."""
    broker = broker or BrokerSettings()
    links: dict[str, LinkSettings] = {}
    if upstream is not None:
        links[upstream] = LinkSettings(peer=upstream, role="upstream", broker=broker)
    if downstream is not None:
        links[downstream] = LinkSettings(peer=downstream, role="downstream", broker=broker)
    web: dict[str, Any] = {"enabled": True, "port": 0}
    if token is not None:
        web["token"] = token
    web |= overrides.pop("web", {})
    return ProactorSettings.model_validate({"name": name, "links": links, "web": web, **overrides})


def memory_gateway(
    settings: ProactorSettings, broker: MemoryBroker, registry: MessageRegistry = REGISTRY
) -> Proactor:
    return Proactor(settings, registry, transport_factory=memory_factory(broker))


def memory_pair(broker: MemoryBroker, **child_overrides: Any) -> tuple[Proactor, Proactor]:
    """(parent, child): the child has the web server and an upstream link to the parent."""
    parent = memory_gateway(
        web_settings("parent", upstream=None, downstream="child", web={"enabled": False}),
        broker,
    )
    child = memory_gateway(web_settings("child", **child_overrides), broker)
    return parent, child


async def get_json(
    http: aiohttp.ClientSession, proactor: Proactor, path: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.get(proactor.web.base_url() + path, **kwargs) as response:
        return response.status, await response.json()


async def get_text(
    http: aiohttp.ClientSession, proactor: Proactor, path: str, **kwargs: Any
) -> tuple[int, str, str]:
    """(status, content type header, body)."""
    async with http.get(proactor.web.base_url() + path, **kwargs) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()
