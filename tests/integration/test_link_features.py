"""Fleet link features against real mosquitto: failover, persistent sessions, presence,
raw topics, remote admin commands."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion

from gwproactor import (
    ActorSettings,
    BrokerSettings,
    LinkSettings,
    Message,
    Payload,
    Proactor,
    ProactorSettings,
)
from gwproactor.actor.admin import (
    AdminRestartActor,
    AdminResult,
    AdminSetLogLevel,
    AdminStatusReply,
    AdminStatusRequest,
)
from gwproactor.mqtt import MQTTClientWrapper
from gwproactor.mqtt import _client as mqtt_client
from gwproactor.mqtt._failover import probe_broker
from gwproactor.testing.mosquitto import Mosquitto
from gwproactor.wire.message import RawMessage
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Hello,
    Recorder,
    is_state,
    pair_settings,
    running,
    wait_active,
    wait_until,
)
from tests.support.paho import close_client

pytestmark = pytest.mark.broker

FAST = {"reconnect_min_seconds": 0.05, "reconnect_max_seconds": 0.3}


def _broker(broker: Mosquitto, **extra: Any) -> BrokerSettings:
    return BrokerSettings(port=broker.port, **FAST, **extra)


# -- failover -------------------------------------------------------------------------------


async def test_failover_to_the_second_broker_and_back(mosquitto_factory: Any) -> None:
    first: Mosquitto = mosquitto_factory(name="first")
    second: Mosquitto = mosquitto_factory(name="second")
    link: dict[str, Any] = {
        "fallback_brokers": [_broker(second)],
        "failover_after_seconds": 0.3,
        "failback_check_seconds": 0.3,
        "ack_timeout_seconds": 0.5,
    }
    parent_settings, child_settings = pair_settings(_broker(first), **link)
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    rx = Recorder("rx", child)
    child.add_communicator(rx)
    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        assert child.link("parent").transport.broker_label.endswith(f":{first.port}")
        with parent.listener("link.broker") as p_moves, child.listener("link.broker") as c_moves:
            await first.akill()
            for moves in (p_moves, c_moves):
                event = await moves.get(TIMEOUT)
                assert event.data["broker"].endswith(f":{second.port}")
            await wait_active(parent, "child")
            await wait_active(child, "parent")
            with child.listener("message.dispatched") as heard:
                parent.send_to_peer("child", Hello(n=1), actor="rx")
                await wait_until(lambda: len(rx.received) == 1, heard, TIMEOUT)
            # The preferred broker comes back: both links probe it and return.
            await first.arestart()
            for moves in (p_moves, c_moves):
                event = await moves.get(TIMEOUT)
                assert event.data["broker"].endswith(f":{first.port}")
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        with child.listener("message.dispatched") as heard:
            parent.send_to_peer("child", Hello(n=2), actor="rx")
            await wait_until(lambda: len(rx.received) == 2, heard, TIMEOUT)
        # Losing the unused fallback changes nothing.
        await second.akill()
        assert child.link("parent").active
    assert child.stats.link("parent").broker_switches == 2
    status_links = child.status()["links"]
    assert status_links["parent"]["broker"].endswith(f":{first.port}")


# -- persistent sessions ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_persistent_session_delivers_what_was_sent_during_a_restart(
    mosquitto: Mosquitto, protocol: str
) -> None:
    broker = _broker(mosquitto, protocol=protocol, clean_session=False)
    parent_settings, child_settings = pair_settings(broker)
    parent = Proactor(parent_settings, REGISTRY)
    first = Proactor(child_settings, REGISTRY)
    first.add_communicator(Recorder("rx", first))
    async with running(parent):
        async with running(first):
            await wait_active(first, "parent")
            await wait_active(parent, "child")
        # The child is down; its session (and QoS 1 subscription) lives on in the broker.
        for n in range(20):
            assert parent.send_to_peer("child", Hello(n=n), actor="rx").is_ok()
        again = Proactor(child_settings, REGISTRY)
        rx = Recorder("rx", again)
        again.add_communicator(rx)
        with again.listener("message.dispatched") as heard:
            async with running(again):
                await wait_until(lambda: len(rx.received) == 20, heard, TIMEOUT)
    assert [m.payload.n for m in rx.received] == list(range(20))


async def test_clean_session_loses_what_was_sent_while_away(mosquitto: Mosquitto) -> None:
    parent_settings, child_settings = pair_settings(_broker(mosquitto))
    parent = Proactor(parent_settings, REGISTRY)
    first = Proactor(child_settings, REGISTRY)
    async with running(parent):
        async with running(first):
            await wait_active(first, "parent")
        for n in range(5):
            parent.send_to_peer("child", Hello(n=n), actor="rx")
        again = Proactor(child_settings, REGISTRY)
        rx = Recorder("rx", again)
        again.add_communicator(rx)
        async with running(again):
            await wait_active(again, "parent")
            with again.listener("message.dispatched") as heard:
                parent.send_to_peer("child", Hello(n=99), actor="rx")
                await wait_until(lambda: len(rx.received) >= 1, heard, TIMEOUT)
    assert [m.payload.n for m in rx.received] == [99]


# -- birth and will ---------------------------------------------------------------------------


async def test_presence_online_will_on_abrupt_loss_offline_on_clean_stop(
    mosquitto: Mosquitto, fault_proxy_factory: Any
) -> None:
    proxy = await fault_proxy_factory(("127.0.0.1", mosquitto.port))
    parent_settings, _ = pair_settings(_broker(mosquitto))
    _, child_settings = pair_settings(BrokerSettings(port=proxy.port, keepalive_seconds=5, **FAST))
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    with parent.listener("link.presence") as presence:
        async with running(parent):
            async with running(child):
                assert (await presence.get(TIMEOUT)).data["presence"] == "online"
                proxy.cut()  # the broker sees the connection die: it publishes the will
                assert (await presence.get(TIMEOUT)).data["presence"] == "offline"
                assert (await presence.get(TIMEOUT)).data["presence"] == "online"
                assert parent.status()["links"]["child"]["peer_presence"] == "online"
            # A clean stop publishes "offline" itself.
            assert (await presence.get(TIMEOUT)).data["presence"] == "offline"
    retained = await asyncio.to_thread(_read_retained, mosquitto.port, "gw/child/status")
    assert b'"offline"' in retained


def _read_retained(port: int, topic: str) -> bytes:
    """The retained message on ``topic``, read by a fresh client (blocking; run in a thread)."""
    got: list[bytes] = []
    client = Client(CallbackAPIVersion.VERSION2, client_id="reader")

    def on_message(_c: Client, _u: Any, msg: MQTTMessage) -> None:
        got.append(bytes(msg.payload))

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(topic, 1)
    deadline = time.monotonic() + TIMEOUT
    try:
        while not got and time.monotonic() < deadline:
            client.loop(timeout=0.05)  # paho's own network loop, driven until the message
    finally:
        close_client(client)
    return got[0] if got else b""


# -- raw topics -------------------------------------------------------------------------------


class SiteReading(Payload):
    type_name: ClassVar[str] = "site.reading"
    value: float


async def test_raw_topics_in_and_out(mosquitto: Mosquitto) -> None:
    settings = ProactorSettings(
        name="edge", links={"local": LinkSettings(peer="devices", broker=_broker(mosquitto))}
    )
    gateway = Proactor(settings, REGISTRY)
    typed = Recorder("typed", gateway)
    raw = Recorder("raw", gateway)
    gateway.add_communicator(typed)
    gateway.add_communicator(raw)
    gateway.subscribe_raw("local", "site/+/reading", "typed", payload_type=SiteReading)
    gateway.subscribe_raw("local", "site/#", "raw")
    device = Client(CallbackAPIVersion.VERSION2, client_id="device")
    outbox: asyncio.Queue[bytes] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def on_message(_c: Client, _u: Any, msg: MQTTMessage) -> None:
        loop.call_soon_threadsafe(outbox.put_nowait, bytes(msg.payload))

    device.on_message = on_message
    async with running(gateway):
        with gateway.listener("link.state") as states:
            if not gateway.link("local").transport.all_subscribed:
                await states.wait_for(is_state("awaiting_peer"), TIMEOUT)
        await asyncio.to_thread(device.connect, "127.0.0.1", mosquitto.port)
        device.subscribe("cmd/#", 1)
        device.loop_start()
        try:
            with gateway.listener("message.dispatched") as heard:
                for payload in (b'{"value": 1.5}', b"not json", b'{"value": 2.5}'):
                    device.publish("site/a/reading", payload, qos=1)
                await wait_until(lambda: len(raw.received) == 3, heard, TIMEOUT)
                await wait_until(lambda: len(typed.received) == 2, heard, TIMEOUT)
            assert [m.payload.parsed.value for m in typed.received] == [1.5, 2.5]
            assert {m.payload.topic for m in typed.received} == {"site/a/reading"}
            assert all(isinstance(m.payload, RawMessage) for m in raw.received)
            assert raw.received[1].payload.payload == b"not json"
            assert gateway.stats.link("local").raw_decode_errors == 1
            assert gateway.stats.link("local").raw_in == 3
            # Out: typed JSON and bytes on any topic (the device subscribed on its thread;
            # publishing until it hears one makes the test independent of that timing).
            while outbox.empty():
                assert gateway.publish_raw("local", "cmd/a", SiteReading(value=9.0)).is_ok()
                try:
                    await asyncio.wait_for(outbox.get(), 0.5)
                    break
                except TimeoutError:
                    continue
            assert gateway.publish_raw("local", "cmd/b", b"\x00\x01").is_ok()
            assert await asyncio.wait_for(_next_not(outbox, b'{"value":9.0}'), TIMEOUT) == (
                b"\x00\x01"
            )
        finally:
            await asyncio.to_thread(close_client, device)


async def _next_not(queue: asyncio.Queue[bytes], skip: bytes) -> bytes:
    while True:
        item = await queue.get()
        if item != skip:
            return item


# -- admin commands ---------------------------------------------------------------------------


async def test_admin_commands_only_from_the_admin_peer(mosquitto: Mosquitto) -> None:
    broker = _broker(mosquitto)
    gateway = Proactor(
        ProactorSettings(
            name="site",
            links={
                "ops": LinkSettings(peer="ops", role="admin", broker=broker),
                "cloud": LinkSettings(peer="cloud", role="upstream", broker=broker),
            },
            actors={"relay1": ActorSettings(cls="gwproactor_actors.relay:RelayActor")},
        ),
        REGISTRY,
    )
    ops = Proactor(
        ProactorSettings(name="ops", links={"site": LinkSettings(peer="site", broker=broker)}),
        REGISTRY,
    )
    cloud = Proactor(
        ProactorSettings(
            name="cloud",
            links={"site": LinkSettings(peer="site", role="downstream", broker=broker)},
        ),
        REGISTRY,
    )
    answers = Recorder("answers", ops)
    ops.add_communicator(answers)
    for kind in (AdminResult, AdminStatusReply):
        ops.registry.register(kind)
        ops.route(kind.type_name, "answers")
    ops.link("site").codec.refresh()

    async def command(payload: Payload) -> Message[Any]:
        with ops.listener("message.dispatched") as heard:
            count = len(answers.received)
            assert ops.send_to_peer("site", payload, ack_required=True).is_ok()
            await wait_until(lambda: len(answers.received) > count, heard, TIMEOUT)
        return answers.received[-1]

    async with running(gateway, ops, cloud):
        await wait_active(ops, "site")
        await wait_active(gateway, "ops")
        await wait_active(cloud, "site")
        ops.registry.register(AdminStatusRequest, AdminSetLogLevel, AdminRestartActor)
        ops.link("site").codec.refresh()

        reply = await command(AdminStatusRequest())
        assert isinstance(reply.payload, AdminStatusReply)
        assert reply.payload.status["links"]["ops"]["state"] == "active"

        reply = await command(AdminSetLogLevel(category="message_summary", level="DEBUG"))
        assert reply.payload.ok
        assert reply.payload.levels["message_summary"] == "DEBUG"
        assert gateway.logger.message_summary_logger.level == 10

        old_relay = gateway.get_communicator("relay1")
        reply = await command(AdminRestartActor(actor="relay1"))
        assert reply.payload.ok, reply.payload.detail
        assert gateway.get_communicator("relay1") is not old_relay
        reply = await command(AdminRestartActor(actor="nope"))
        assert not reply.payload.ok

        # The same command from the upstream peer is refused and counted.
        cloud.registry.register(AdminStatusRequest)
        cloud.link("site").codec.refresh()
        with gateway.listener("problem") as problems:
            cloud.send_to_peer("site", AdminSetLogLevel(category="general", level="DEBUG"))
            event = await problems.wait_for(lambda e: "admin" in e.source, TIMEOUT)
        assert "only 'ops'" in event.data["details"]
        assert gateway.logger.general.level != 10


# -- what the log says -----------------------------------------------------------------------


async def test_a_lost_connection_says_how_it_was_lost(mosquitto: Mosquitto) -> None:
    """paho names every lost connection 'Unspecified error'; the log line and the
    transport's last error say what the socket saw instead."""
    parent_settings, _ = pair_settings(_broker(mosquitto))
    parent = Proactor(parent_settings, REGISTRY)
    async with running(parent):
        transport = parent.link("child").transport
        assert isinstance(transport, MQTTClientWrapper)
        with parent.listener("link.state") as states:
            await states.wait_for(is_state("awaiting_peer", "child"), TIMEOUT)
            await mosquitto.akill()
            await states.wait_for(is_state("connecting", "child"), TIMEOUT)
        assert transport.last_error.startswith("connection lost: "), transport.last_error
        assert "Unspecified" not in transport.last_error


