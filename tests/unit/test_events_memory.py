"""Events on the fast layer: write-ahead, acks, order, window, de-duplication, forwarding."""

from __future__ import annotations

import asyncio
import logging

import pytest
from result import Err, Ok

from gwproactor import BrokerSettings, LinkSettings, Proactor, ProactorSettings
from gwproactor.errors import StoreFullError
from gwproactor.mqtt import MemoryBroker
from gwproactor.store import StoredEvent
from tests.helpers import (
    REGISTRY,
    TIMEOUT,
    Counted,
    EventRecorder,
    memory_factory,
    pair_settings,
    record_events,
    running,
    wait_active,
    wait_until,
)


def _pair(broker: MemoryBroker, **overrides: object) -> tuple[Proactor, Proactor, EventRecorder]:
    parent_settings, child_settings = pair_settings(BrokerSettings())
    child_settings = child_settings.model_copy(update=overrides)
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    recorder = record_events(parent)
    return parent, child, recorder


async def test_events_are_committed_then_delivered_in_order_and_cleared() -> None:
    broker = MemoryBroker()
    parent, child, recorder = _pair(broker, event_upload_window=7)
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
    recorder = record_events(atn)
    async with running(atn, scada1, scada2):
        await wait_active(scada2, "scada1")
        await wait_active(scada1, "atn")
        with atn.listener("event.received") as received:
            for n in range(30):
                await scada2.generate_event(Counted(n=n))
            await wait_until(lambda: len(recorder.events) == 30, received, TIMEOUT)
    assert [(e.n, e.src) for e in recorder.events] == [(n, "scada2") for n in range(30)]


async def test_commit_notice_during_a_backlog_read_is_not_lost() -> None:
    """An event committed after a backlog read looked, whose notice arrives while the read is
    still running (events from worker threads do this), must still be sent."""
    broker = MemoryBroker()
    parent, child, recorder = _pair(broker)
    store = child.store
    real_backlog = store.backlog
    injected: list[str] = []

    async def backlog_then_commit(after_seq: int, limit: int) -> list[StoredEvent]:
        batch = await real_backlog(after_seq, limit)
        if not injected:  # once: commit an event the read above did not see
            payload = b'{"src":"child","time_ns":1,"n":99}'
            result = await store.append("test.counted", "late-1", 1, "child", payload)
            seq = result.unwrap()
            injected.append("late-1")
            assert child.events.uploader is not None
            child.events.uploader.committed(
                StoredEvent(seq, "late-1", "test.counted", 1, "child", payload, True)
            )
        return batch

    store.backlog = backlog_then_commit  # type: ignore[method-assign]
    async with running(parent, child):
        with child.listener("event.acked") as acks:
            await wait_active(child, "parent")
            await wait_until(lambda: bool(injected) and store.pending_count == 0, acks, TIMEOUT)
    assert [e.n for e in recorder.events] == [99]


async def test_generate_event_refuses_beyond_the_uncommitted_bound() -> None:
    broker = MemoryBroker()
    _, child, _ = _pair(broker, max_uncommitted_events=5)
    async with running(child):
        futures = [child.generate_event(Counted(n=n)) for n in range(20)]
        results = await asyncio.gather(*futures)
    refused = [r for r in results if isinstance(r, Err)]
    assert len(refused) == 15
    assert all(isinstance(r.err_value, StoreFullError) for r in refused)
    assert child.stats.events_rejected == 15


async def test_broker_link_is_active_without_a_peer_and_never_pings() -> None:
    broker = MemoryBroker()
    settings = ProactorSettings(
        name="edge", links={"local": LinkSettings(role="broker", broker=BrokerSettings())}
    )
    gateway = Proactor(settings, REGISTRY, transport_factory=memory_factory(broker))
    gateway.subscribe_raw("local", "devices/+/telemetry", "nobody")
    async with running(gateway):
        await wait_active(gateway, "local")
        assert gateway.ready
    stats = gateway.stats.link("local")
    assert stats.pings_sent == 0
    assert broker.published == []  # no gw/ traffic, no presence on a device broker


