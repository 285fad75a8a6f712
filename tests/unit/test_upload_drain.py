"""A backlog re-uploaded after an outage is done when the child's store has nothing
pending: the deletes of its last acks are committed once the drain is acked, not held for
the next write as a lone ack is (``store.ack_delay_seconds``)."""

from __future__ import annotations

import asyncio

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
    wait_until,
)


async def test_a_drained_backlog_leaves_nothing_pending_without_the_ack_hold() -> None:
    """The child holds lone acks for an hour here: before, the last acks of the drain
    (those after the last backlog read) stayed pending that long."""
    broker = MemoryBroker()
    parent_settings, child_settings = pair_settings(BrokerSettings())
    child_settings = child_settings.model_copy(
        update={
            "event_read_batch": 100,
            "store": child_settings.store.model_copy(update={"ack_delay_seconds": 3600.0}),
        }
    )
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    recorder = record_events(parent)
    count = 450
    async with running(child):
        results = await asyncio.gather(*(child.generate_event(Counted(n=n)) for n in range(count)))
        assert all(r.is_ok() for r in results)
        with child.listener("event.acked") as acks:
            async with running(parent):
                await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
    assert [e.n for e in recorder.events] == list(range(count))
    assert parent.store.archive_count == count