async def test_failback_probe_that_raises_is_reported_and_retried(
    mosquitto_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Building the probe client can raise (TLS files removed while running): the failback
    # task reports it and probes again at the next interval, instead of dying silently.
    first: Mosquitto = mosquitto_factory(name="first")
    second: Mosquitto = mosquitto_factory(name="second")
    link: dict[str, Any] = {
        "fallback_brokers": [_broker(second)],
        "failover_after_seconds": 0.3,
        "failback_check_seconds": 0.2,
    }
    _, child_settings = pair_settings(_broker(first), **link)
    child = Proactor(child_settings, REGISTRY)
    raised = 0

    def probe(broker: BrokerSettings, client_id: str) -> bool:
        nonlocal raised
        if raised < 3:
            raised += 1
            raise FileNotFoundError(2, "No such file or directory", "/etc/gw/ca.pem")
        return probe_broker(broker, client_id)

    monkeypatch.setattr(mqtt_client, "probe_broker", probe)
    async with running(child):
        with child.listener("link.broker") as moves, child.listener("problem") as problems:
            await first.akill()
            event = await moves.get(TIMEOUT)
            assert event.data["broker"].endswith(f":{second.port}")
            await first.arestart()
            event = await moves.get(TIMEOUT)
            assert event.data["broker"].endswith(f":{first.port}")
    assert raised == 3
    failback = [e for e in problems.history if "failback" in e.source]
    assert len(failback) == 1, [e.source for e in problems.history]
    assert "/etc/gw/ca.pem" in failback[0].data["details"]
