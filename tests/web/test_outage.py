"""Through a real mosquitto: /status, /readyz and /metrics follow the links in an outage."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gwproactor import BrokerSettings, Proactor
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import REGISTRY, TIMEOUT, is_state, running, wait_active
from tests.web._support import get_json, get_text, web_settings

pytestmark = pytest.mark.broker


def _pair(broker: Mosquitto) -> tuple[Proactor, Proactor]:
    settings = BrokerSettings(
        port=broker.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5
    )
    parent = Proactor(
        web_settings(
            "parent", upstream=None, downstream="child", broker=settings, web={"enabled": False}
        ),
        REGISTRY,
    )
    child = Proactor(web_settings("child", broker=settings), REGISTRY)
    return parent, child


async def _link_state(http: aiohttp.ClientSession, child: Proactor) -> str:
    status, body = await get_json(http, child, "/status")
    assert status == 200
    state: str = body["links"]["parent"]["state"]
    assert state == child.link_state("parent")  # the page and the gateway agree
    return state


async def test_status_follows_the_links_through_an_outage(
    mosquitto: Mosquitto, http: aiohttp.ClientSession
) -> None:
    parent, child = _pair(mosquitto)
    seen: list[str] = []
    async with running(parent, child):
        await wait_active(child, "parent")
        seen.append(await _link_state(http, child))
        assert (await get_json(http, child, "/readyz"))[0] == 200
        with child.listener("link.state") as states:
            await mosquitto.akill()
            await states.wait_for(is_state("connecting", "parent"), TIMEOUT)
            seen.append(await _link_state(http, child))
            status, body = await get_json(http, child, "/readyz")
            assert (status, body["links_not_active"]) == (503, {"parent": "connecting"})
            await mosquitto.arestart()
            await states.wait_for(is_state("active", "parent"), TIMEOUT)
            seen.append(await _link_state(http, child))
            transitions = [e.data["new"] for e in states.history if e.source == "parent"]
        assert (await get_json(http, child, "/readyz"))[0] == 200
        _, _, text = await get_text(http, child, "/metrics")
    assert seen == ["active", "connecting", "active"]
    assert transitions[0] == "connecting"
    assert transitions[-1] == "active"
    assert "awaiting_setup_and_peer" in transitions
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("gwproactor_link_reconnects_total", (("link", "parent"),))] == 1
    assert samples[("gwproactor_link_state", (("link", "parent"), ("state", "active")))] == 1
