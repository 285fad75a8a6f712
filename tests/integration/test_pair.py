"""Two gateways through a real mosquitto: messages both ways, broker restart, bad input."""

from __future__ import annotations

import asyncio

import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion

from gwproactor import BrokerSettings, Proactor
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Hello,
    Raiser,
    Recorder,
    is_state,
    pair_settings,
    running,
    wait_active,
    wait_until,
)
from tests.support.paho import close_client

pytestmark = pytest.mark.broker


def _gateways(broker: Mosquitto) -> tuple[Proactor, Proactor]:
    parent_settings, child_settings = pair_settings(
        BrokerSettings(port=broker.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5)
    )
    return Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)


async def test_typed_messages_both_ways_routed_to_named_actors(mosquitto: Mosquitto) -> None:
    parent, child = _gateways(mosquitto)
    parent_rx = Recorder("collector", parent)
    child_rx = Recorder("responder", child, reply_link="parent", reply_actor="collector")
    other = Recorder("bystander", child)
    parent.add_communicator(parent_rx)
    child.add_communicator(child_rx)
    child.add_communicator(other)
    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        with parent.listener("message.dispatched") as heard:
            for n in range(50):
                assert parent.send_to_peer("child", Hello(n=n), actor="responder").is_ok()
            await wait_until(lambda: len(parent_rx.received) == 50, heard, TIMEOUT)
    assert [m.payload.n for m in child_rx.received] == list(range(50))
    assert [m.payload.n for m in parent_rx.received] == list(range(50))
    assert {m.header.src for m in parent_rx.received} == {"child"}
    assert other.received == []
    assert parent.stats.link("child").messages_out["test.hello"] == 50
    assert child.stats.link("parent").messages_in["test.hello"] == 50


async def test_broker_restart_both_reconnect_and_traffic_resumes(mosquitto: Mosquitto) -> None:
    parent, child = _gateways(mosquitto)
    child_rx = Recorder("responder", child, reply_link="parent", reply_actor="collector")
    parent_rx = Recorder("collector", parent)
    child.add_communicator(child_rx)
    parent.add_communicator(parent_rx)
    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        with parent.listener("link.state") as p_states, child.listener("link.state") as c_states:
            await mosquitto.akill()
            await p_states.wait_for(is_state("connecting"), TIMEOUT)
            await c_states.wait_for(is_state("connecting"), TIMEOUT)
            await mosquitto.arestart()
            await p_states.wait_for(is_state("active"), TIMEOUT)
            await c_states.wait_for(is_state("active"), TIMEOUT)
        with parent.listener("message.dispatched") as heard:
            parent.send_to_peer("child", Hello(n=7), actor="responder")
            await wait_until(lambda: len(parent_rx.received) == 1, heard, TIMEOUT)
        for proactor in (parent, child):
            stats = next(iter(proactor.stats.links.values()))
            assert stats.reconnects >= 1
            assert stats.disconnects >= 1
            assert next(iter(proactor.links.values())).transport.all_subscribed
    assert [m.payload.n for m in parent_rx.received] == [7]


def _publish_raw(port: int, items: list[tuple[str, bytes]]) -> None:
    """Publish with a plain paho client (a misbehaving device), waiting for each PUBACK."""
    client = Client(CallbackAPIVersion.VERSION2, client_id="vandal")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in items:
            client.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)
    finally:
        close_client(client)


async def test_a_thousand_bad_payloads_are_counted_and_valid_traffic_flows(
    mosquitto: Mosquitto,
) -> None:
    parent, child = _gateways(mosquitto)
    rx = Recorder("rx", child)
    child.add_communicator(rx)
    garbage: list[tuple[str, bytes]] = []
    for i in range(1000):
        kind = i % 4
        if kind == 0:
            garbage.append(("gw/parent/to/child/test.hello", b"\x00\xffnot json"))
        elif kind == 1:
            garbage.append(("gw/parent/to/child/test.hello", b'{"header":{},"payload":{}}'))
        elif kind == 2:
            garbage.append(("gw/parent/to/child/no.such.type", b'{"a":1}'))
        else:
            garbage.append(("gw/parent/to/child/test.hello", b"[" * 10_000))
    async with running(parent, child):
        await wait_active(child, "parent")
        await asyncio.to_thread(_publish_raw, mosquitto.port, garbage)
        with child.listener("message.dispatched") as heard:
            parent.send_to_peer("child", Hello(n=1), actor="rx")
            await wait_until(lambda: len(rx.received) == 1, heard, TIMEOUT)
        stats = child.stats.link("parent")
        # Everything published before the valid message was read before it (one TCP stream).
        assert stats.decode_errors_total == 1000
        assert stats.decode_errors["unknown_type"] == 250
        assert child.state == "running"
        assert child.link("parent").active


async def test_raising_actor_does_not_disturb_others_over_mqtt(mosquitto: Mosquitto) -> None:
    parent, child = _gateways(mosquitto)
    good = Recorder("good", child)
    bad = Raiser("bad", child)
    child.add_communicator(good)
    child.add_communicator(bad)
    async with running(parent, child):
        await wait_active(parent, "child")
        with child.listener("message.dispatched") as heard:
            for n in range(100):
                parent.send_to_peer("child", Hello(n=n), actor="bad" if n % 2 else "good")
            await wait_until(lambda: bad.calls == 50 and len(good.received) == 50, heard, TIMEOUT)
    assert child.stats.handler_errors["bad"] == 50
    assert [m.payload.n for m in good.received] == list(range(0, 100, 2))
