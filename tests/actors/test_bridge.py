"""The telemetry bridge: plain JSON from field devices on a local broker becomes durable
``gw.device.reading`` events at the parent gateway; malformed telemetry is counted per
device and reported, and never stops valid traffic. Against real mosquitto processes."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from gwproactor_actors import DeviceReading, HttpPoller, TelemetryBridge
from gwproactor_actors.bridge import (
    NO_DEVICE,
    OTHER_DEVICES,
    BridgeOptions,
    device_of,
    parse_telemetry,
)
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion
from result import Err, Ok

from gwproactor import (
    ActorSettings,
    BrokerSettings,
    ConfigError,
    LinkSettings,
    Message,
    Proactor,
    ProactorSettings,
    load_actor,
    load_settings,
)
from gwproactor.wire.message import RawMessage
from tests.actors import actors_registry, add_recorder, wait_recorded
from tests.helpers import TIMEOUT, is_state, running, wait_active, wait_until
from tests.support.paho import close_client

if TYPE_CHECKING:
    from gwproactor.testing.mosquitto import Mosquitto
    from tests.support.fixtures import MosquittoFactory

BRIDGE_CLASS = "gwproactor_actors.bridge:TelemetryBridge"


def _broker(mosquitto: Mosquitto) -> BrokerSettings:
    return BrokerSettings(
        port=mosquitto.port, reconnect_min_seconds=0.05, reconnect_max_seconds=0.5
    )


def _gateways(
    upstream: Mosquitto, local: Mosquitto, **bridge_options: Any
) -> tuple[Proactor, Proactor, TelemetryBridge]:
    """A parent, and a child with an upstream link to it and a ``local`` link to the
    devices' broker, whose bridge is loaded from settings as a config file would."""
    parent = Proactor(
        ProactorSettings(
            name="parent",
            links={
                "child": LinkSettings(peer="child", role="downstream", broker=_broker(upstream))
            },
        ),
        actors_registry(),
    )
    child = Proactor(
        ProactorSettings(
            name="child",
            links={
                "parent": LinkSettings(peer="parent", role="upstream", broker=_broker(upstream)),
                # No gateway answers on the devices' broker; the peer name is required.
                "local": LinkSettings(role="broker", broker=_broker(local)),
            },
            actors={
                "bridge": ActorSettings(
                    cls=BRIDGE_CLASS, options={"link": "local", **bridge_options}
                )
            },
        ),
        actors_registry(),
    )
    bridge = child.get_communicator_as_type("bridge", TelemetryBridge)
    assert bridge is not None
    return parent, child, bridge


async def _wait_subscribed(proactor: Proactor, link: str) -> None:
    """Return once every subscription of ``link`` is acknowledged (a device's message
    published before that would not be delivered)."""
    with proactor.listener("link.state", lambda e: e.source == link) as states:
        await wait_until(lambda: proactor.link(link).transport.all_subscribed, states, TIMEOUT)


def _publish(port: int, items: list[tuple[str, bytes]]) -> None:
    """Publish as a field device would (plain paho), waiting for each PUBACK so that the
    broker has taken every message, in order, before the next one."""
    client = Client(CallbackAPIVersion.VERSION2, client_id="device-sim")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in items:
            client.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)
    finally:
        close_client(client)


def _telemetry(readings: dict[str, Any], ts: float | None = None) -> bytes:
    body: dict[str, Any] = {"readings": readings}
    if ts is not None:
        body["ts"] = ts
    return json.dumps(body).encode()


# -- against real brokers -------------------------------------------------------------------


