"""Events on the fast layer: write-ahead, acks, order, window, de-duplication, forwarding."""

from __future__ import annotations

import asyncio

from result import Ok

from gwproactor import BrokerSettings, LinkSettings, Proactor, ProactorSettings
from gwproactor.mqtt import MemoryBroker
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    EventRecorder,
    memory_factory,
    pair_settings,
    running,
    wait_active,
    wait_until,
)


def _pair(broker: MemoryBroker, **overrides: object) -> tuple[Proactor, Proactor, EventRecorder]:
    parent_settings, child_settings = pair_settings(BrokerSettings())
    child_settings = child_settings.model_copy(update=overrides)
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    recorder = EventRecorder("recorder", parent)
    parent.add_communicator(recorder)
    parent.route(Counted.type_name, "recorder")
    return parent, child, recorder


async def test_events_are_committed_then_delivered_in_order_and_cleared() -> None:
    broker = MemoryBroker()
    parent, child, recorder = _pair(broker, num_initial_event_reuploads=7)
    async with running(parent, child):
        await wait_active(child, "parent")
        with child.listener("event.acked") as acks:
            results = await asyncio.gather(
                *(child.generate_event(Counted(n=n)) for n in range(500))
            )
            assert all(isinstance(r, Ok) for r in results)
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
        await child.store.flush()
        assert child.store.pending_count == 0
    assert [e.n for e in recorder.events] == list(range(500))
    assert {e.src for e in recorder.events} == {"child"}
    assert parent.store.archive_count == 500
    assert child.events.uploader is not None
    assert child.events.uploader.stats.sent == 500


async def test_events_wait_in_the_store_while_upstream_is_down() -> None:
    broker = MemoryBroker()
    parent, child, recorder = _pair(broker)
    async with running(child):
        # No parent: the link never becomes active; events are durable and pending.
        results = await asyncio.gather(*(child.generate_event(Counted(n=n)) for n in range(50)))
        assert [r.is_ok() for r in results] == [True] * 50
        assert child.store.pending_count == 50
        assert not child.link("parent").active
        with child.listener("event.acked") as acks:
            async with running(parent):
                await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
    assert [e.n for e in recorder.events] == list(range(50))


async def test_resent_events_are_acked_but_not_given_to_actors_twice() -> None:
    broker = MemoryBroker()
    parent, child, recorder = _pair(broker)
    async with running(parent, child):
        await wait_active(child, "parent")
        with child.listener("event.acked") as acks:
            for n in range(20):
                await child.generate_event(Counted(n=n))
            await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
        # Replay every message the child published (a re-upload after lost acks).
        replay = [(t, p) for t, p in broker.published if t.endswith("/test.counted")]
        acks_before = parent.stats.link("child").acks_sent
        with parent.listener("event.duplicate") as duplicates:
            for topic, payload in replay:
                broker.publish(topic, payload)
            for _ in range(20):
                await duplicates.get(TIMEOUT)
        assert parent.stats.events_duplicate == 20
        assert parent.stats.link("child").acks_sent == acks_before + 20  # acked again
    assert [e.n for e in recorder.events] == list(range(20))


async def test_middle_gateway_forwards_child_events_upstream() -> None:
    broker = MemoryBroker()
    link = {"broker": BrokerSettings()}
    atn = Proactor(
        ProactorSettings(
            name="atn", links={"scada1": LinkSettings(peer="scada1", role="downstream", **link)}
        ),
        REGISTRY,
        transport_factory=memory_factory(broker),
    )
    scada1 = Proactor(
        ProactorSettings(
            name="scada1",
            links={
                "atn": LinkSettings(peer="atn", role="upstream", **link),
                "scada2": LinkSettings(peer="scada2", role="downstream", **link),
            },
        ),
        REGISTRY,
        transport_factory=memory_factory(broker),
    )
    scada2 = Proactor(
        ProactorSettings(
            name="scada2", links={"scada1": LinkSettings(peer="scada1", role="upstream", **link)}
        ),
        REGISTRY,
        transport_factory=memory_factory(broker),
    )
    recorder = EventRecorder("recorder", atn)
    atn.add_communicator(recorder)
    atn.route(Counted.type_name, "recorder")
    async with running(atn, scada1, scada2):
        await wait_active(scada2, "scada1")
        await wait_active(scada1, "atn")
        with atn.listener("event.received") as received:
            for n in range(30):
                await scada2.generate_event(Counted(n=n))
            await wait_until(lambda: len(recorder.events) == 30, received, TIMEOUT)
    assert [(e.n, e.src) for e in recorder.events] == [(n, "scada2") for n in range(30)]
