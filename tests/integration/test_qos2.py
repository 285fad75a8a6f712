"""QoS 2 on a real mosquitto, both directions (issue 17, item 8).

mosquitto takes at most 20 unfinished QoS 2 publishes from a client (``max_inflight_messages``)
and silently ignores the rest; with paho's in-flight limit off, everything past the 20th
waited for a PUBREC that never came: 120 of 200 events in 25 s, 340 ack timeouts. The
default now keeps paho within the broker's Receive Maximum (MQTT 5) or 20 (3.1.1).
"""

from __future__ import annotations

import pytest

from gwproactor import BrokerSettings, Proactor
from gwproactor.testing.mosquitto import Mosquitto
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    Hello,
    Recorder,
    pair_settings,
    record_events,
    running,
    wait_active,
    wait_until,
)

pytestmark = pytest.mark.broker

COUNT = 200


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_qos2_link_delivers_200_events_up_and_200_messages_down(
    mosquitto: Mosquitto, protocol: str
) -> None:
    broker = BrokerSettings(
        port=mosquitto.port,
        protocol=protocol,
        reconnect_min_seconds=0.05,
        reconnect_max_seconds=0.3,
    )
    parent_settings, child_settings = pair_settings(broker, qos=2, ack_timeout_seconds=5.0)
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    events = record_events(parent)
    hellos = Recorder("rx", child)
    child.add_communicator(hellos)
    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        with (
            parent.listener("event.received") as got_events,
            child.listener("message.received") as got_hellos,
            child.listener("link.state") as child_states,
            parent.listener("link.state") as parent_states,
        ):
            for n in range(COUNT):
                child.generate_event(Counted(n=n))
                assert parent.send_to_peer("child", Hello(n=n), actor="rx").is_ok()
            await wait_until(lambda: len(events.events) >= COUNT, got_events, TIMEOUT)
            await wait_until(lambda: len(hellos.received) >= COUNT, got_hellos, TIMEOUT)
            with child.listener("event.acked") as acked:
                await wait_until(lambda: child.store.pending_count == 0, acked, TIMEOUT)
        # No stall: neither link left active, no ack timed out.
        assert [e.data["new"] for e in child_states.history] == []
        assert [e.data["new"] for e in parent_states.history] == []
    assert child.stats.link("parent").ack_timeouts == 0
    assert [e.n for e in events.events] == list(range(COUNT))
    assert [m.payload.n for m in hellos.received] == list(range(COUNT))