@pytest.mark.broker
async def test_device_telemetry_becomes_events_at_the_parent_and_garbage_is_counted(
    mosquitto: Mosquitto,
) -> None:
    parent, child, bridge = _gateways(mosquitto, mosquitto)  # one broker for both links
    recorder = add_recorder(parent, DeviceReading.type_name)
    messages = [
        ("devices/dev1/telemetry", _telemetry({"temp_c": 21.5, "rh": 40}, ts=1763600000.123)),
        ("devices/dev3/telemetry", b"\x00\xffnot json"),
        ("devices/dev3/telemetry", _telemetry({"temp_c": "hot"})),
        ("devices/dev1/telemetry", _telemetry({}, ts=1763600001.0)),
        ("devices/dev4/telemetry", b"[1, 2, 3]"),
        ("devices//telemetry", _telemetry({"temp_c": 1.0})),
        ("devices/dev2/telemetry", _telemetry({"temp_c": 19})),
        ("devices/dev2/status", _telemetry({"temp_c": 99.0})),  # not under the filter
        ("devices/dev4/telemetry", _telemetry({"temp_c": 18.25, "on": True})),
        ("devices/dev2/telemetry", _telemetry({"temp_c": 19.5, "co2": 415.0}, ts=1763600002.5)),
    ]
    async with running(parent, child):
        await wait_active(child, "parent")
        await _wait_subscribed(child, "local")
        with child.listener("problem") as problems:
            before_ns = time.time_ns()
            await asyncio.to_thread(_publish, mosquitto.port, messages)
            # The devices' messages reach the bridge in order on one connection, so the
            # last valid one arriving upstream means every earlier one was handled.
            await wait_recorded(parent, recorder, 3)
            after_ns = time.time_ns()
        assert child.state == "running"
        assert child.link("parent").active
    got = [(e.device, e.readings, e.src, e.topic) for e in recorder.events]
    assert got == [
        ("dev1", {"temp_c": 21.5, "rh": 40.0}, "child", "devices/dev1/telemetry"),
        ("dev2", {"temp_c": 19.0}, "child", "devices/dev2/telemetry"),
        ("dev2", {"temp_c": 19.5, "co2": 415.0}, "child", "devices/dev2/telemetry"),
    ]
    first, second, third = recorder.events
    assert first.time_ns == 1_763_600_000_123_000_000  # the device's own clock
    assert before_ns <= second.time_ns <= after_ns  # no ts: the bridge's arrival time
    assert third.time_ns == 1_763_600_002_500_000_000
    assert bridge.stats.malformed == Counter({"dev3": 2, "dev1": 1, "dev4": 2, NO_DEVICE: 1})
    assert bridge.stats.received == 9
    assert bridge.stats.stored == 3
    # A burst is one report; the rest are counted (problem_report_interval_seconds).
    reports = [p for p in problems.history if p.source == "bridge: malformed telemetry"]
    assert len(reports) == 1
    assert reports[0].data["details"] == (
        "devices/dev3/telemetry: message: Invalid JSON: expected value at line 1 column 1"
    )
    assert reports[0].data["error"] is False
    assert child.stats.problems_reported >= 6


@pytest.mark.broker
async def test_bridge_on_a_separate_local_broker_survives_its_restart(
    mosquitto: Mosquitto, mosquitto_factory: MosquittoFactory
) -> None:
    local = await mosquitto_factory.astart(name="local")
    parent, child, bridge = _gateways(mosquitto, local, filter="site/+/dev/+/tele", device_level=3)
    recorder = add_recorder(parent, DeviceReading.type_name)
    async with running(parent, child):
        await wait_active(child, "parent")
        await _wait_subscribed(child, "local")
        await asyncio.to_thread(
            _publish, local.port, [("site/a/dev/m1/tele", _telemetry({"kw": 1}))]
        )
        await wait_recorded(parent, recorder, 1)
        with child.listener("link.state", lambda e: e.source == "local") as states:
            await local.akill()
            await states.wait_for(is_state("connecting"), TIMEOUT)
            await local.arestart()
            # The link re-subscribes the bridge's filter after reconnecting.
            await wait_until(lambda: child.link("local").transport.all_subscribed, states, TIMEOUT)
        await asyncio.to_thread(
            _publish, local.port, [("site/a/dev/m2/tele", _telemetry({"kw": 2}))]
        )
        await wait_recorded(parent, recorder, 2)
    assert [(e.device, e.readings) for e in recorder.events] == [
        ("m1", {"kw": 1.0}),
        ("m2", {"kw": 2.0}),
    ]
    assert bridge.stats.malformed_total == 0


@pytest.mark.broker
async def test_telemetry_bridged_while_upstream_is_down_is_delivered_later(
    mosquitto: Mosquitto, mosquitto_factory: MosquittoFactory
) -> None:
    local = await mosquitto_factory.astart(name="local")
    parent, child, bridge = _gateways(mosquitto, local)
    recorder = add_recorder(parent, DeviceReading.type_name)
    items = [(f"devices/d{n}/telemetry", _telemetry({"n": n})) for n in range(20)]
    async with running(child):
        await _wait_subscribed(child, "local")
        with child.listener("event.stored") as stored:
            await asyncio.to_thread(_publish, local.port, items)
            await wait_until(lambda: bridge.stats.stored == 20, stored, TIMEOUT)
        assert child.store.pending_count == 20  # durable, waiting for the parent
        async with running(parent):
            await wait_recorded(parent, recorder, 20)
    assert [(e.device, e.readings["n"]) for e in recorder.events] == [
        (f"d{n}", float(n)) for n in range(20)
    ]


# -- fast: parsing and options --------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "message: Invalid JSON: EOF while parsing a value at line 1 column 0"),
        (b"[]", "message: Input should be an object"),
        (b'{"readings": {"a": "1.5"}}', "readings.a: Input should be a valid number"),
        (b'{"readings": {"a": true}}', "readings.a: Input should be a valid number"),
        (b'{"readings": {"a": NaN}}', "readings.a: Input should be a finite number"),
        (b'{"readings": {}}', "readings: Dictionary should have at least 1 item after"),
        (b'{"ts": "now", "readings": {"a": 1}}', "ts: Input should be a valid number"),
        (b'{"ts": -1, "readings": {"a": 1}}', "ts: Input should be greater than 0"),
        (b'{"readings": {"a": "x", "b": "y"}}', "readings.a: Input should be a valid number"),
        (b'{"readings": {"a": 1}, "pad": "' + b"x" * 100 + b'"}', "133 bytes, more than 128"),
    ],
)
def test_malformed_telemetry_gives_a_reason_naming_the_field(data: bytes, reason: str) -> None:
    result = parse_telemetry(data, max_bytes=128)
    assert isinstance(result, Err)
    assert result.err_value.startswith(reason)


