"""The uploader stops when the upstream peer's presence turns offline, and starts again
from the oldest pending event when it is back online."""

from __future__ import annotations

from gwproactor import BrokerSettings, Proactor
from gwproactor.mqtt import MemoryBroker
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


async def test_peer_offline_holds_the_upload_until_it_is_online_again() -> None:
    broker = MemoryBroker()
    parent_settings, child_settings = pair_settings(BrokerSettings())
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    recorder = record_events(parent)
    uploader = child.events.uploader
    assert uploader is not None
    link = child.link("parent")
    async with running(parent, child):
        await wait_active(child, "parent")
        with child.listener("event.acked") as acks:
            for n in range(10):
                await child.generate_event(Counted(n=n))
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
            child.events.peer_presence(link, "offline")  # its will: the parent died
            sent = uploader.stats.sent
            for n in range(10, 15):
                await child.generate_event(Counted(n=n))
            await child.store.flush()
            assert uploader.stats.sent == sent  # nothing goes into the void
            assert child.store.pending_count == 5
            assert uploader.stats.held_for_peer == 1
            child.events.peer_presence(link, "online")
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
    assert [e.n for e in recorder.events] == list(range(15))


async def test_a_hold_ends_by_itself_when_the_link_stays_active() -> None:
    # "offline" from a process that shares the peer's client id, say: the peer itself is
    # fine and the link stays active, so the upload goes on after one ack timeout.
    broker = MemoryBroker()
    parent_settings, child_settings = pair_settings(BrokerSettings(), ack_timeout_seconds=0.3)
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    recorder = record_events(parent)
    async with running(parent, child):
        await wait_active(child, "parent")
        child.events.peer_presence(child.link("parent"), "offline")
        with child.listener("event.acked") as acks:
            for n in range(5):
                await child.generate_event(Counted(n=n))
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
    assert [e.n for e in recorder.events] == list(range(5))