async def test_subscribing_a_raw_filter_twice_delivers_once() -> None:
    broker = MemoryBroker()
    settings = ProactorSettings(
        name="edge", links={"local": LinkSettings(role="broker", broker=BrokerSettings())}
    )
    gateway = Proactor(settings, REGISTRY, transport_factory=memory_factory(broker))
    rx = EventRecorder("rx", gateway)
    gateway.add_communicator(rx)
    for _ in range(2):
        gateway.subscribe_raw("local", "site/#", "rx")
    async with running(gateway):
        await wait_active(gateway, "local")
        with gateway.listener("message.dispatched") as heard:
            broker.publish("site/x", b"1")
            broker.publish("site/y", b"2")
            await wait_until(lambda: len(rx.events) >= 2, heard, TIMEOUT)
            gateway.unsubscribe_raw("local", "site/#", "rx")
            broker.publish("site/z", b"3")
            # The gateway no longer subscribes: the broker has nobody to deliver it to.
            assert "site/#" not in gateway.link("local").transport.subscriptions
    assert [e.topic for e in rx.events] == ["site/x", "site/y"]


async def test_only_a_large_backlog_is_logged_while_it_drains(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Steady state writes no line per event; a backlog of at least the threshold gives
    progress lines and one summary (the daemon's log on a device).

    Timing-free: the parent acks in bursts that follow its own commits, and the child's
    deletes of acked events commit whenever they do (held up to store.ack_delay_seconds,
    which a slow drain outlasts); the pending figures are exact whatever the interleaving
    (test_progress_pending_is_exact_at_every_ack). Steady state is checked for upload
    lines only: a loaded machine may log other things (loop lag, an ack timeout)."""
    broker = MemoryBroker()
    parent, child, _ = _pair(broker, reupload_log_threshold=100, reupload_log_every=40)
    caplog.set_level(logging.INFO, logger="gwproactor")
    async with running(child):
        results = await asyncio.gather(*(child.generate_event(Counted(n=n)) for n in range(100)))
        assert all(r.is_ok() for r in results)
        with child.listener(("event.acked", "reupload.progress")) as acks:
            async with running(parent):
                await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
                drained = [r.getMessage() for r in caplog.records if "re-upload" in r.message]
                caplog.clear()
                # Steady state: 100 events sent as they come, no line about them.
                for n in range(100, 200):
                    assert (await child.generate_event(Counted(n=n))).is_ok()
                await wait_until(lambda: child.store.pending_count == 0, acks, TIMEOUT)
                steady = [
                    f"{r.name}: {r.getMessage()}"
                    for r in caplog.records
                    if r.name.startswith("gwproactor.events") or "upload" in r.getMessage()
                ]
    assert drained[0] == "re-uploading 100 pending events"
    assert [m for m in drained if m.startswith("re-upload: ")] == [
        "re-upload: 40 acked upstream, 60 pending",
        "re-upload: 80 acked upstream, 20 pending",
        "re-upload: 100 acked upstream, 0 pending",
    ]
    assert drained[-1].startswith("re-uploaded 100 events in ")
    assert steady == []


async def test_progress_pending_is_exact_at_every_ack() -> None:
    """The parent commits (and so acks) one event at a time and the child's deletes are
    not held back: hundreds of ack bursts, the deletes of earlier ones committing in
    between. At every ack the pending figure is what is still unacked: the store's count
    and the uploader's own count of deletes in flight change in the same step (before,
    a delete's outcome lowered the store's count one loop iteration before the uploader
    heard of it, and an ack taken in between was reported with a committed delete
    subtracted twice: "185 acked upstream, 112 pending" instead of 115)."""
    broker = MemoryBroker()
    parent_settings, child_settings = pair_settings(BrokerSettings())
    parent_settings = parent_settings.model_copy(
        update={"store": parent_settings.store.model_copy(update={"max_batch": 1})}
    )
    child_settings = child_settings.model_copy(
        update={
            "reupload_log_threshold": 1,
            "reupload_log_every": 1,
            # Deletes commit at once, between the parent's ack bursts (not held back).
            "store": child_settings.store.model_copy(update={"ack_delay_seconds": 0.0}),
        }
    )
    parent = Proactor(parent_settings, REGISTRY, transport_factory=memory_factory(broker))
    child = Proactor(child_settings, REGISTRY, transport_factory=memory_factory(broker))
    count = 300
    async with running(child):
        results = await asyncio.gather(*(child.generate_event(Counted(n=n)) for n in range(count)))
        assert all(r.is_ok() for r in results)
        with child.listener("reupload.progress") as progress:
            async with running(parent):
                seen: list[tuple[int, int]] = []
                while len(seen) < count:
                    event = await progress.get(TIMEOUT)
                    seen.append((event.data["acked"], event.data["pending"]))
    assert seen == [(n, count - n) for n in range(1, count + 1)]