def test_valid_telemetry_ignores_unknown_fields() -> None:
    result = parse_telemetry(b'{"readings": {"a": 1, "b": -2.5}, "fw": "1.2"}', max_bytes=1024)
    assert isinstance(result, Ok)
    assert result.ok_value.readings == {"a": 1.0, "b": -2.5}
    assert result.ok_value.ts is None


def test_device_id_comes_from_its_topic_level() -> None:
    assert device_of("devices/dev1/telemetry", 1) == "dev1"
    assert device_of("devices//telemetry", 1) is None
    assert device_of("devices", 1) is None
    assert device_of("site/a/dev/m1/tele", 3) == "m1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"link": "nowhere"}, "link 'nowhere' is not configured"),
        ({"device_level": 3}, "device_level 3 is past the last level"),
        ({"device_level": -1}, "greater than or equal to 0"),
        ({"fliter": "x/+"}, "fliter"),
        ({"filter": ""}, "filter is empty"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    settings = ProactorSettings(name="gw", links={"local": LinkSettings(role="broker")})
    proactor = Proactor(settings, load_actors=False)
    with pytest.raises(ConfigError, match=message):
        load_actor("bridge", ActorSettings(cls=BRIDGE_CLASS, options=options), proactor)


def test_the_example_config_builds_a_bridge_and_a_poller() -> None:
    path = Path(__file__).resolve().parents[2] / "config" / "bridge-example.toml"
    settings = load_settings(path, env_file=None, environ={})
    proactor = Proactor(settings, actors_registry())
    bridge = proactor.get_communicator_as_type("bridge", TelemetryBridge)
    poller = proactor.get_communicator_as_type("meter", HttpPoller)
    assert bridge is not None and poller is not None
    assert (bridge.options.link, bridge.options.filter) == ("local", "devices/+/telemetry")
    assert settings.links["local"].role == "broker"
    assert settings.upstream_link == "cloud"
    assert poller.options.fields == {"kw": "power.kw", "v1": "phases.0.v"}


def test_default_options() -> None:
    options = BridgeOptions()
    assert (options.link, options.filter, options.device_level) == (
        "local",
        "devices/+/telemetry",
        1,
    )
    # '#' before the device level may match deep enough topics.
    assert BridgeOptions(filter="plant/#", device_level=4).device_level == 4


async def test_per_device_counts_are_bounded() -> None:
    settings = ProactorSettings(name="gw", links={"local": LinkSettings(role="broker")})
    proactor = Proactor(settings, load_actors=False)
    bridge = TelemetryBridge(
        "bridge",
        proactor,
        ActorSettings(cls=BRIDGE_CLASS, options={"max_tracked_devices": 2}),
    )
    for n in range(5):
        raw = RawMessage(link="local", topic=f"devices/d{n}/telemetry", payload=b"x")
        assert bridge.process_message(Message.create("local", "bridge", raw)).is_ok()
    assert bridge.stats.malformed == Counter({"d0": 1, "d1": 1, OTHER_DEVICES: 3})
    # Anything but raw telemetry is refused (the proactor counts and reports the Err).
    result = bridge.process_message(
        Message.create("x", "bridge", DeviceReading(device="d", readings={}))
    )
    assert isinstance(result, Err)


async def test_an_event_future_ending_with_an_exception_is_counted_not_a_traceback() -> None:
    settings = ProactorSettings(name="gw", links={"local": LinkSettings(role="broker")})
    proactor = Proactor(settings, load_actors=False)
    bridge = TelemetryBridge("bridge", proactor, ActorSettings(cls=BRIDGE_CLASS))
    loop = asyncio.get_running_loop()
    failed: asyncio.Future[Any] = loop.create_future()
    failed.set_exception(RuntimeError("writer thread died"))
    proactor.generate_event = lambda _event: failed  # type: ignore[assignment,method-assign,return-value]
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        raw = RawMessage(link="local", topic="devices/d1/telemetry", payload=_telemetry({"t": 1}))
        assert bridge.process_message(Message.create("local", "bridge", raw)).is_ok()
        await asyncio.wait([failed])  # its callbacks ran in order: the bridge's first
    finally:
        loop.set_exception_handler(None)
    assert unhandled == []
    assert (bridge.stats.stored, bridge.stats.refused) == (0, 1)
    assert [p.summary for p in proactor.problems.recent] == ["bridge: reading not stored"]
