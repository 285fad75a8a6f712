"""The simulated relay and thermometer behind their blocking drivers, on the fast layer: a
parent commands the relay over a link and receives its events; a failing driver is reported
and the actor goes on; the thermometer reports at its period; stopping joins the threads."""

from __future__ import annotations

import itertools
import time
from statistics import mean

from gwproactor_actors import (
    RelayActor,
    RelaySet,
    RelayStateChanged,
    SimulatedRelayDriver,
    SimulatedThermometerDriver,
    TemperatureReading,
    ThermometerActor,
)
from gwproactor_actors.commander import RelayCommander

from gwproactor import ActorSettings, BrokerSettings, Proactor
from gwproactor.mqtt import MemoryBroker
from tests.actors import (
    actors_registry,
    add_recorder,
    wait_recorded,
)
from tests.helpers import TIMEOUT, memory_factory, pair_settings, running

STOP_TIMEOUT = 2.0


def _pair(broker: MemoryBroker) -> tuple[Proactor, Proactor]:
    parent_settings, child_settings = pair_settings(BrokerSettings())
    child_settings = child_settings.model_copy(update={"stop_timeout_seconds": STOP_TIMEOUT})
    factory = memory_factory(broker)
    parent = Proactor(parent_settings, actors_registry(), transport_factory=factory)
    child = Proactor(child_settings, actors_registry(), transport_factory=factory)
    return parent, child


async def test_parent_commands_relay_and_receives_state_events() -> None:
    broker = MemoryBroker()
    parent, child = _pair(broker)
    driver = SimulatedRelayDriver(latency_seconds=0.001)
    relay = RelayActor("relay1", child, driver=driver)
    recorder = add_recorder(parent, RelayStateChanged.type_name)
    async with running(parent, child):
        child.add_communicator(relay)  # started at once: the gateway is running
        await wait_recorded(parent, recorder, 1)  # where the relay was found at start
        assert parent.send_to_peer(
            "child", RelaySet(closed=True), actor="relay1", ack_required=True
        ).is_ok()
        await wait_recorded(parent, recorder, 2)
        assert driver.closed
    assert [(e.relay, e.closed, e.commanded_by, e.src) for e in recorder.events] == [
        ("relay1", False, "startup", "child"),
        ("relay1", True, "parent", "child"),
    ]


async def test_failing_driver_is_reported_and_the_relay_keeps_working() -> None:
    broker = MemoryBroker()
    parent, child = _pair(broker)
    driver = SimulatedRelayDriver(latency_seconds=0.001)
    relay = RelayActor("relay1", child, driver=driver)
    recorder = add_recorder(parent, RelayStateChanged.type_name)
    async with running(parent, child):
        child.add_communicator(relay)
        await wait_recorded(parent, recorder, 1)
        driver.fail_next = True
        with child.listener("problem") as problems:
            parent.send_to_peer("child", RelaySet(closed=True), actor="relay1")
            problem = await problems.wait_for(lambda e: "OSError" in e.source, TIMEOUT)
        assert problem.source == "relay1.io: OSError"
        assert problem.data["details"] == "relay did not answer"
        assert relay.thread.is_alive()
        # The same command again: the driver answers this time.
        parent.send_to_peer("child", RelaySet(closed=True), actor="relay1")
        await wait_recorded(parent, recorder, 2)
        assert relay.thread.handled == 2
    assert [(e.closed, e.commanded_by) for e in recorder.events] == [
        (False, "startup"),
        (True, "parent"),
    ]
    assert driver.calls == 2  # the failed set and the good one (reads are not counted)
    assert not relay.thread.is_alive()


async def test_commander_drives_the_relay_on_its_schedule() -> None:
    broker = MemoryBroker()
    parent, child = _pair(broker)
    commander = RelayCommander(
        "commander",
        parent,
        ActorSettings(
            cls="gwproactor_actors.commander:RelayCommander",
            options={"link": "child", "relay": "relay1", "period_seconds": 0.02},
        ),
    )
    recorder = add_recorder(parent, RelayStateChanged.type_name)
    async with running(parent, child):
        child.add_communicator(RelayActor("relay1", child, driver=SimulatedRelayDriver(0.001)))
        parent.add_communicator(commander)
        await wait_recorded(parent, recorder, 5)
    events = recorder.events[:5]
    assert [e.commanded_by for e in events] == ["startup", "parent", "parent", "parent", "parent"]
    # The link is up before the commander starts: every command arrives, alternating.
    assert [e.closed for e in events] == [False, True, False, True, False]
    assert commander.refused == 0


async def test_thermometer_reports_at_its_period_and_stop_joins_the_threads() -> None:
    broker = MemoryBroker()
    parent, child = _pair(broker)
    period = 0.1
    thermometer = ThermometerActor(
        "thermo1",
        child,
        ActorSettings(
            cls="gwproactor_actors.thermometer:ThermometerActor", options={"period_seconds": period}
        ),
        driver=SimulatedThermometerDriver(base_celsius=20.0, latency_seconds=0.001),
    )
    relay = RelayActor("relay1", child, driver=SimulatedRelayDriver(0.001))
    recorder = add_recorder(parent, TemperatureReading.type_name)
    async with running(parent):
        await child.start()
        try:
            child.add_communicator(thermometer)
            child.add_communicator(relay)
            await wait_recorded(parent, recorder, 6)
        finally:
            started = time.monotonic()
            await child.stop_and_join()
            stop_seconds = time.monotonic() - started
    readings = recorder.events[:6]
    assert {r.sensor for r in readings} == {"thermo1"}
    assert all(17.8 <= r.celsius <= 22.2 for r in readings)  # base ± drift ± noise
    gaps = [(b.time_ns - a.time_ns) / 1e9 for a, b in itertools.pairwise(readings)]
    # The thread never iterates early; on a loaded machine it may iterate late.
    assert min(gaps) >= 0.5 * period
    assert 0.9 * period <= mean(gaps) <= 3 * period
    assert not thermometer.thread.is_alive()
    assert not relay.thread.is_alive()
    assert stop_seconds < STOP_TIMEOUT
