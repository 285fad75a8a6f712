"""What a link reports as its transport's in-flight limit on a real mosquitto, and the
uploader's window that follows from it (the slow path it matters on is in
``tests/robustness/test_fault_matrix.py``), from the first connection and after a failover
to a broker with another limit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gwproactor import BrokerSettings, Proactor
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    pair_settings,
    record_events,
    running,
    wait_active,
    wait_until,
)

if TYPE_CHECKING:
    from gwproactor.config import MqttProtocol
    from gwproactor.testing.mosquitto import Mosquitto
    from tests.support.fixtures import MosquittoFactory

pytestmark = pytest.mark.broker


@pytest.mark.parametrize(
    ("protocol", "qos", "broker_config", "max_inflight", "limit"),
    [
        ("5", 1, "", None, 20),  # mosquitto's default Receive Maximum
        ("5", 1, "max_inflight_messages 7", None, 7),  # the broker's configured one
        ("5", 1, "max_inflight_messages 0", None, 65_535),  # none named: MQTT 5's maximum
        ("3.1.1", 1, "", None, 0),  # nothing named, nothing to keep within at QoS 1
        ("3.1.1", 2, "", None, 20),  # mosquitto's silent limit on QoS 2
        ("3.1.1", 1, "", 12, 12),  # configured on the link's broker settings
    ],
)
async def test_link_reports_its_connections_limit_and_the_window_follows(
    mosquitto_factory: MosquittoFactory,
    protocol: MqttProtocol,
    qos: int,
    broker_config: str,
    max_inflight: int | None,
    limit: int,
) -> None:
    mosquitto = mosquitto_factory(extra_config=broker_config)
    broker = BrokerSettings(
        port=mosquitto.port,
        protocol=protocol,
        max_inflight=max_inflight,
        reconnect_min_seconds=0.05,
        reconnect_max_seconds=0.3,
    )
    parent_settings, child_settings = pair_settings(broker, qos=qos)
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    async with running(parent, child):
        await wait_active(child, "parent")
        status = child.status()
    assert child.link("parent").inflight_limit == limit
    assert status["links"]["parent"]["inflight_limit"] == limit
    window = min(200, limit) if limit else 200
    assert (status["uploader"]["window"], status["uploader"]["configured_window"]) == (window, 200)


async def test_after_a_failover_the_window_follows_the_new_brokers_limit(
    mosquitto_factory: MosquittoFactory,
) -> None:
    first = mosquitto_factory(name="first", extra_config="max_inflight_messages 7")
    second = mosquitto_factory(name="second")  # mosquitto's default Receive Maximum: 20

    def broker(mosquitto: Mosquitto) -> BrokerSettings:
        return BrokerSettings(
            port=mosquitto.port, protocol="5", reconnect_min_seconds=0.05, reconnect_max_seconds=0.3
        )

    parent_settings, child_settings = pair_settings(
        broker(first),
        fallback_brokers=[broker(second)],
        failover_after_seconds=0.3,
        failback_check_seconds=60.0,
    )
    parent, child = Proactor(parent_settings, REGISTRY), Proactor(child_settings, REGISTRY)
    recorder = record_events(parent)
    uploader = child.events.uploader
    assert uploader is not None
    async with running(parent, child):
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        assert (child.link("parent").inflight_limit, uploader.effective_window) == (7, 7)
        with child.listener("link.broker") as moves:
            await first.akill()
            event = await moves.get(TIMEOUT)
            assert event.data["broker"].endswith(f":{second.port}")
        await wait_active(parent, "child")
        await wait_active(child, "parent")
        assert (child.link("parent").inflight_limit, uploader.effective_window) == (20, 20)
        with child.listener("event.acked") as acked:
            for n in range(50):
                await child.generate_event(Counted(n=n))
            await wait_until(lambda: child.store.pending_count == 0, acked, TIMEOUT)
        # Acks within milliseconds: the whole configured window fits in a quarter of the
        # ack timeout (the slow path that keeps the limit is in the fault matrix).
        assert uploader.effective_window == 200
    assert [e.n for e in recorder.events] == list(range(50))
