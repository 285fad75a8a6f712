"""/livez and /readyz on real gateways (in-memory broker), and where the server binds."""

from __future__ import annotations

import aiohttp

from gwproactor import MonitoredName
from gwproactor.mqtt import MemoryBroker
from tests.helpers import TIMEOUT, running, wait_active
from tests.web._support import get_json, memory_gateway, memory_pair, web_settings


async def test_readyz_not_ready_until_every_link_is_active(http: aiohttp.ClientSession) -> None:
    broker = MemoryBroker()
    parent, child = memory_pair(broker)
    async with running(child):
        # No parent yet: the upstream link cannot hear its peer, so it is not active.
        status, body = await get_json(http, child, "/readyz")
        assert status == 503
        assert body["ready"] is False
        assert body["state"] == "running"
        assert list(body["links_not_active"]) == ["parent"]
        assert body["links_not_active"]["parent"] == child.link_state("parent") != "active"
        async with running(parent):
            await wait_active(child, "parent")
            assert await get_json(http, child, "/readyz") == (200, {"ready": True})
            with child.listener("link.state") as states:
                broker.stop()
                await states.wait_for(lambda e: e.data["new"] == "connecting", TIMEOUT)
            status, body = await get_json(http, child, "/readyz")
            assert status == 503
            assert body["links_not_active"] == {"parent": "connecting"}


async def test_livez_reports_stalled_parts_and_recovers(http: aiohttp.ClientSession) -> None:
    child = memory_gateway(web_settings(watchdog={"check_interval_seconds": 0.02}), MemoryBroker())
    async with running(child):
        assert await get_json(http, child, "/livez") == (200, {"alive": True})
        with child.listener(("watchdog.stalled", "watchdog.recovered")) as dog:
            # A part that never pats: the checks find it stalled after its timeout.
            child.watchdog.register(MonitoredName("sensor-thread", 0.3))
            await dog.wait_for(lambda e: e.name == "watchdog.stalled", TIMEOUT)
            assert await get_json(http, child, "/livez") == (
                503,
                {"alive": False, "stalled": ["sensor-thread"]},
            )
            child.pat_watchdog("sensor-thread")
            await dog.wait_for(lambda e: e.name == "watchdog.recovered", TIMEOUT)
            # Stop watching it before it can go silent again (no await in between).
            child.watchdog.unregister("sensor-thread")
        assert await get_json(http, child, "/livez") == (200, {"alive": True})


async def test_binds_to_loopback_by_default_and_port_0_picks_a_free_port() -> None:
    child = memory_gateway(web_settings(), MemoryBroker())
    assert child.settings.web.host == "127.0.0.1"
    async with running(child):
        port = child.web.bound_port()
        assert port > 0
        assert child.web.base_url() == f"http://127.0.0.1:{port}"
        runner_addresses = {address[0] for address in child.web._runners["gateway"].addresses}
        assert runner_addresses == {"127.0.0.1"}


async def test_no_server_when_web_is_disabled() -> None:
    child = memory_gateway(web_settings(web={"enabled": False}), MemoryBroker())
    assert child.web.servers == {}
    async with running(child):
        assert not child.web.running
