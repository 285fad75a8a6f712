"""The uploader keeps no more events in flight than its link's transport lets out unfinished
(an MQTT 5 broker's Receive Maximum, say): past that limit a publish only waits in the
transport while its ack timer runs. The limit is read at every activation, since every
connection may have its own (a failover to another broker)."""

from __future__ import annotations

from gwproactor import BrokerSettings, Proactor
from gwproactor.mqtt import MemoryBroker, MemoryTransport
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    memory_factory,
    pair_settings,
    record_events,
    running,
    wait_active,
    wait_until,
)


async def test_the_window_follows_the_in_flight_limit_of_each_connection() -> None:
    broker = MemoryBroker()
    parent_settings, child_settings = pair_settings(BrokerSettings())
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    recorder = record_events(parent)
    uploader = child.events.uploader
    assert uploader is not None
    link = child.link("parent")
    transport = link.transport
    parents_transport = parent.link("child").transport
    assert isinstance(transport, MemoryTransport)
    async with running(parent, child):
        await wait_active(child, "parent")
        assert link.inflight_limit == 0  # the in-memory transport: no limit
        assert uploader.effective_window == uploader.window == 200

        # A connection with a limit of 7 (as a broker's Receive Maximum would set it).
        transport.inflight_limit = 7
        assert uploader.effective_window == 200  # read at the next activation, not before
        transport.request_reconnect()
        await wait_active(child, "parent")
        assert uploader.effective_window == 7
        parents_transport.pause_reading()  # no acks: what the uploader sends stays in flight
        for n in range(30):
            await child.generate_event(Counted(n=n))
        await child.store.flush()
        assert (uploader.in_flight, uploader.stats.sent) == (7, 7)
        status = child.status()
        assert (status["uploader"]["window"], status["uploader"]["configured_window"]) == (7, 200)
        assert status["links"]["parent"]["inflight_limit"] == 7
        with child.listener("event.acked") as acks:
            parents_transport.resume_reading()
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)

        # The next connection has none: the configured window again.
        transport.inflight_limit = 0
        transport.request_reconnect()
        await wait_active(child, "parent")
        assert uploader.effective_window == 200
        parents_transport.pause_reading()
        for n in range(30, 60):
            await child.generate_event(Counted(n=n))
        await child.store.flush()
        assert uploader.in_flight == 30
        with child.listener("event.acked") as acks:
            parents_transport.resume_reading()
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
    assert [e.n for e in recorder.events] == list(range(60))
